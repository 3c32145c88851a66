"""Metrics equal scikit-learn's on a fixed prediction set; spread over seeds and deltas are right."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from synthxray.experiments.report import aggregate, compute_metrics, markdown_table, summarize

Y2 = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 1])
P2 = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.55, 0.2, 0.35])  # probability of class 1


def test_binary_metrics_match_sklearn():
    probs = np.stack([1 - P2, P2], axis=1)
    m = compute_metrics(Y2, probs, ["NORMAL", "PNEUMONIA"])
    pred = (P2 > 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y2, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(Y2, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(Y2, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(Y2, pred))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(Y2, P2))
    assert m["confusion_matrix"] == skm.confusion_matrix(Y2, pred).tolist()
    assert m["positive_class"] == "PNEUMONIA"
    # the other class as positive
    m0 = compute_metrics(Y2, probs, ["NORMAL", "PNEUMONIA"], positive=0)
    assert m0["f1"] == pytest.approx(skm.f1_score(Y2, pred, pos_label=0))
    assert m0["auc"] == pytest.approx(skm.roc_auc_score(Y2 == 0, 1 - P2))


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    logits = rng.normal(size=(40, 3)) + np.eye(3)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_auc_is_none_when_a_class_is_missing():
    m = compute_metrics([1, 1, 1], np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]), ["a", "b"])
    assert m["auc"] is None and m["accuracy"] == pytest.approx(2 / 3)


def test_summary_is_mean_std_and_t_interval():
    from scipy import stats

    s = summarize([0.80, 0.84, 0.86])
    assert s["mean"] == pytest.approx(0.8333333)
    assert s["std"] == pytest.approx(np.std([0.80, 0.84, 0.86], ddof=1))
    half = stats.t.ppf(0.975, 2) * s["std"] / math.sqrt(3)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((s["mean"] - half, s["mean"] + half))
    one = summarize([0.9])
    assert one["mean"] == 0.9 and one["std"] is None and one["ci95_low"] is None


def _run(backbone, recipe, seed, acc):
    return {
        "backbone": backbone, "recipe": recipe, "seed": seed, "counts": {"real": 10, "synthetic": 0},
        "model": {"pretrained": False, "weights_note": "random"},
        "metrics": {"accuracy": acc, "f1": acc, "auc": acc, "precision": acc, "recall": acc, "confusion_matrix": [[1, 0], [0, 1]]},
    }


def test_aggregate_delta_vs_baseline_per_backbone():
    runs = [_run("cnn", "baseline", 0, 0.80), _run("cnn", "baseline", 1, 0.82), _run("cnn", "synth-50", 0, 0.85), _run("cnn", "synth-50", 1, 0.87),
            _run("resnet18", "baseline", 0, 0.70), _run("resnet18", "synth-50", 0, 0.65)]
    rows = aggregate(runs, ["cnn", "resnet18"], ["baseline", "synth-50"], "baseline")
    by = {(r["backbone"], r["recipe"]): r for r in rows}
    assert by["cnn", "synth-50"]["delta"]["accuracy"] == pytest.approx(0.05)
    assert by["resnet18", "synth-50"]["delta"]["accuracy"] == pytest.approx(-0.05)
    assert by["cnn", "baseline"]["delta"]["accuracy"] == pytest.approx(0.0)
    md = markdown_table(rows, "baseline")
    # paired by seed: both cnn seeds gain exactly 5 points (a zero-width interval); resnet18 has one seed (no interval)
    assert "Synth-50" in md and "| +5.0 (+5.0, +5.0) |" in md and "| -5.0 |" in md and "RANDOM" in md
    assert by["cnn", "synth-50"]["paired"]["baseline"]["seeds"] == [0, 1]
