"""evaluate() compares at one resolution, against the test split by default, in the real class mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinydata import transformed, xray_like

from synthxray.evaluation import ResolutionMatch, evaluate

FAST = dict(metrics=("fid",), extractor="random", cache=False, progress=False)


@pytest.fixture(scope="module")
def npz28(tmp_path_factory):
    """A MedMNIST-style npz at 28 px with train/val/test splits (test: 20 + 10 images)."""
    path = tmp_path_factory.mktemp("npz") / "xraymnist.npz"
    arrays = {}
    for split, n, seed in (("train", 24, 0), ("val", 8, 1), ("test", 30, 2)):
        ds = xray_like(n, size=28, seed=seed)
        labels = np.asarray(ds["label"])
        if split == "test":
            labels = (np.arange(n) % 3 == 0).astype(int)  # 20 class 0, 10 class 1: a 2:1 mix
        arrays[f"{split}_images"] = np.stack([np.asarray(im) for im in ds["image"]])
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(path, **arrays)
    return path


def _resized(ds, size):
    return transformed(ds, ResolutionMatch(size, 1))


def test_real_images_brought_to_the_synthetic_resolution_remove_the_resize_artefact(npz28):
    """The issue's measurement in small: the test images vs themselves resized 28 -> 32 px."""
    from synthxray import load_dataset

    test = load_dataset(npz28, split="test")
    same32 = _resized(test, 32)
    matched = evaluate(str(npz28), same32, class_mix="synthetic", **FAST)
    assert matched.real["split"] == "test" and matched.compared_size == 32
    assert abs(matched.value("fid")) < 1e-3  # the same images, once both are at 32 px
    assert "brought to the synthetic 32 px" in matched.settings["resolution_note"]
    with pytest.warns(UserWarning, match="without matching their resolution"):
        unmatched = evaluate(str(npz28), same32, match_resolution=None, class_mix="synthetic", **FAST)
    assert unmatched.value("fid") > 0.01 and "NOT matched" in unmatched.settings["resolution_note"]
    with pytest.warns(UserWarning):
        legacy = evaluate(str(npz28), same32, match_resolution=None, protocol="legacy", class_mix="synthetic", **FAST)
    assert legacy.value("fid") > 0.01 and legacy.protocol == "legacy"
    md = matched.to_markdown()
    assert "protocol **torch-fidelity**" in md and "compared at **32 px**" in md and "random CNN" in md


def test_match_resolution_real_brings_synthetic_to_the_real_size(npz28):
    from synthxray import load_dataset

    test = load_dataset(npz28, split="test")
    res = evaluate(str(npz28), _resized(test, 32), match_resolution="real", class_mix="synthetic", **FAST)
    assert res.compared_size == 28 and res.settings["synthetic_native_size"] == 32
    assert res.value("fid") > 1e-4  # 28 -> 32 -> 28 is not the identity, but it is close
    with pytest.raises(ValueError, match="match_resolution must be"):
        evaluate(str(npz28), test, match_resolution="both", **FAST)


def test_generator_resolution_comes_from_its_config(tiny_ddpm_dir, tiny_npz):
    from synthxray import load_generator

    gen = load_generator(tiny_ddpm_dir, device="cpu")
    res = evaluate(tiny_npz, gen, num_samples=8, generate_kwargs={"num_inference_steps": 2, "scheduler": "ddim", "batch_size": 8},
                   **FAST)
    assert res.compared_size == gen.info.resolution == 16
    assert res.settings["synthetic_resolution_from"] == "generator config" and res.settings["real_native_size"] == 28
    assert "real class mix" in res.settings["class_mix_note"]


def test_saved_synthetic_dataset_resolution_from_its_manifests_generator(tiny_ddpm_dir, tiny_npz, tmp_path):
    from synthxray import load_generator
    from synthxray.synthesis import generate_dataset

    gen = load_generator(tiny_ddpm_dir, device="cpu")
    generate_dataset(gen, per_class=3, output_dir=tmp_path / "syn", num_inference_steps=2, scheduler="ddim", progress=False)
    res = evaluate(tiny_npz, str(tmp_path / "syn"), **FAST)
    assert res.compared_size == 16 and res.settings["synthetic_resolution_from"] == "the manifest's generator config"
    data = json.loads(json.dumps(res.to_dict()))
    assert data["protocol"] == "torch-fidelity" and data["settings"]["compared_size"] == 16 and data["rows"][0]["n_real"] > 0


def test_test_split_is_the_default_and_training_images_are_announced(npz28, tmp_path):
    res = evaluate(str(npz28), str(npz28), synthetic_split="val", **FAST)
    assert res.real["split"] == "test" and res.real["num_images"] == 30
    with pytest.warns(UserWarning, match="TRAINING images"):
        res = evaluate(str(npz28), str(npz28), real_split="train", synthetic_split="val", **FAST)
    assert "**Warning" in res.to_markdown()
    # a folder with train/ and test/ sub-folders: test by default; a folder without splits: warned
    for split, seed in (("train", 3), ("test", 4)):
        for i, (im, label) in enumerate(zip(*(lambda d: (d["image"], d["label"]))(xray_like(6, size=32, seed=seed)))):
            folder = tmp_path / "kermany" / split / ("NORMAL" if label == 0 else "PNEUMONIA")
            folder.mkdir(parents=True, exist_ok=True)
            im.save(folder / f"{i}.png")
    res = evaluate(str(tmp_path / "kermany"), str(tmp_path / "kermany" / "train"), **FAST)
    assert res.real["split"] == "test"
    with pytest.warns(UserWarning, match="has no splits"):
        evaluate(str(tmp_path / "kermany" / "train"), str(tmp_path / "kermany" / "test"), **FAST)


def test_overall_row_draws_the_synthetic_side_in_the_real_class_mix(npz28):
    from synthxray import load_dataset

    balanced = _resized(load_dataset(npz28, split="train"), 28)  # 12 + 12 images, real test mix is 20:10
    res = evaluate(str(npz28), balanced, **FAST)
    assert res["0"]["n_synthetic"] == 12 and res["1"]["n_synthetic"] == 6  # 2:1, as many as class 0 allows
    assert "drawn in the real class mix" in res.settings["class_mix_note"]
    own = evaluate(str(npz28), balanced, class_mix="synthetic", **FAST)
    assert own["1"]["n_synthetic"] == 12 and "pools different class proportions" in own.settings["class_mix_note"]
    seeds = evaluate(str(npz28), balanced, seeds=2, **FAST)
    assert len(set(seeds.overall["fid"]["values"])) == 2  # each seed draws another subset in the same mix
