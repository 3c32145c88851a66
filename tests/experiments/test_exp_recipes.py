"""Recipes build the right number of real and synthetic images per class, deterministically per seed."""

from __future__ import annotations

import numpy as np
import pytest

from synthxray import augment
from synthxray.classes import largest_remainder
from synthxray.experiments.recipes import Recipe, parse_recipe, recipe_counts
from synthxray.experiments.train import epoch_batches

# real: NORMAL 30 / PNEUMONIA 50 (80); synthetic pool: normal 40 / pneumonia 40
EXPECTED = {
    # recipe: (real per class, synthetic per class), balanced synthetic classes
    "baseline": ([30, 50], [0, 0]),
    "real-only": ([30, 50], [0, 0]),
    "synth-25": ([30, 50], [10, 10]),  # 25% of 80 real = 20 synthetic, split evenly
    "synth-50": ([30, 50], [20, 20]),
    "synth-100": ([30, 50], [40, 40]),
    "limited-10": ([3, 5], [40, 40]),  # 10% of each real class + the whole pool
    "limited-25": ([8, 13], [40, 40]),  # 7.5 -> 8 and 12.5 -> 13 (halves round up)
    "synth-only": ([0, 0], [40, 40]),
    "synthetic-only": ([0, 0], [40, 40]),
    "mixed": ([30, 50], [40, 40]),
    "real-50": ([15, 25], [0, 0]),
    "synth-37": ([30, 50], [15, 15]),  # any ratio: 29.6 -> 30
}


def _per_class(ds, source):
    rows = [l for l, s in zip(ds["label"], ds["source"]) if s == source]
    return np.bincount(rows, minlength=2).tolist()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_recipe_builds_the_right_counts_per_class(name, real_train, synthetic):
    r = parse_recipe(name)
    ratio = r.synthetic_ratio if r.uses_synthetic else 0.0
    ds = augment(real_train, synthetic if r.uses_synthetic else None, ratio=ratio, real_fraction=r.real_fraction, seed=3)
    real_counts, synth_counts = EXPECTED[name]
    assert _per_class(ds, "real") == real_counts
    assert _per_class(ds, "synthetic") == synth_counts
    assert ds.features["label"].names == ["NORMAL", "PNEUMONIA"]  # synthetic labels mapped onto the real names
    assert len(ds) == sum(real_counts) + sum(synth_counts)


def test_balance_real_follows_real_class_ratio(real_train, synthetic):
    ds = augment(real_train, synthetic, ratio=0.5, seed=0, balance="real")
    assert _per_class(ds, "synthetic") == [15, 25]  # 40 split 30:50


def test_synthetic_rows_keep_their_class_when_mapped(real_train, synthetic):
    ds = augment(real_train, synthetic, ratio=0.25, seed=1)
    for label, source, index in zip(ds["label"], ds["source"], ds["source_index"]):
        origin = synthetic if source == "synthetic" else real_train
        assert origin[index]["label"] == label


def test_seed_decides_which_rows(real_train, synthetic):
    a = augment(real_train, synthetic, ratio="all", real_fraction=0.25, seed=0)["source_index"]
    b = augment(real_train, synthetic, ratio="all", real_fraction=0.25, seed=0)["source_index"]
    c = augment(real_train, synthetic, ratio="all", real_fraction=0.25, seed=1)["source_index"]
    assert a == b and a != c


def test_class_name_mismatch_is_a_clear_error(real_train):
    import datasets

    other = datasets.Dataset.from_dict({"image": [None] * 2, "label": [0, 1]},
                                       features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["normal", "covid"])}))
    with pytest.raises(ValueError, match="do not match the real class names"):
        augment(real_train, other, ratio=0.1)


def test_pool_too_small_is_an_error(real_train, synthetic):
    with pytest.raises(ValueError, match="more synthetic images than the pool"):
        augment(real_train, synthetic, ratio=2.0)
    with pytest.raises(ValueError, match="needs synthetic images"):
        augment(real_train, None, ratio=0.5)


def test_parse_recipe_names_and_mappings():
    assert parse_recipe("Synth-50") == Recipe("synth-50", synthetic_ratio=0.5)
    assert parse_recipe("limited-10").real_fraction == pytest.approx(0.1)
    assert parse_recipe("mixed-30").batch_synthetic_fraction == pytest.approx(0.3)
    custom = parse_recipe({"name": "half", "real_fraction": 0.5, "synthetic_ratio": "all", "balance": "real"})
    assert custom.real_fraction == 0.5 and custom.synthetic_ratio == "all" and custom.balance == "real"
    with pytest.raises(ValueError, match="unknown recipe"):
        parse_recipe("more-synth")
    with pytest.raises(ValueError, match="unknown key"):
        parse_recipe({"name": "x", "ratio": 0.5})


def test_counts_helpers():
    assert largest_remainder(7, [1, 1, 1]) == [3, 2, 2]
    assert largest_remainder(10, [1, 3]) == [3, 7]
    assert recipe_counts([10, 30], [20, 20], parse_recipe("synth-50"), "balanced") == ([10, 30], [10, 10])
    assert recipe_counts([10, 30], [20, 20], parse_recipe("synth-50"), "real") == ([10, 30], [5, 15])


def test_per_batch_ratio_for_mixed():
    rng = np.random.default_rng(0)
    batches = epoch_batches(n_real=100, n_synth=30, batch_size=10, synth_fraction=0.3, rng=rng)
    assert len(batches) == 13
    for b in batches:
        assert len(b) == 10 and (b >= 100).sum() == 3
    plain = epoch_batches(n_real=100, n_synth=30, batch_size=10, synth_fraction=None, rng=rng)
    assert sorted(np.concatenate(plain).tolist()) == list(range(130))


def test_ratio_of_the_synthetic_pool_is_seed_004s_convention(real_train, synthetic):
    # seed 004: Synth-25 = 25% of the synthetic pool (here 80 images -> 20), not of the real set
    ds = augment(real_train, synthetic, ratio=0.25, seed=0, ratio_of="synthetic")
    assert _per_class(ds, "synthetic") == [10, 10] and _per_class(ds, "real") == [30, 50]
    ds = augment(real_train, synthetic, ratio=1.0, seed=0, ratio_of="synthetic")
    assert _per_class(ds, "synthetic") == [40, 40]
