"""Statistics for paired comparisons: p-values, multiplicity adjustment over a table, and seeds needed.

A table that shows several paired comparisons at 95% each shows, beside the raw intervals, the same comparisons
adjusted for their number ``m``: Holm-adjusted p-values (statsmodels' ``multipletests``) and Bonferroni intervals
(the t-interval at level ``1 - alpha / m``, which hold simultaneously). The number of seeds a difference needs comes
from statsmodels' power analysis of a one-sample (paired) t-test.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

ALPHA = 0.05
MAX_SEEDS = 10_000  # seeds_needed: None beyond this


def t_test(mean: float, std: float | None, n: int) -> float | None:
    """Two-sided p-value of a one-sample t-test of ``mean`` against 0 (paired differences); None below 2 values."""
    if n < 2 or std is None:
        return None
    from scipy import stats

    if std == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean) / (std / math.sqrt(n)), n - 1))


def adjust(summaries: Iterable[dict[str, Any]], alpha: float = ALPHA) -> int:
    """Adjust a family of paired summaries (``summarize`` dicts of differences) in place for their number ``m``.

    Each summary with a p-value gets ``p_holm`` (Holm's step-down adjusted p-value), ``ci_adj_low`` /
    ``ci_adj_high`` (the Bonferroni t-interval at ``1 - alpha / m``) and ``family`` (``m``). Returns ``m``.
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    family = [s for s in summaries if s and s.get("p") is not None]
    m = len(family)
    if not m:
        return 0
    _, p_holm, _, _ = multipletests([s["p"] for s in family], alpha=alpha, method="holm")
    for s, p in zip(family, p_holm):
        half = float(stats.t.ppf(1 - alpha / (2 * m), s["n"] - 1) * s["std"] / math.sqrt(s["n"]))
        s.update(p_holm=float(p), ci_adj_low=s["mean"] - half, ci_adj_high=s["mean"] + half, family=m)
    return m


def seeds_needed(difference: float, std: float | None, alpha: float = ALPHA, power: float = 0.8) -> int | None:
    """Paired seeds a two-sided t-test needs to detect ``difference`` with ``power`` at the spread ``std`` of the
    per-seed differences (``alpha`` is the per-comparison level: divide it by ``m`` for a Bonferroni family); None when
    the spread is unknown or more than ``MAX_SEEDS`` would be needed."""
    if std is None or std <= 0 or difference == 0:
        return None
    import numpy as np
    from statsmodels.stats.power import TTestPower

    # the power at every n from 2 (statsmodels' root finder fails for very large effects, where n = 2 already does)
    nobs = np.arange(2, MAX_SEEDS + 1)
    reached = TTestPower().power(effect_size=abs(difference) / std, nobs=nobs, alpha=alpha, alternative="two-sided") >= power
    return int(nobs[np.argmax(reached)]) if reached.any() else None
