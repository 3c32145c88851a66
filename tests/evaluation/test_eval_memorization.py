"""Memorization: copies of training images are found, with their training index, and flagged under the threshold."""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image
from tinydata import xray_like

from synthxray.evaluation import memorization
from synthxray.evaluation.memorization import pairs_grid


def test_copies_of_training_images_are_found_and_flagged(tmp_path, random_extractor):
    train = xray_like(40, seed=10)
    fresh = xray_like(12, seed=11)
    copies = [3, 17, 25, 31]
    synthetic = datasets.Dataset.from_dict(
        {"image": [train[i]["image"] for i in copies] + list(fresh["image"]), "label": [train[i]["label"] for i in copies] + list(fresh["label"])},
        features=train.features)
    rep = memorization(train, synthetic, extractor=random_extractor, cache=False, output_dir=tmp_path, progress=False)
    for space in ("pixel", "feature"):
        s = rep["spaces"][space]
        top = s["closest_pairs"][: len(copies)]
        assert sorted(j for _, j, _ in top) == sorted(copies)
        assert all(d < 1e-4 for *_, d in top)
        # the 4 copies sit under the threshold, the fresh images (drawn like the training ones) mostly do not
        assert s["fraction_below"] >= len(copies) / len(synthetic)
        assert s["fraction_below"] < 0.6
    assert (tmp_path / "memorization_pixel_pairs.png").is_file() and (tmp_path / "memorization_hist.png").is_file()


def test_fresh_images_are_not_flagged(random_extractor):
    rep = memorization(xray_like(40, seed=12), xray_like(16, seed=13), extractor=random_extractor, cache=False, progress=False)
    assert rep["spaces"]["pixel"]["fraction_below"] < 0.2
    assert np.isfinite(rep["spaces"]["feature"]["synthetic_to_train"]["median"])


def _tinted(ds, rgb):
    """``ds`` as RGB images, each grayscale value scaled per channel by ``rgb`` (a colour the grid must keep)."""
    ims = [Image.merge("RGB", [im.point(lambda v, f=f: int(v * f)) for f in rgb]) for im in ds["image"]]
    return datasets.Dataset.from_dict({"image": ims, "label": ds["label"]}, features=ds.features)


def test_pairs_grid_keeps_the_images_colour():
    red, green = _tinted(xray_like(4, seed=14), (1.0, 0.2, 0.2)), _tinted(xray_like(4, seed=15), (0.2, 1.0, 0.2))
    grid = pairs_grid(red, green, [(0, 1, 0.0), (2, 3, 0.0)], size=16, pairs_per_row=2)
    assert grid.mode == "RGB"
    arr = np.asarray(grid).astype(int)
    synthetic_tile, train_tile = arr[2:18, 2:18], arr[2:18, 20:36]  # 2 px white padding around 16 px tiles
    assert (synthetic_tile[..., 1] > synthetic_tile[..., 0]).mean() > 0.9  # green synthetic image first
    assert (train_tile[..., 0] > train_tile[..., 1]).mean() > 0.9  # then its red training neighbour
    np.testing.assert_array_equal(train_tile, np.asarray(red[1]["image"].resize((16, 16))))
    gray = pairs_grid(xray_like(2, seed=16), xray_like(2, seed=17), [(0, 1, 0.0)], size=16)
    assert gray.mode == "L"
