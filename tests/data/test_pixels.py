"""One pixel rule: 8/12/16-bit and float images look the same to training, evaluation and the experiments."""

from __future__ import annotations

import numpy as np
import pytest
from hospitaldata import make_16bit_folder, ramp
from PIL import Image

from synthxray import load_dataset
from synthxray.data import image_transform, is_grayscale, resize_center_crop, to_mode
from synthxray.pixels import parse_window, to_8bit, window_from_center_width


def _12bit(size=32) -> Image.Image:
    return Image.fromarray(np.linspace(0, 4095, size * size).reshape(size, size).astype(np.uint16))


def test_12bit_ramp_is_rescaled_not_clipped():
    im = _12bit()
    assert im.mode == "I;16"
    assert (np.asarray(im.convert("L")) == 255).mean() > 0.9  # what convert("L") did: 94% white
    out = np.asarray(to_mode(im, 1))
    assert out.min() == 0 and out.max() == 255 and abs(out.mean() - 127.5) < 2
    assert (out == 255).mean() < 0.01


@pytest.mark.parametrize("array", [
    np.linspace(0, 65535, 256).reshape(16, 16).astype(np.uint16),
    np.linspace(-1000, 3000, 256).reshape(16, 16).astype(np.int32),
    np.linspace(0.2, 0.7, 256).reshape(16, 16).astype(np.float32),
])
def test_deep_images_use_the_full_range(array, tmp_path):
    path = tmp_path / "deep.tif"
    Image.fromarray(array).save(path)
    with Image.open(path) as im:
        out = np.asarray(to_8bit(im))
        assert im.mode in ("I;16", "I", "F") and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)  # order kept
    assert np.array_equal(np.asarray(to_8bit(array)), out)  # arrays and images follow one rule


def test_window_maps_low_high_and_clips():
    im = _12bit()
    out = np.asarray(to_8bit(im, window=(0, 8191)))  # a 13-bit window: the 12-bit ramp fills half of it
    assert out.max() == 127 and out.min() == 0  # 4095 * 255 / 8191
    out = np.asarray(to_8bit(im, window=(1000, 2000)))
    arr = np.asarray(im)
    assert (out[arr <= 1000] == 0).all() and (out[arr >= 2000] == 255).all()
    assert parse_window("0,4095") == (0.0, 4095.0) and parse_window(None) is None
    for bad in ("5", "3,1", "a,b"):
        with pytest.raises(ValueError, match="--window"):
            parse_window(bad)
    assert window_from_center_width(40, 400) == (-160, 239)


def test_8bit_images_are_unchanged():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(to_8bit(Image.fromarray(gray))), gray)
    assert np.array_equal(np.asarray(to_8bit(Image.fromarray(rgb))), rgb)
    assert to_8bit(Image.fromarray(gray).convert("LA")).mode == "L"  # grayscale stays grayscale
    assert to_8bit(Image.fromarray(rgb).convert("RGBA")).mode == "RGB"
    assert to_8bit(Image.fromarray(np.zeros((4, 4), np.uint16) + 7)).getextrema() == (0, 0)  # constant: black, no NaN


def test_one_rule_for_training_evaluation_and_experiments(tmp_path):
    from synthxray.evaluation.extractors import to_uint8_rgb
    from synthxray.evaluation.memorization import pixel_matrix
    from synthxray.experiments.train import encode_images

    # per-image: the deep files stay lazy, so every consumer applies the rule itself (the default reads them once, test_intensity.py)
    ds = load_dataset(make_16bit_folder(tmp_path / "x16", high=4095), intensity="per-image")
    assert ds[0]["image"].mode == "I;16" and is_grayscale(ds)
    train = np.stack([image_transform(16, 1, normalize=False)(r["image"]).numpy()[0] for r in ds])
    train8 = np.round(train * 255).astype(np.uint8)
    assert train8.max() == 255 and (train8 == 255).mean() < 0.1  # not flattened to white
    evaluation = np.stack([to_uint8_rgb(r["image"], 16)[0] for r in ds])
    experiments, _ = encode_images(ds, 16, 1)
    memo = (pixel_matrix(ds, 16).reshape(len(ds), 3, 16, 16)[:, 0] * 255).round().astype(np.uint8)
    assert np.array_equal(train8, evaluation)
    assert np.array_equal(train8, experiments.numpy()[:, 0])
    assert np.array_equal(train8, memo)
    rgb = np.asarray(to_mode(resize_center_crop(ds[0]["image"], 16), 3))
    assert rgb.shape == (16, 16, 3) and np.array_equal(rgb[..., 0], train8[0])


@pytest.mark.parametrize("high", [4095, 65535])
def test_evaluate_sees_16bit_as_its_8bit_rendering(tmp_path, high):
    """FID between a 12/16-bit folder and its 8-bit rendering by the rule (the dataset's one window) is 0: evaluation reads the same pixels."""
    from synthxray.data import dataset_window
    from synthxray.evaluation import evaluate

    real = make_16bit_folder(tmp_path / "deep", high=high)
    window = dataset_window(sorted(real.rglob("*.png")))
    eight = tmp_path / "eight"
    for f in real.rglob("*.png"):
        (eight / f.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(f) as im:
            to_8bit(im, window).save(eight / f.parent.name / f.name)
    res = evaluate(real, eight, metrics=("fid",), extractor="random", by_class=False, cache=False, progress=False)
    assert abs(res.value("fid")) < 1e-3
    clipped = tmp_path / "clipped"  # what training used to see: convert("L")
    for f in real.rglob("*.png"):
        (clipped / f.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(f) as im:
            im.convert("L").save(clipped / f.parent.name / f.name)
    assert evaluate(real, clipped, metrics=("fid",), extractor="random", by_class=False, cache=False, progress=False).value("fid") > 0.1  # 100x the tolerance above


def test_window_at_load_time(tmp_path):
    folder = make_16bit_folder(tmp_path / "x16", high=4095, per_class=2)
    ds = load_dataset(folder, window=(0, 8190))
    assert ds[0]["image"].mode == "L" and ds[0]["image"].getextrema()[1] <= 130  # half the window's range
    assert ds[0]["image"].getextrema() != load_dataset(folder)[0]["image"].getextrema()
    with pytest.raises(ValueError, match="window"):
        load_dataset(folder, window=(5, 1))


def test_npz_with_16bit_arrays_is_rescaled(tmp_path):
    images = np.stack([ramp(16, 4095, seed=i) for i in range(4)])
    np.savez(tmp_path / "deep.npz", train_images=images, train_labels=np.array([0, 1, 0, 1])[:, None])
    im = load_dataset(tmp_path / "deep.npz")[0]["image"]
    assert im.mode == "L" and im.getextrema() == (0, 255)


def test_window_is_refused_where_it_cannot_apply(tiny_npz, tmp_path):
    from synthxray.data import DataError

    with pytest.raises(DataError, match=r"tinymnist.npz: window/use_file_window/invert .* not to an .npz file; use intensity= there"):
        load_dataset(tiny_npz, window=(0, 100))
    load_dataset(tiny_npz).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match="not to a save_to_disk dataset folder"):
        load_dataset(tmp_path / "saved", invert=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("intensity", ["dataset", "per-image"])
def test_float_tiff_with_non_finite_pixels_is_refused_naming_the_file(tmp_path, bad, intensity):
    from synthxray.data import DataError

    for c in ("NORMAL", "PNEUMONIA"):
        (tmp_path / c).mkdir()
        for i in range(2):
            arr = np.linspace(0.2, 0.7, 64).reshape(8, 8).astype(np.float32) + i
            Image.fromarray(arr).save(tmp_path / c / f"{i}.tif")
    arr = np.linspace(0.2, 0.7, 64).reshape(8, 8).astype(np.float32)
    arr[2, 3] = bad
    Image.fromarray(arr).save(tmp_path / "PNEUMONIA" / "bad.tif")
    with pytest.raises(DataError, match=r"bad\.tif: [01] NaN and [01] infinite pixel\(s\) of 64"):
        ds = load_dataset(tmp_path, intensity=intensity)
        [to_mode(row["image"], 1) for row in ds]  # per-image: the files are decoded lazily, by the transforms


def test_npz_with_non_finite_pixels_is_refused_naming_the_file_and_the_image(tmp_path):
    from synthxray.data import DataError

    images = np.stack([np.linspace(0, 1, 64).reshape(8, 8) for _ in range(4)]).astype(np.float32)
    images[2] = np.nan  # an all-NaN image used to become a black image with a label
    np.savez(tmp_path / "nan.npz", train_images=images, train_labels=np.array([0, 1, 0, 1])[:, None])
    with pytest.raises(DataError, match=r"nan\.npz: train_images\[2\]: 64 NaN and 0 infinite pixel\(s\) of 64"):
        load_dataset(tmp_path / "nan.npz")
    with pytest.raises(DataError, match="1 infinite"):
        to_8bit(np.array([[0.0, np.inf], [1.0, 2.0]]))
