"""12/16-bit intensity: the default keeps absolute values (one window for the whole dataset); per-image is an option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
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


def _write_split(root, low: int, high: int, per_class: int = 2):
    """A class folder whose 12-bit images span exactly low..high (both classes)."""
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = _pattern(low, high, seed=10 * c + i)
            arr[0, 0], arr[-1, -1] = low, high
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def _expected(value: float, window) -> int:
    return int(np.clip((value - window[0]) * 255.0 / (window[1] - window[0]) + 0.5, 0, 255))


def test_a_split_folders_test_split_is_mapped_with_the_train_window(tmp_path):
    _write_split(tmp_path / "data" / "train", 300, 4095)
    _write_split(tmp_path / "data" / "test", 1000, 2000)  # narrower: its own range would stretch it to 0..255
    train = load_dataset(tmp_path / "data")
    test = load_dataset(tmp_path / "data", split="test")
    assert intensity_of(test) == intensity_of(train) == {"mode": "dataset", "window": [300.0, 4095.0]}
    assert np.asarray(test[0]["image"]).max() == _expected(2000, (300, 4095)) < 255
    assert np.asarray(test[0]["image"]).min() == _expected(1000, (300, 4095)) > 0
    # the same, for any other folder (a new site, a separate test folder): the recorded mapping given back
    _write_split(tmp_path / "site", 1000, 2000)
    site = load_dataset(tmp_path / "site", intensity=intensity_of(train))
    assert intensity_of(site) == intensity_of(train)
    assert [np.asarray(r["image"]).tolist() for r in site] == [np.asarray(r["image"]).tolist() for r in test]
    assert np.asarray(load_dataset(tmp_path / "site")[0]["image"]).max() == 255  # alone: its own range


def test_a_recorded_mapping_is_checked_and_a_per_image_record_is_reused(tmp_path):
    from synthxray.data import DataError

    root = _write_split(tmp_path / "x", 1000, 2000)
    with pytest.raises(DataError, match=r"intensity \(--intensity\): a recorded mapping's 'mode' must be one of"):
        load_dataset(root, intensity={"mode": "global", "window": [0, 1]})
    with pytest.raises(DataError, match="mode 'window' needs its 'window'"):
        load_dataset(root, intensity={"mode": "window"})
    with pytest.raises(ValueError, match="LOW < HIGH"):
        load_dataset(root, intensity={"mode": "dataset", "window": [5, 1]})
    per = load_dataset(root, intensity={"mode": "per-image", "window": None})
    assert intensity_of(per) == {"mode": "per-image", "window": None}
    forced = load_dataset(root, intensity={"mode": "window", "window": [0, 4095]})
    assert intensity_of(forced) == {"mode": "window", "window": [0.0, 4095.0]}
    assert np.asarray(forced[0]["image"]).max() == _expected(2000, (0, 4095))


def test_a_deep_npz_maps_every_split_with_the_train_range(tmp_path):
    train = np.stack([_pattern(300, 4095, seed=i) for i in range(4)])
    test = np.stack([_pattern(1000, 2000, seed=i) for i in range(2)])
    train[:, 0, 0], train[:, -1, -1], test[:, -1, -1] = 300, 4095, 2000
    np.savez(tmp_path / "deep.npz", train_images=train, train_labels=np.array([0, 1, 0, 1]),
             test_images=test, test_labels=np.array([0, 1]))
    tr, te = load_dataset(tmp_path / "deep.npz"), load_dataset(tmp_path / "deep.npz", split="test")
    assert intensity_of(tr) == intensity_of(te) == {"mode": "dataset", "window": [300.0, 4095.0]}
    assert np.asarray(te[0]["image"]).max() == _expected(2000, (300, 4095))
    assert np.asarray(load_dataset(tmp_path / "deep.npz", split="test", intensity="per-image")[0]["image"]).max() == 255


def test_saved_and_in_memory_deep_datasets_get_one_window(tmp_path):
    import datasets

    arrays = [_pattern(*RANGES[name], seed=i) for name in RANGES for i in range(3)]
    images = [Image.fromarray(a) for a in arrays]
    assert images[0].mode.startswith("I")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(RANGES))})
    deep = datasets.Dataset.from_dict({"image": images, "label": [0, 0, 0, 1, 1, 1]}, features=features)
    ds = load_dataset(deep)
    window = [float(min(a.min() for a in arrays)), float(max(a.max() for a in arrays))]
    assert intensity_of(ds) == {"mode": "dataset", "window": window}
    assert ds[0]["image"].mode == "L"
    means = _class_means(ds)
    assert max(means[0]) + 60 < min(means[1])  # dim stays dim
    deep.save_to_disk(str(tmp_path / "saved"))
    again = load_dataset(tmp_path / "saved")
    assert intensity_of(again) == intensity_of(ds)
    assert [np.asarray(r["image"]).tolist() for r in again] == [np.asarray(r["image"]).tolist() for r in ds]
    eight = load_dataset(ds)  # already 8-bit: nothing to do, the record kept
    assert eight is not None and intensity_of(eight) == intensity_of(ds)


def test_the_experiment_maps_test_and_validation_like_its_training_split(tmp_path):
    from synthxray.experiments.data import prepare_data
    from synthxray.experiments.spec import ExperimentSpec

    train = _write_split(tmp_path / "train", 300, 4095, per_class=6)
    test = _write_split(tmp_path / "test", 1000, 2000)
    spec = ExperimentSpec(real_train=str(train), test=str(test), val=str(test), output_dir=str(tmp_path / "out"),
                          recipes=["real"], backbones=["cnn"], image_size=16)
    data = prepare_data(spec)
    assert data.notes["intensity"] == {"mode": "dataset", "window": [300.0, 4095.0]}
    assert data.test_x.dtype == torch.uint8  # decoded once as 8-bit pixels
    assert int(data.test_x.max()) == int(data.val_x.max()) == _expected(2000, (300, 4095)) < 255  # alone it would be 255


def test_a_generated_dataset_carries_the_generators_mapping(tmp_path, tiny_ddpm_dir):
    import shutil

    from synthxray import generate_dataset, load_generator
    from synthxray.evaluation.inputs import synthetic_intensity
    from synthxray.hub.cards import render_dataset_card

    folder = tmp_path / "gen"
    shutil.copytree(tiny_ddpm_dir, folder, ignore=shutil.ignore_patterns("checkpoints"))
    info = json.loads((folder / "synthxray.json").read_text())
    info["data"]["intensity"] = {"mode": "dataset", "window": [300.0, 4095.0]}
    (folder / "synthxray.json").write_text(json.dumps(info))
    gen = load_generator(folder)
    assert synthetic_intensity(gen) == info["data"]["intensity"]
    ds = generate_dataset(gen, per_class=1, output_dir=tmp_path / "synth", num_inference_steps=2, progress=False)
    assert intensity_of(ds) == info["data"]["intensity"]
    manifest = json.loads((tmp_path / "synth" / "synthxray_dataset.json").read_text())
    assert manifest["intensity"] == info["data"]["intensity"]
    assert synthetic_intensity(str(tmp_path / "synth")) == info["data"]["intensity"]
    assert "one window, 300.0 to 4095.0 (`dataset`)" in render_dataset_card(tmp_path / "synth")
    assert intensity_of(generate_dataset(gen, per_class=1, num_inference_steps=2, progress=False)) == info["data"]["intensity"]


def test_prepare_records_the_mapping_and_reuses_it_with_intensity_from(tmp_path):
    from synthxray.cli import main
    from synthxray.data import DataError
    from synthxray.intensity import recorded_intensity

    _write_split(tmp_path / "train", 300, 4095)
    _write_split(tmp_path / "test", 1000, 2000)
    assert main(["prepare", "--input", str(tmp_path / "train"), "--output_dir", str(tmp_path / "p-train")]) == 0
    assert recorded_intensity(tmp_path / "p-train") == {"mode": "dataset", "window": [300.0, 4095.0]}
    assert main(["prepare", "--input", str(tmp_path / "test"), "--output_dir", str(tmp_path / "p-test"),
                 "--intensity_from", str(tmp_path / "p-train")]) == 0
    test = load_dataset(tmp_path / "p-test")
    assert intensity_of(test) == {"mode": "dataset", "window": [300.0, 4095.0]}
    assert np.asarray(test[0]["image"]).max() == _expected(2000, (300, 4095))
    with pytest.raises(DataError, match=r"no synthxray.json, synthxray_dataset.json or dataset_info.json"):
        recorded_intensity(tmp_path / "train")


def test_an_8bit_test_split_does_not_read_the_train_split(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            Image.fromarray(np.full((8, 8), 40, np.uint8)).save(tmp_path / "data" / split / c / "x.png")
    (tmp_path / "data" / "train" / "a" / "broken.png").write_bytes(b"not a png")  # read only if train is scanned
    test = load_dataset(tmp_path / "data", split="test")
    assert intensity_of(test) is None and len(test) == 2
