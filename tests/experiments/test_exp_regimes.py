"""The limited-data regime grid: expansion, count-matched controls, the worth in real images, the report."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from synthxray import run_experiment
from synthxray.experiments.recipes import recipe_counts, select_indices
from synthxray.experiments.regimes import RegimeSpec, real_images_worth, regime_markdown, regime_name, regime_rows, worth_text
from synthxray.experiments.spec import load_spec


def test_grid_expands_fraction_by_fraction():
    spec = RegimeSpec(fractions=[0.25, 0.01], recipes=["limited", "real", "balanced-real", "pretrain-synth", "mixed", "reweighted-real"])
    names = [r.name for r in spec.expand()]
    assert names[:6] == ["real-f1", "balanced-real-f1", "reweighted-real-f1", "limited-f1", "pretrain-synth-f1", "mixed-f1"]
    assert names[6] == "real-f25" and len(names) == 12
    by = {r.name: r for r in spec.expand()}
    assert by["real-f1"].real_fraction == 0.01 and not by["real-f1"].needs_pool
    assert by["balanced-real-f25"].oversample_like == 1.0 and by["balanced-real-f25"].balance == "pool" and not by["balanced-real-f25"].uses_synthetic
    assert by["reweighted-real-f25"].class_weight == "balanced"
    assert by["limited-f25"].synthetic_ratio == "all" and not by["limited-f25"].pretrain_synthetic
    assert by["pretrain-synth-f1"].pretrain_synthetic and by["pretrain-synth-f1"].real_fraction == 0.01
    assert by["mixed-f25"].batch_synthetic_fraction == 0.5
    assert regime_name("limited", 0.005) == "limited-f0.5"


@pytest.mark.parametrize("bad, match", [
    ({"fractions": [0.0, 0.1]}, "in \\(0, 1\\]"), ({"fractions": [0.1, 1.5]}, "in \\(0, 1\\]"), ({"fractions": [0.1, 0.1]}, "repeat"),
    ({"recipes": ["real", "limited"]}, "balanced-real"), ({"recipes": ["real", "balanced-real", "synth-50"]}, "unknown kind"),
    ({"mixed_fraction": 1.0}, "mixed_fraction"), ({"fraction": [0.1]}, "unknown key"),
])
def test_bad_grids_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        RegimeSpec.parse(bad)


def test_spec_expands_regimes_and_round_trips(tmp_path, real_train, real_test, synthetic):
    spec = load_spec(dict(real_train=real_train, test=real_test, synthetic=synthetic, output_dir=str(tmp_path),
                          regimes={"fractions": [0.1, 1.0], "recipes": ["real", "balanced-real", "limited"]}))
    assert [r.name for r in spec.recipes] == ["real-f10", "balanced-real-f10", "limited-f10", "real-f100", "balanced-real-f100", "limited-f100"]
    assert spec.compare_to == [] and spec.baseline is None
    again = load_spec(spec.to_dict())
    assert [r.name for r in again.recipes] == [r.name for r in spec.recipes]
    # recipes listed beside the grid are added after it
    extra = load_spec(dict(real_train=real_train, test=real_test, synthetic=synthetic, output_dir=str(tmp_path), recipes=["synth-only"],
                           regimes={"fractions": [0.5]}))
    assert [r.name for r in extra.recipes][-1] == "synth-only" and len(extra.recipes) == 7
    with pytest.raises(ValueError, match="synthetic"):  # limited-F needs a pool
        load_spec(dict(real_train=real_train, test=real_test, output_dir=str(tmp_path), regimes={"fractions": [0.5]}))


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 1.0])
@pytest.mark.parametrize("pool", [[1200, 1200], [300, 700]])
def test_balanced_real_matches_limited_per_class(fraction, pool):
    real = [1341, 3875]  # PneumoniaMNIST train
    grid = RegimeSpec(fractions=[fraction])
    lim_real, lim_synth = recipe_counts(real, pool, grid.recipe("limited", fraction))
    bal_real, bal_synth = recipe_counts(real, pool, grid.recipe("balanced-real", fraction))
    assert bal_synth == [0, 0] and lim_synth == pool
    assert bal_real == [a + b for a, b in zip(lim_real, lim_synth)]
    # the rows: same real images as real-F and limited-F for the seed, the repeats drawn from them
    labels = np.repeat([0, 1], real)
    pool_labels = np.repeat([0, 1], pool)
    r_real, _, _ = select_indices(labels, None, 2, grid.recipe("real", fraction), seed=3)
    l_real, _, l_syn = select_indices(labels, pool_labels, 2, grid.recipe("limited", fraction), seed=3)
    b_real, b_rep, _ = select_indices(labels, None, 2, grid.recipe("balanced-real", fraction), seed=3, synthetic_counts=pool)
    assert np.array_equal(r_real, l_real) and np.array_equal(r_real, b_real)
    assert set(b_rep.tolist()) <= set(b_real.tolist())
    assert np.bincount(labels[np.concatenate([b_real, b_rep])], minlength=2).tolist() == [
        a + b for a, b in zip(np.bincount(labels[l_real], minlength=2), np.bincount(pool_labels[l_syn], minlength=2))]


def test_worth_interpolates_log_linearly():
    n, acc = [50, 500, 5000], [0.6, 0.8, 0.9]
    w = real_images_worth(n, acc, 0.7)
    assert w["status"] == "within" and w["n"] == pytest.approx(math.sqrt(50 * 500))
    assert real_images_worth(n, acc, 0.85)["n"] == pytest.approx(math.sqrt(500 * 5000))
    assert real_images_worth(n, acc, 0.8)["n"] == pytest.approx(500)
    assert real_images_worth(n, acc, 0.6)["n"] == pytest.approx(50)
    assert real_images_worth(list(reversed(n)), list(reversed(acc)), 0.7)["n"] == pytest.approx(math.sqrt(50 * 500))  # any order


def test_worth_outside_the_measured_range():
    n, acc = [50, 500, 5000], [0.6, 0.8, 0.9]
    below, above = real_images_worth(n, acc, 0.55), real_images_worth(n, acc, 0.95)
    assert below["status"] == "below" and below["n"] is None and worth_text(below) == "< 50"
    assert above["status"] == "above" and above["n"] is None and worth_text(above) == "> 5,000"
    assert worth_text(real_images_worth(n, acc, 0.7)) == "≈ 158"


def test_worth_of_a_noisy_curve_uses_its_isotonic_fit():
    # 500 images scored below 50 by seed noise: pooled to 0.7 / 0.7, so 0.7 is first reached at 50 images
    w = real_images_worth([50, 500, 5000], [0.72, 0.68, 0.9], 0.7)
    assert w["curve"] == pytest.approx([0.7, 0.7, 0.9]) and w["n"] == pytest.approx(50)
    w = real_images_worth([50, 500, 5000], [0.72, 0.68, 0.9], 0.8)
    assert w["n"] == pytest.approx(math.exp((math.log(500) + math.log(5000)) / 2))
    with pytest.raises(ValueError, match="two"):
        real_images_worth([50], [0.7], 0.7)


def _run(recipe, seed, acc, auc, n_real, n_synth=0, repeats=0):
    return {"backbone": "cnn", "recipe": recipe, "seed": seed, "init_checksum": f"i{seed}",
            "counts": {"real": n_real, "synthetic": n_synth, "real_repeats": repeats},
            "metrics": {"accuracy": acc, "f1": acc, "auc": auc, "precision": acc, "recall": acc, "confusion_matrix": [[1, 0], [0, 1]]},
            "model": {"pretrained": False, "weights_note": ""}}


def test_regime_table_pairs_within_each_fraction():
    grid = RegimeSpec(fractions=[0.1, 1.0], recipes=["real", "balanced-real", "limited"])
    runs = []
    for s in range(3):
        runs += [_run("real-f10", s, 0.70 + 0.01 * s, 0.8, 47), _run("balanced-real-f10", s, 0.75 + 0.01 * s, 0.8, 47, repeats=2400),
                 _run("limited-f10", s, 0.78 + 0.01 * s + 0.002 * (s == 1), 0.85, 47, 2400),
                 _run("real-f100", s, 0.86, 0.9, 470), _run("balanced-real-f100", s, 0.87, 0.9, 470, repeats=2400),
                 _run("limited-f100", s, 0.84 - 0.001 * s, 0.88, 470, 2400)]
    rows = regime_rows(grid, runs, ["cnn"])
    by = {r["recipe"]: r for r in rows}
    lim = by["limited-f10"]
    assert lim["paired"]["real"]["accuracy"]["mean"] == pytest.approx(0.08 + 0.002 / 3)
    assert lim["paired"]["balanced-real"]["accuracy"]["mean"] == pytest.approx(0.03 + 0.002 / 3)
    assert by["limited-f100"]["paired"]["balanced-real"]["accuracy"]["mean"] == pytest.approx(-0.031)  # against its own fraction's control
    # worth on the real-only curve (47 -> 0.71, 470 -> 0.86): 0.7907 lies between
    w = lim["worth"]["real"]
    t = (lim["accuracy"]["mean"] - 0.71) / 0.15
    assert w["status"] == "within" and w["n"] == pytest.approx(math.exp(math.log(47) + t * (math.log(470) - math.log(47))))
    assert by["limited-f100"]["worth"]["real"]["status"] == "within"  # 0.839 < 0.86
    assert "worth" not in by["real-f10"] and "real" not in by["real-f10"]["paired"]
    md = regime_markdown(rows)
    line = next(x for x in md.splitlines() if "| 10% | Limited |" in x)
    assert "**+8.1 (" in line and "**+3.1 (" in line and "**+50 (+50, +50)**" in line
    assert "| 47 + 2400 repeats |" in md and "Worth (real-F curve)" in md
    # multiplicity (issue 30): the two limited cells against balanced-real form one family of m = 2
    p = lim["paired"]["balanced-real"]["accuracy"]
    assert p["family"] == 2 and p["p_holm"] >= p["p"] and p["ci_adj_low"] < p["ci95_low"]
    assert "Δ acc vs balanced-real-F, adjusted" in md and "Holm-adjusted p-value" in md
    assert f" p {p['p_holm']:.3f}" in line and lim["seeds_for_2_points"] >= 2


@pytest.mark.slow
def test_regime_experiment_end_to_end(tmp_path, real_train, real_test, pool200):
    spec = dict(real_train=real_train, test=real_test, synthetic=pool200, output_dir=str(tmp_path / "exp"),
                backbones=[{"name": "cnn", "widths": [4, 8]}], seeds=[0, 1], epochs=1, image_size=16, batch_size=16, learning_rate=3e-3,
                regimes={"fractions": [0.25, 1.0], "recipes": ["real", "balanced-real", "limited", "pretrain-synth"]})
    res = run_experiment(spec)
    out = tmp_path / "exp"
    assert len(res.runs) == 16
    run = lambda name: json.loads((out / "runs" / "cnn" / name / "seed_0" / "result.json").read_text())  # noqa: E731
    lim, bal = run("limited-f25")["counts"], run("balanced-real-f25")["counts"]
    assert lim["synthetic_per_class"] == {"NORMAL": 100, "PNEUMONIA": 100}
    total = lambda c: {k: c["real_per_class"][k] + c["real_repeats_per_class"][k] + c["synthetic_per_class"][k] for k in c["real_per_class"]}  # noqa: E731
    assert total(lim) == total(bal) and bal["synthetic"] == 0
    rows = list(csv.DictReader(open(out / "regimes.csv")))
    assert [(r["fraction"], r["kind"]) for r in rows][:4] == [("0.25", "real"), ("0.25", "balanced-real"), ("0.25", "limited"), ("0.25", "pretrain-synth")]
    assert rows[2]["delta_accuracy_vs_balanced-real_mean"] != "" and rows[2]["worth_real_status"] in ("within", "below", "above")
    assert "| 25% | Limited |" in (out / "regimes.md").read_text() and "Limited" in res.markdown
    assert (out / "plots" / "regimes_cnn.png").stat().st_size > 5000


def _regime_spec(tmp_path, real, real_test, pool, fractions):
    return dict(real_train=real, test=real_test, synthetic=pool, output_dir=str(tmp_path / "exp"),
                backbones=[{"name": "cnn", "widths": [4, 8]}], seeds=[0], epochs=1, image_size=16, batch_size=16,
                regimes={"fractions": fractions, "recipes": ["real", "balanced-real"]}, plots=False)


def test_a_fraction_that_empties_a_class_is_refused_before_any_run(tmp_path, real_test, synthetic, monkeypatch):
    from expdata import make_dataset

    from synthxray.experiments import runner as runner_mod

    calls = []
    monkeypatch.setattr(runner_mod, "train_one", lambda *a, **k: calls.append(a[3].name))
    real = make_dataset({"NORMAL": 10, "PNEUMONIA": 50}, seed=7)  # 9 / 45 after the validation split
    match = r"real fraction 0.04 keeps 0 images of class 'NORMAL' \(round\(0.04 x 9\) = 0\).*at least 0.0556"
    with pytest.raises(ValueError, match=match):
        run_experiment(_regime_spec(tmp_path, real, real_test, synthetic, [0.04, 1.0]))
    assert calls == []


def test_fractions_that_keep_the_same_count_are_refused_before_any_run(tmp_path, real_test, synthetic, monkeypatch):
    from expdata import make_dataset

    from synthxray.experiments import runner as runner_mod

    calls = []
    monkeypatch.setattr(runner_mod, "train_one", lambda *a, **k: calls.append(a[3].name))
    real = make_dataset({"NORMAL": 30, "PNEUMONIA": 30}, seed=8)  # 27 / 27: round(13.5) = round(13.77) = 14
    with pytest.raises(ValueError, match=r"regimes.fractions \[0.5, 0.51\] all keep 28 real images of 54"):
        run_experiment(_regime_spec(tmp_path, real, real_test, synthetic, [0.5, 0.51]))
    assert calls == []
