"""Class names and class-stratified counts: the one rule for each, shared by data, evaluation and experiments.

A leaf module (numpy only), so any part of the package can import it without an import circle.
"""

from __future__ import annotations

from typing import Mapping, Sequence, TypeVar

import numpy as np

K = TypeVar("K")


def _fold(name: object) -> str:
    return str(name).strip().casefold()


def match_class_names(reference: Sequence[str], other: Sequence[str], what: str = "synthetic") -> list[int]:
    """For each name of ``other``, its index in ``reference``.

    The rule: an exact match first; otherwise the one reference name equal to it ignoring case and
    surrounding spaces. A name with no match, or with several equal-ignoring-case candidates, is an error
    that lists the names on both sides.
    """
    reference = [str(n) for n in reference]
    folded: dict[str, list[int]] = {}
    for i, n in enumerate(reference):
        folded.setdefault(_fold(n), []).append(i)
    mapping, missing, ambiguous = [], [], []
    for n in other:
        n = str(n)
        if n in reference:
            mapping.append(reference.index(n))
            continue
        hits = folded.get(_fold(n), [])
        if len(hits) == 1:
            mapping.append(hits[0])
        else:
            (ambiguous if hits else missing).append(n)
            mapping.append(-1)
    if missing or ambiguous:
        detail = []
        if missing:
            detail.append(f"no real class named {missing}")
        if ambiguous:
            detail.append(f"several real classes equal {ambiguous} ignoring case")
        raise ValueError(
            f"{what} class names {list(other)} do not match the real class names {reference} "
            f"({'; '.join(detail)}); classes are matched by name, exactly or ignoring case: rename the "
            "folders / ClassLabel names so they agree"
        )
    return mapping


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` that sum exactly to ``total``.

    Largest-remainder (Hamilton) rounding; ties go to the earlier weight.
    """
    w = np.asarray(weights, dtype=float)
    if total < 0:
        raise ValueError(f"cannot split a negative total ({total})")
    if len(w) == 0:
        return []
    if total == 0 or w.sum() == 0:
        return [0] * len(w)
    exact = total * w / w.sum()
    parts = np.floor(exact).astype(int)
    rest = total - int(parts.sum())
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:rest]:
        parts[i] += 1
    return [int(p) for p in parts]


def capped_split(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """:func:`largest_remainder`, with no part above its cap: a class that hits its cap keeps the cap, and the
    rest of ``total`` is split again over the others in their weights (water-filling). ``total`` above
    ``sum(caps)`` is a ``ValueError``."""
    caps = [int(c) for c in caps]
    if total > sum(caps):
        raise ValueError(f"cannot take {total} from parts that hold {sum(caps)} in all ({caps})")
    parts = [0] * len(caps)
    open_ = [i for i in range(len(caps)) if caps[i] > 0]
    rest = int(total)
    while rest > 0:
        w = [float(weights[i]) for i in open_]
        if sum(w) == 0:
            w = [1.0] * len(open_)
        split = largest_remainder(rest, w)
        over = [i for i, n in zip(open_, split) if parts[i] + n >= caps[i]]
        if not over:
            for i, n in zip(open_, split):
                parts[i] += n
            break
        for i in over:  # these classes are full; the others share what is left in the next pass
            rest -= caps[i] - parts[i]
            parts[i] = caps[i]
        open_ = [i for i in open_ if i not in over]
    return parts


def proportional_counts(class_counts: Mapping[K, int], total: int) -> dict[K, int]:
    """``total`` split over the classes of ``class_counts`` in their proportions (``largest_remainder``)."""
    if sum(class_counts.values()) == 0:
        raise ValueError("cannot split over classes: the reference set is empty")
    keys = list(class_counts)
    return dict(zip(keys, largest_remainder(total, [class_counts[k] for k in keys])))


def stratified_indices(labels: Sequence[int] | np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` row indices drawn without replacement, keeping the class proportions of ``labels`` (sorted).

    Per-class counts come from ``proportional_counts``; with ``n`` at or above the number of rows,
    every row is returned.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    if n < 0:
        raise ValueError(f"cannot draw {n} rows")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    want = proportional_counts({c.item(): int(k) for c, k in zip(classes, counts)}, n)
    picked = [rng.choice(np.flatnonzero(labels == c), want[c.item()], replace=False) for c in classes]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
