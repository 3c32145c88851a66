"""Recipes build the right number of real and synthetic images per class, deterministically per seed."""

from __future__ import annotations

import numpy as np
import pytest

from synthxray import augment
from synthxray.classes import capped_split, largest_remainder
from synthxray.experiments.recipes import Recipe, oversample_counts, parse_recipe, recipe_counts
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
    with pytest.raises(ValueError, match="at most 100%"):  # a share of the pool above 100% (the default convention)
        augment(real_train, synthetic, ratio=2.0)
    with pytest.raises(ValueError, match="recipe 'synth-200'.*more synthetic images than the pool"):  # 200% of 80 real > 40 + 40
        augment(real_train, synthetic, recipe="synth-200", ratio_of="real")
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


def test_capped_split_takes_what_each_class_holds():
    assert capped_split(2400, [1, 1], [1800, 600]) == [1800, 600]  # the whole pool
    assert capped_split(1200, [1, 1], [1800, 600]) == [600, 600]
    assert capped_split(1200, [1, 1], [1800, 400]) == [800, 400]
    assert capped_split(5, [1, 1, 1], [1, 10, 10]) == [1, 2, 2]
    assert capped_split(4, [3, 1], [1, 100]) == [1, 3]
    with pytest.raises(ValueError, match="cannot take 5"):
        capped_split(5, [1, 1], [2, 2])


def test_unequal_pool_counts_default_and_strict():
    real, pool = [30, 50], [10, 70]
    # default: synth-100 = the whole pool, synth-50 as equal as the pool allows; balanced-real copies the same counts
    assert recipe_counts(real, pool, parse_recipe("synth-100")) == (real, [10, 70])
    assert recipe_counts(real, pool, parse_recipe("synth-50")) == (real, [10, 30])
    assert oversample_counts(real, pool, parse_recipe("balanced-real-100")) == [10, 70]
    assert recipe_counts(real, pool, parse_recipe("synth-25")) == (real, [10, 10])
    # the strict rule: the exact equal split or an error naming the recipe, the class and the way out
    with pytest.raises(ValueError, match=r"recipe 'synth-100'.*class 0: needs 40, pool has 10.*strict_counts: false"):
        recipe_counts(real, pool, parse_recipe("synth-100"), strict=True)
    assert recipe_counts(real, pool, parse_recipe("synth-25"), strict=True) == (real, [10, 10])
    # asking for more than the whole pool still fails without strict (ratio_of: real)
    with pytest.raises(ValueError, match="more synthetic images than the pool holds"):
        recipe_counts(real, pool, parse_recipe("synth-150"), ratio_of="real")


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


SEED_004 = ["baseline", "synth-25", "synth-50", "synth-100", "limited-10", "limited-25", "synth-only"]


def test_seed_004_names_mean_shares_of_the_pool_by_default(real_train, pool200):
    pool = pool200  # a 200-image pool, more than the 80 real images
    want = {"synth-25": [25, 25], "synth-50": [50, 50], "synth-100": [100, 100], "limited-10": [100, 100], "limited-25": [100, 100], "synth-only": [100, 100]}
    for name in SEED_004:
        r = parse_recipe(name)
        ds = augment(real_train, pool if r.uses_synthetic else None, recipe=r, seed=0)
        assert _per_class(ds, "synthetic") == want.get(name, [0, 0]), name
    # the other convention: N% of the real count (80 real: synth-100 = 80 = 40 + 40)
    ds = augment(real_train, pool, recipe="synth-100", ratio_of="real")
    assert _per_class(ds, "synthetic") == [40, 40]


def test_describe_tells_the_truth_under_both_conventions():
    r = parse_recipe("synth-50")
    assert r.describe() == "all real + 50% of the synthetic pool (equal per class as far as the pool allows)"
    assert r.describe("real") == "all real + synthetic images = 50% of the real count (equal per class as far as the pool allows)"
    assert r.describe(strict=True) == "all real + 50% of the synthetic pool (equal per class, exactly)"
    assert parse_recipe("limited-10").describe() == "10% of each real class + the whole synthetic pool"
    assert "oversampled" in parse_recipe("balanced-real").describe() and "50% of the synthetic pool" in parse_recipe("balanced-real").describe()
    assert "class-weighted" in parse_recipe("reweighted-real").describe()
    assert "fine-tuned on the real" in parse_recipe("pretrain-synth").describe()
    assert Recipe("x", synthetic_ratio=0.5, ratio_of="real").describe("synthetic").endswith("50% of the real count (equal per class as far as the pool allows)")  # its own override wins


def test_a_share_above_the_pool_is_rejected_by_name():
    with pytest.raises(ValueError, match="recipe 'synth-150' asks for 150% of the synthetic pool"):
        parse_recipe("synth-150").check()
    parse_recipe("synth-150").check("real")  # fine as a share of the real count


def test_balanced_real_oversamples_real_images_to_synth_n_counts(real_train, synthetic):
    # synth-50 of the 40 + 40 pool adds 20 + 20; balanced-real draws 20 + 20 more *real* images instead
    assert recipe_counts([30, 50], [40, 40], parse_recipe("balanced-real")) == ([50, 70], [0, 0])
    assert oversample_counts([30, 50], [40, 40], parse_recipe("balanced-real-100")) == [40, 40]
    assert oversample_counts([30, 50], None, parse_recipe("balanced-real-25"), ratio_of="real") == [10, 10]  # 25% of 80 real
    ds = augment(real_train, None, recipe="balanced-real", synthetic_counts=[40, 40], seed=4)
    assert _per_class(ds, "real") == [30, 50] and _per_class(ds, "real-repeat") == [20, 20] and _per_class(ds, "synthetic") == [0, 0]
    for label, source, index in zip(ds["label"], ds["source"], ds["source_index"]):
        assert real_train[index]["label"] == label  # repeats are real images of their own class
    # the same class mix and epoch length as synth-50
    synth = augment(real_train, synthetic, recipe="synth-50", seed=4)
    assert np.bincount(ds["label"]).tolist() == np.bincount(synth["label"]).tolist()
    with pytest.raises(ValueError, match="synthetic pool"):
        augment(real_train, None, recipe="balanced-real")  # a share of which pool?


def test_control_recipes_parse():
    assert parse_recipe("balanced-real").oversample_like == pytest.approx(0.5)
    assert parse_recipe("balanced-real-100").oversample_like == pytest.approx(1.0)
    assert parse_recipe("reweighted-real").class_weight == "balanced" and not parse_recipe("reweighted-real").uses_synthetic
    p = parse_recipe("pretrain-synth")
    assert p.pretrain_synthetic and p.synthetic_ratio == "all" and p.real_fraction == 1
    with pytest.raises(ValueError, match="pretrain_synthetic needs"):
        Recipe("x", pretrain_synthetic=True)
    with pytest.raises(ValueError, match="oversample_like"):
        Recipe("x", synthetic_ratio=0.5, oversample_like=0.5)
