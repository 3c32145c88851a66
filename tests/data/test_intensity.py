"""12/16-bit intensity: the default keeps absolute values (one window for the whole dataset); per-image is an option."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hospitaldata import write_dicom
from PIL import Image

from synthxray import load_dataset
from synthxray.data import dataset_window, intensity_of


def _pattern(low: int, high: int, seed: int, size: int = 16) -> np.ndarray:
    """The same spatial pattern (a noisy ramp), scaled into low..high: only absolute intensity tells the classes apart."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 1, size)[None, :].repeat(size, 0) + rng.normal(0, 0.02, (size, size))
    return np.rint(low + np.clip(base, 0, 1) * (high - low)).astype(np.uint16)


RANGES = {"dim": (300, 2000), "bright": (2300, 4095)}


def _write(root, kind: str, per_class: int = 5):
    for name, (lo, hi) in RANGES.items():
        for i in range(per_class):
            arr = _pattern(lo, hi, seed=i)
            if kind == "png":
                (root / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / name / f"{i}.png")
            else:
                write_dicom(root / name / f"{i}.dcm", arr)  # no window in the file, BitsStored 12
    return root


def _class_means(ds) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for row in ds:
        out.setdefault(row["label"], []).append(float(np.asarray(row["image"].convert("L"), dtype=float).mean()))
    return out


@pytest.mark.parametrize("kind", ["png", "dicom"])
def test_two_12bit_classes_stay_separable_at_the_defaults(tmp_path, kind):
    root = _write(tmp_path / kind, kind)
    ds = load_dataset(root)
    means = _class_means(ds)
    names = ds.features["label"].names  # sorted: bright, dim
    bright, dim = means[names.index("bright")], means[names.index("dim")]
    assert max(dim) + 60 < min(bright), (dim, bright)  # one mapping for all: the dim class stays dim
    rec = intensity_of(ds)
    assert rec["mode"] == "dataset" and rec["window"][0] <= 300 + 10 and rec["window"][1] >= 4095 - 10
    assert dataset_window(sorted(root.rglob("*.*"))) == tuple(rec["window"])
    # the old rule, as an explicit option: every image stretched to 0..255, the classes look alike
    per = load_dataset(root, intensity="per-image")
    pm = _class_means(per)
    assert abs(np.mean(pm[0]) - np.mean(pm[1])) < 5
    # a test split mapped like the training split: the recorded window, given back
    again = load_dataset(root, window=rec["window"])
    assert [np.asarray(r["image"]).tolist() for r in again] == [np.asarray(r["image"]).tolist() for r in ds]


def test_the_mapping_is_recorded_in_a_saved_dataset_and_bad_values_are_named(tmp_path):
    root = _write(tmp_path / "png", "png", per_class=2)
    ds = load_dataset(root)
    ds.save_to_disk(str(tmp_path / "saved"))
    assert intensity_of(load_dataset(tmp_path / "saved"))["mode"] == "dataset"
    info = json.loads((tmp_path / "saved" / "dataset_info.json").read_text())
    assert "synthxray_intensity" in info["description"]
    with pytest.raises(ValueError, match=r"intensity \(--intensity\) must be one of \['dataset', 'per-image'\], got 'global'"):
        load_dataset(root, intensity="global")


def test_8bit_folders_record_nothing_and_stay_lazy(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.full((8, 8), 40 if c == "a" else 200, np.uint8)).save(tmp_path / c / "x.png")
    ds = load_dataset(tmp_path)
    assert intensity_of(ds) is None and np.asarray(ds[0]["image"]).max() == 40


def test_the_generator_card_names_the_mapping(tmp_path):
    from synthxray.hub.cards import render_generator_card

    info = {"backend": "ddpm", "class_names": ["dim", "bright"], "channels": 1, "resolution": 32,
            "data": {"source": "/data/hospital", "num_images": 10, "intensity": {"mode": "dataset", "window": [300.0, 4095.0]}}}
    (tmp_path / "synthxray.json").write_text(json.dumps(info))
    text = render_generator_card(tmp_path)
    assert "one window for the whole dataset, 300.0 to 4095.0 (`dataset`)" in text
    info["data"]["intensity"] = {"mode": "per-image", "window": None}
    (tmp_path / "synthxray.json").write_text(json.dumps(info))
    assert "each image from its own minimum to its maximum" in render_generator_card(tmp_path)
