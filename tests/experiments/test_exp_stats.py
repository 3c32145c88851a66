"""Paired statistics: p-values, Holm / Bonferroni over a table's family, seeds needed (issue 30, item 3)."""

import math

import numpy as np
import pytest
from scipy import stats

from synthxray.experiments.report import summarize
from synthxray.experiments.stats import adjust, seeds_needed, t_test


def test_summary_p_value_is_scipys_one_sample_t_test():
    diffs = [0.01, 0.03, -0.005, 0.02, 0.04]
    s = summarize(diffs)
    assert s["p"] == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue)
    assert summarize([0.1])["p"] is None and t_test(0.0, 0.0, 3) == 1.0


def test_holm_and_bonferroni_over_a_family():
    rng = np.random.default_rng(0)
    family = [summarize(rng.normal(mu, 0.02, size=5)) for mu in (0.0, 0.01, 0.03, 0.05)]
    raw = [s["p"] for s in family]
    assert adjust(family) == 4
    # Holm by hand: sort, multiply by (m - rank), running maximum, cap at 1
    order = np.argsort(raw)
    expected, running = [0.0] * 4, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * raw[i]))
        expected[i] = running
    assert [s["p_holm"] for s in family] == pytest.approx(expected)
    for s in family:
        assert s["family"] == 4 and s["p_holm"] >= s["p"]
        assert s["ci_adj_low"] < s["ci95_low"] and s["ci_adj_high"] > s["ci95_high"]  # wider than the raw interval
        half = stats.t.ppf(1 - 0.05 / 8, s["n"] - 1) * s["std"] / math.sqrt(s["n"])
        assert s["ci_adj_high"] - s["mean"] == pytest.approx(half)
    assert adjust([summarize([0.1])]) == 0  # one seed: nothing to adjust


def test_seeds_needed_matches_a_paired_t_test_power_analysis():
    assert seeds_needed(0.02, 0.02) == 10  # d = 1 at 80% power, alpha 0.05: the textbook n of 10 pairs
    assert seeds_needed(0.02, 0.04) > 30 and seeds_needed(0.02, None) is None
