"""The extractor registry: names, torch-fidelity registration, DINOv2 from a local folder, user modules, Inception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from synthxray.evaluation import compute_features, get_extractor, inception_available, list_extractors


def test_registry_names_and_torch_fidelity_registration():
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    assert {"inception", "dinov2", "random", "module"} <= set(list_extractors())
    for name in ("inception", "dinov2", "random", "module"):
        assert f"synthxray-{name}" in FEATURE_EXTRACTORS_REGISTRY
    with pytest.raises(KeyError, match="unknown feature extractor 'nope'.*inception"):
        get_extractor("nope")


def test_torch_fidelity_calculate_metrics_agrees_with_evaluate(real_ds, other_real_ds, random_extractor):
    """torch-fidelity's own pipeline on whole native-size images, with our registered extractor, gives the FID
    we compute from features under the default (torch-fidelity) protocol."""
    import torch_fidelity
    from torch.utils.data import Dataset

    from synthxray.evaluation.extractors import to_uint8_rgb
    from synthxray.evaluation.fid import fid_from_features

    class Images(Dataset):
        def __init__(self, ds):
            self.ims = [torch.from_numpy(to_uint8_rgb(im, None)) for im in ds["image"]]

        def __len__(self):
            return len(self.ims)

        def __getitem__(self, i):
            return self.ims[i]

    out = torch_fidelity.calculate_metrics(input1=Images(real_ds), input2=Images(other_real_ds), fid=True, cuda=False,
                                           feature_extractor="synthxray-random", verbose=False, cache=False,
                                           save_cpu_ram=True, batch_size=16)
    ours = fid_from_features(compute_features(real_ds, random_extractor, progress=False).features,
                             compute_features(other_real_ds, random_extractor, progress=False).features)
    assert out["frechet_inception_distance"] == pytest.approx(ours, rel=1e-3, abs=1e-6)


def _tiny_dinov2(path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=224, patch_size=32)
    Dinov2Model(cfg).save_pretrained(path)
    return path


def test_dinov2_from_a_local_checkpoint(tmp_path, real_ds):
    path = _tiny_dinov2(tmp_path / "dino")
    for spec in (str(path), f"dinov2:{path}"):
        ext = get_extractor(spec, device="cpu")
        assert ext.input_size == 224 and "DINOv2" in ext.description
        feats = compute_features(real_ds.select(range(6)), ext, progress=False)
        assert feats.features.shape == (6, 24) and np.isfinite(feats.features).all()
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="not DINOv2"):
        get_extractor(str(tmp_path / "vit"), device="cpu")


class _Pool(nn.Module):
    input_size = 32

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)

    def forward(self, x):
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape[-1] == 32
        return self.conv(x)  # (N, 5, H, W): mean-pooled to (N, 5)


def test_user_module_instance_torchscript_and_pickle(tmp_path, real_ds):
    torch.manual_seed(0)
    net = _Pool().eval()
    ref = compute_features(real_ds.select(range(5)), get_extractor(net, device="cpu"), progress=False).features
    assert ref.shape == (5, 5)
    scripted = tmp_path / "net.pt"
    torch.jit.trace(net, torch.rand(1, 3, 32, 32)).save(str(scripted))
    pickled = tmp_path / "net.pth"
    torch.save(net, pickled)
    for path in (scripted, pickled):
        ext = get_extractor(str(path), input_size=32, device="cpu")
        np.testing.assert_allclose(compute_features(real_ds.select(range(5)), ext, progress=False).features, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not inception_available()[0], reason=f"Inception not tested: {inception_available()[1]}")
def test_inception_offline_weights_give_2048_features():
    ext = get_extractor("inception", device="cpu")
    assert ext.input_size == 299 and "Inception" in ext.description
    x = torch.zeros(2, 3, 299, 299, dtype=torch.uint8)
    x[1] = 255
    with torch.inference_mode():
        f = ext(x)[0]
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all()  # pool3 features follow a ReLU
    assert not torch.allclose(f[0], f[1])
