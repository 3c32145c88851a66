"""FID protocols agree with the libraries themselves (torch-fidelity, clean-fid) on the same folders and network.

Each test writes two small class-folder PNG sets and lets the library compute its own FID from the
folders, with synthxray's extractor plugged in the library's own way (torch-fidelity's registry,
clean-fid's ``custom_feat_extractor``); nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tinydata import blur, transformed, xray_like

from synthxray.evaluation import CleanFidFeatureModel, compute_features, evaluate, get_extractor, get_protocol, inception_available
from synthxray.evaluation.protocols import list_protocols, tf1_bilinear

needs_inception = pytest.mark.skipif(not inception_available()[0], reason=f"Inception not tested: {inception_available()[1]}")


def _write(ds, root):
    names = ds.features["label"].names
    for i, (im, label) in enumerate(zip(ds["image"], ds["label"])):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """24 'real' and 24 blurred 'synthetic' 32 px grayscale PNGs, 12 per class in each."""
    root = tmp_path_factory.mktemp("protocol-folders")
    real = xray_like(24, size=32, seed=11)
    synthetic = transformed(xray_like(24, size=32, seed=12), blur)
    return _write(real, root / "real"), _write(synthetic, root / "synthetic")


def _ours(folders, extractor, protocol):
    res = evaluate(str(folders[0]), str(folders[1]), metrics=("fid",), extractor=extractor, protocol=protocol,
                   by_class=False, class_mix="synthetic", cache=False, progress=False, batch_size=8)
    assert res.protocol == get_protocol(protocol).name and res.compared_size == 32
    assert res.overall["n_real"] == 24 and res.overall["n_synthetic"] == 24
    return res.value("fid")


def _torch_fidelity(folders, name):
    import torch_fidelity

    out = torch_fidelity.calculate_metrics(input1=str(folders[0]), input2=str(folders[1]), fid=True, cuda=False,
                                           feature_extractor=name, samples_find_deep=True, cache=False, save_cpu_ram=True,
                                           verbose=False, batch_size=8)
    return out["frechet_inception_distance"]


def _clean_fid(folders, extractor, mode="clean", resize_to=None):
    from cleanfid import fid as cleanfid
    from cleanfid.resize import make_resizer

    library = {"clean": ("PIL", "bicubic"), "legacy_pytorch": ("PyTorch", "bilinear")}[mode]
    resize = make_resizer(library[0], False, library[1], (resize_to, resize_to)) if resize_to else None
    return cleanfid.compute_fid(str(folders[0]), str(folders[1]), mode=mode, custom_feat_extractor=CleanFidFeatureModel(extractor),
                                custom_fn_resize=resize, device=torch.device("cpu"), num_workers=0, batch_size=8, verbose=False)


def test_protocol_names_and_errors():
    assert set(list_protocols()) == {"torch-fidelity", "clean", "pytorch-fid", "legacy"}
    assert get_protocol(None).name == "torch-fidelity" and get_protocol("clean-fid").name == "clean"
    with pytest.raises(ValueError, match="unknown FID protocol 'tf'.*torch-fidelity"):
        get_protocol("tf")


def test_torch_fidelity_protocol_agrees_with_torch_fidelity_random_extractor(folders, random_extractor):
    theirs = _torch_fidelity(folders, "synthxray-random")
    ours = _ours(folders, random_extractor, "torch-fidelity")
    assert ours > 1 and ours == pytest.approx(theirs, rel=1e-3)
    assert _ours(folders, random_extractor, "legacy") != pytest.approx(theirs, rel=1e-2)  # the difference is real


def test_clean_protocol_agrees_with_clean_fid_random_extractor(folders, random_extractor):
    theirs = _clean_fid(folders, random_extractor, "clean", resize_to=random_extractor.input_size)
    assert _ours(folders, random_extractor, "clean") == pytest.approx(theirs, rel=5e-3)


def test_pytorch_fid_protocol_agrees_with_clean_fids_pytorch_mode(folders, random_extractor):
    """clean-fid's mode="legacy_pytorch" is its emulation of pytorch-fid's resize."""
    theirs = _clean_fid(folders, random_extractor, "legacy_pytorch", resize_to=random_extractor.input_size)
    assert _ours(folders, random_extractor, "pytorch-fid") == pytest.approx(theirs, rel=5e-3)


@needs_inception
@pytest.mark.slow  # about 100 Inception passes: a minute or two on a shared CPU
def test_torch_fidelity_protocol_agrees_with_torch_fidelity_inception(folders):
    ext = get_extractor("inception", device="cpu")
    theirs = _torch_fidelity(folders, "synthxray-inception")
    ours = _ours(folders, ext, "torch-fidelity")
    print(f"Inception FID, 24 vs 24 images at 32 px: torch-fidelity {theirs:.4f}, synthxray {ours:.4f}")
    assert ours == pytest.approx(theirs, rel=1e-3)


@needs_inception
@pytest.mark.slow
def test_clean_protocol_agrees_with_clean_fid_inception(folders):
    ext = get_extractor("inception", device="cpu")
    theirs = _clean_fid(folders, ext, "clean")  # clean-fid's own build_resizer("clean"): 299 px
    ours = _ours(folders, ext, "clean")
    print(f"Inception FID, 24 vs 24 images at 32 px: clean-fid {theirs:.4f}, synthxray {ours:.4f}")
    assert ours == pytest.approx(theirs, rel=5e-3)


def test_protocols_give_different_pixels_and_cache_keys(real_ds, random_extractor, tmp_path):
    pix = np.asarray(real_ds[0]["image"].convert("RGB")).transpose(2, 0, 1)
    outs = {name: get_protocol(name).resize(pix, 64) for name in list_protocols()}
    assert all(o.shape == (3, 64, 64) and o.dtype == torch.float32 for o in outs.values())
    assert not torch.allclose(outs["torch-fidelity"], outs["clean"], atol=0.5)
    assert torch.equal(outs["legacy"], outs["legacy"].round())  # legacy rounds to uint8; the others keep floats
    for name in ("torch-fidelity", "clean"):
        compute_features(real_ds, random_extractor, protocol=name, cache=True, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    again = compute_features(real_ds, random_extractor, protocol="clean", cache=True, cache_dir=tmp_path, progress=False)
    assert again.cached and again.extra["protocol"] == "clean"


def test_torch_fidelity_inception_weights_take_float_pixels(monkeypatch, tmp_path):
    """With torch-fidelity's own Inception, float pixels (clean / pytorch-fid) reach its network unquantised:
    on integral pixels the result equals its own uint8 forward, at 299 px and after its own resize."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from synthxray.evaluation.extractors import _float_into_torch_fidelity

    torch.save({}, tmp_path / "empty.pth")
    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state_dict: None)
    torch.manual_seed(0)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tmp_path / "empty.pth"))
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        own = net(x)[0]
        ours = _float_into_torch_fidelity(net, tf1_bilinear(x, 299))
        shifted = _float_into_torch_fidelity(net, tf1_bilinear(x, 299) + 0.4)

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert own.abs().max() > 0 and rel(ours, own) < 1e-5
    assert rel(shifted, own) > 1e-3  # fractions of a grey level reach the network: not rounded away
