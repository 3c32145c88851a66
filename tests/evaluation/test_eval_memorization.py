"""Memorization: copies of training images are found, with their training index, and flagged under the threshold."""

from __future__ import annotations

import datasets
import numpy as np
from tinydata import xray_like

from synthxray.evaluation import memorization


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
