"""Data recipes: how much real and how much synthetic data a classifier is trained on.

Counts, the rules every recipe follows:

* real images kept per class = ``round(real_fraction * n_real[c])`` (stratified, seeded);
* synthetic images in total = ``round(ratio * len(real))``, where ``len(real)`` is the whole real
  training set *before* ``real_fraction``; ``ratio="all"`` takes the whole synthetic pool;
* ``balance="balanced"`` splits that total equally over the classes (seed 004 made 1,200 of each);
  ``balance="real"`` splits it in the real training set's class proportions;
* ``ratio_of="synthetic"`` measures ``ratio`` against the synthetic pool instead of the real set:
  seed 004's convention, where Synth-25 took 25% of a 2,400-image pool (600 images).

Named recipes (any number works where a number is shown):

============================  ====================  ==============  ==========================
name                          real_fraction         synthetic       per-batch synthetic share
============================  ====================  ==============  ==========================
``baseline``, ``real-only``   1                     none            -
``synth-N`` (25, 50, 100)     1                     N% of real      -
``limited-N`` (10, 25)        N/100                 all             -
``real-N``                    N/100                 none            -
``synth-only``,               0                     all             -
``synthetic-only``
``mixed``, ``mixed-N``        1                     all             N% of every batch (50)
============================  ====================  ==============  ==========================

A recipe can also be a mapping with ``name``, ``real_fraction``, ``synthetic_ratio`` (a number or
``"all"``), ``batch_synthetic_fraction`` and ``balance``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..classes import largest_remainder, match_class_names

BALANCES = ("balanced", "real")
RATIO_OF = ("real", "synthetic")
SOURCE_REAL, SOURCE_SYNTHETIC = "real", "synthetic"


@dataclass(frozen=True)
class Recipe:
    name: str
    real_fraction: float = 1.0
    synthetic_ratio: float | str = 0.0  # fraction of the real training set's size, or "all"
    batch_synthetic_fraction: float | None = None  # mixed regime: share of synthetic images in every batch
    balance: str | None = None  # None: the experiment's default

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.real_fraction) <= 1.0:
            raise ValueError(f"recipe {self.name!r}: real_fraction must be in [0, 1], got {self.real_fraction}")
        if self.synthetic_ratio != "all" and (not isinstance(self.synthetic_ratio, (int, float)) or self.synthetic_ratio < 0):
            raise ValueError(f"recipe {self.name!r}: synthetic_ratio must be a number >= 0 or 'all', got {self.synthetic_ratio!r}")
        if self.batch_synthetic_fraction is not None and not 0.0 < self.batch_synthetic_fraction < 1.0:
            raise ValueError(f"recipe {self.name!r}: batch_synthetic_fraction must be in (0, 1), got {self.batch_synthetic_fraction}")
        if self.balance is not None and self.balance not in BALANCES:
            raise ValueError(f"recipe {self.name!r}: balance must be one of {BALANCES}, got {self.balance!r}")
        if self.real_fraction == 0 and not self.uses_synthetic:
            raise ValueError(f"recipe {self.name!r} has neither real nor synthetic images")
        if self.batch_synthetic_fraction is not None and (self.real_fraction == 0 or not self.uses_synthetic):
            raise ValueError(f"recipe {self.name!r}: a per-batch synthetic share needs both real and synthetic images")

    @property
    def uses_synthetic(self) -> bool:
        return self.synthetic_ratio == "all" or float(self.synthetic_ratio) > 0

    def describe(self) -> str:
        real = "all real" if self.real_fraction == 1 else ("no real" if self.real_fraction == 0 else f"{self.real_fraction:.0%} of real")
        if not self.uses_synthetic:
            synth = "no synthetic"
        elif self.synthetic_ratio == "all":
            synth = "all synthetic"
        else:
            synth = f"synthetic = {float(self.synthetic_ratio):.0%} of the real count"
        batch = f", {self.batch_synthetic_fraction:.0%} synthetic in every batch" if self.batch_synthetic_fraction else ""
        return f"{real} + {synth}{batch}"


_PATTERNS = [
    (re.compile(r"(baseline|real-only|real)"), lambda m, n: Recipe(n)),
    (re.compile(r"(synth-only|synthetic-only)"), lambda m, n: Recipe(n, real_fraction=0.0, synthetic_ratio="all")),
    (re.compile(r"synth-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, synthetic_ratio=float(m.group(1)) / 100)),
    (re.compile(r"limited-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, real_fraction=float(m.group(1)) / 100, synthetic_ratio="all")),
    (re.compile(r"real-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, real_fraction=float(m.group(1)) / 100)),
    (re.compile(r"mixed"), lambda m, n: Recipe(n, synthetic_ratio="all", batch_synthetic_fraction=0.5)),
    (re.compile(r"mixed-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, synthetic_ratio="all", batch_synthetic_fraction=float(m.group(1)) / 100)),
]
RECIPE_FIELDS = ("name", "real_fraction", "synthetic_ratio", "batch_synthetic_fraction", "balance")


def parse_recipe(value: str | Mapping[str, Any] | Recipe) -> Recipe:
    """A recipe from its name (``synth-50``, ``limited-10``, ``mixed-30`` ...) or a mapping of its fields."""
    if isinstance(value, Recipe):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - set(RECIPE_FIELDS)
        if unknown:
            raise ValueError(f"recipe {dict(value)}: unknown key(s) {sorted(unknown)}; allowed: {list(RECIPE_FIELDS)}")
        if "name" not in value:
            raise ValueError(f"recipe {dict(value)}: 'name' is required")
        fields = dict(value)
        if "name" in fields and len(fields) == 1:
            return parse_recipe(fields["name"])
        ratio = fields.get("synthetic_ratio", 0.0)
        fields["synthetic_ratio"] = "all" if ratio in ("all", None) else float(ratio)
        fields["real_fraction"] = float(fields.get("real_fraction", 1.0))
        return Recipe(**fields)
    name = str(value).strip().lower()
    for pattern, make in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return make(m, name)
    raise ValueError(
        f"unknown recipe {value!r}; use baseline, real-only, synth-N, limited-N, real-N, synth-only, synthetic-only, "
        "mixed or mixed-N (N a percentage), or a mapping with " + ", ".join(RECIPE_FIELDS)
    )


DISPLAY = {"baseline": "Baseline", "synth-only": "Synth-Only", "real-only": "Real-only", "synthetic-only": "Synthetic-only", "mixed": "Mixed"}


def display_name(name: str) -> str:
    """``synth-50`` -> ``Synth-50``: the spelling of seed 004's table."""
    if name in DISPLAY:
        return DISPLAY[name]
    return "-".join(p[:1].upper() + p[1:] for p in name.split("-"))


# ---- counts -------------------------------------------------------------------------------------
def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def recipe_counts(real_counts: Sequence[int], synthetic_counts: Sequence[int] | None, recipe: Recipe, balance: str = "balanced", ratio_of: str = "real") -> tuple[list[int], list[int]]:
    """(real per class, synthetic per class) that ``recipe`` takes; errors when the pool is too small."""
    balance = recipe.balance or balance
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    if ratio_of not in RATIO_OF:
        raise ValueError(f"ratio_of must be one of {RATIO_OF}, got {ratio_of!r}")
    real = [_round(recipe.real_fraction * n) for n in real_counts]
    if not recipe.uses_synthetic:
        return real, [0] * len(real_counts)
    if synthetic_counts is None:
        raise ValueError(f"recipe {recipe.name!r} needs synthetic images, but the experiment has no synthetic data")
    if recipe.synthetic_ratio == "all":
        return real, list(synthetic_counts)
    total = _round(float(recipe.synthetic_ratio) * sum(real_counts if ratio_of == "real" else synthetic_counts))
    weights = [1.0] * len(real_counts) if balance == "balanced" else list(real_counts)
    synth = largest_remainder(total, weights)
    short = [(i, need, have) for i, (need, have) in enumerate(zip(synth, synthetic_counts)) if need > have]
    if short:
        detail = ", ".join(f"class {i}: needs {need}, pool has {have}" for i, need, have in short)
        raise ValueError(f"recipe {recipe.name!r} needs more synthetic images than the pool holds ({detail}); generate more or lower the ratio")
    return real, synth


def synthetic_needed(real_counts: Sequence[int], recipes: Sequence[Recipe], balance: str = "balanced", default_pool: float = 1.0, ratio_of: str = "real") -> list[int]:
    """Synthetic images per class a generator must make so every recipe can be built.

    Recipes that take ``"all"`` synthetic images are served by a pool of ``default_pool`` times the
    real count (balanced as configured), unless a numeric ratio asks for more.
    """
    need = [0] * len(real_counts)
    for r in recipes:
        if not r.uses_synthetic:
            continue
        if ratio_of == "synthetic":  # ratios are shares of the pool: the pool itself is what is needed
            ratio = default_pool * max(1.0, 1.0 if r.synthetic_ratio == "all" else float(r.synthetic_ratio))
        else:
            ratio = default_pool if r.synthetic_ratio == "all" else float(r.synthetic_ratio)
        b = r.balance or balance
        total = _round(ratio * sum(real_counts))
        part = largest_remainder(total, [1.0] * len(real_counts) if b == "balanced" else list(real_counts))
        need = [max(a, c) for a, c in zip(need, part)]
    return need


def _labels(ds) -> np.ndarray:
    return np.asarray(ds["label"], dtype=int)


def _pick(labels: np.ndarray, per_class: Sequence[int], rng: np.random.Generator, class_map: Sequence[int] | None = None) -> np.ndarray:
    """Row indices: ``per_class[c]`` rows of class ``c`` (classes numbered in the real order), chosen at random."""
    chosen = []
    mapped = labels if class_map is None else np.asarray(class_map)[labels]
    for c, n in enumerate(per_class):
        rows = np.flatnonzero(mapped == c)
        if n > len(rows):
            raise ValueError(f"asked for {n} images of class {c} but only {len(rows)} exist")
        chosen.append(np.sort(rng.permutation(rows)[:n]) if n < len(rows) else rows)
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)


def select_indices(real_labels: np.ndarray, synthetic_labels: np.ndarray | None, num_classes: int, recipe: Recipe, seed: int, balance: str = "balanced", synthetic_class_map: Sequence[int] | None = None, ratio_of: str = "real") -> tuple[np.ndarray, np.ndarray]:
    """Rows of the real and synthetic sets a recipe takes (the seed picks which)."""
    real_counts = np.bincount(real_labels, minlength=num_classes).tolist()
    synth_counts = None
    if synthetic_labels is not None:
        mapped = synthetic_labels if synthetic_class_map is None else np.asarray(synthetic_class_map)[synthetic_labels]
        synth_counts = np.bincount(mapped, minlength=num_classes).tolist() if len(mapped) else [0] * num_classes
    n_real, n_synth = recipe_counts(real_counts, synth_counts, recipe, balance, ratio_of)
    rng = np.random.default_rng([int(seed), 7])
    real_idx = _pick(real_labels, n_real, rng)
    synth_idx = _pick(synthetic_labels, n_synth, rng, synthetic_class_map) if synthetic_labels is not None and sum(n_synth) else np.zeros(0, dtype=int)
    return real_idx, synth_idx


def augment(
    real,
    synthetic=None,
    ratio: float | str = 0.5,
    real_fraction: float = 1.0,
    seed: int = 0,
    balance: str = "balanced",
    ratio_of: str = "real",
    shuffle: bool = False,
):
    """Mix a real and a synthetic dataset into one ``datasets.Dataset``.

    ``ratio`` is the number of synthetic images as a fraction of the real set's size (0.5 adds half
    as many synthetic images as there are real ones), or ``"all"`` for the whole synthetic set
    (``ratio_of="synthetic"``: a fraction of the synthetic set's size, seed 004's convention);
    ``real_fraction`` keeps that share of every real class; ``balance`` is ``"balanced"`` (equal
    synthetic counts per class) or ``"real"`` (the real class proportions). Synthetic labels are
    mapped to the real classes by name, ignoring case. The result has ``image``, ``label`` (the real
    ClassLabel), ``source`` (``"real"``/``"synthetic"``) and ``source_index`` (row in its source).
    Either argument may be anything :func:`synthxray.load_dataset` accepts.
    """
    import datasets

    from ..data import load_dataset

    real = load_dataset(real)
    names = list(real.features["label"].names)
    ratio = "all" if ratio is None or ratio == "all" else float(ratio)
    recipe = Recipe("augment", real_fraction=float(real_fraction), synthetic_ratio=ratio)
    synth_map = None
    if synthetic is not None:
        synthetic = load_dataset(synthetic)
        synth_map = match_class_names(names, synthetic.features["label"].names)
    real_idx, synth_idx = select_indices(_labels(real), _labels(synthetic) if synthetic is not None else None, len(names), recipe, seed, balance, synth_map, ratio_of)
    label_feature = datasets.ClassLabel(names=names)

    def part(ds, idx: np.ndarray, source: str, class_map: Sequence[int] | None):
        sub = ds.select(idx.tolist()).select_columns(["image", "label"])
        labels = np.asarray(sub["label"], dtype=int)
        if class_map is not None:
            labels = np.asarray(class_map)[labels]
        sub = sub.remove_columns("label").cast_column("image", datasets.Image())
        sub = sub.add_column("label", labels.tolist()).cast_column("label", label_feature)
        sub = sub.add_column("source", [source] * len(idx)).add_column("source_index", idx.tolist())
        return sub

    parts = [part(real, real_idx, SOURCE_REAL, None)]
    if len(synth_idx):
        parts.append(part(synthetic, synth_idx, SOURCE_SYNTHETIC, synth_map))
    out = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return out.shuffle(seed=seed).flatten_indices() if shuffle else out
