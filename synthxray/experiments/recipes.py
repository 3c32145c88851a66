"""Data recipes: how much real and how much synthetic data a classifier is trained on, and how.

Counts, the rules every recipe follows:

* real images kept per class = ``round(real_fraction * n_real[c])`` (stratified, seeded);
* ``ratio_of="synthetic"`` (the default, seed 004's convention): synthetic images in total =
  ``round(ratio * len(pool))``; Synth-25 takes 25% of a 2,400-image pool (600 images), so a ratio
  above 1 is an error when the spec is read;
* ``ratio_of="real"``: synthetic images in total = ``round(ratio * len(real))``, where ``len(real)``
  is the whole real training set *before* ``real_fraction`` (Synth-50 adds half as many synthetic
  images as there are real ones);
* ``ratio="all"`` takes the whole synthetic pool under either convention;
* ``balance="balanced"`` splits that total equally over the classes (seed 004 made 1,200 of each);
  ``balance="real"`` splits it in the real training set's class proportions; ``balance="pool"`` in
  the pool's own proportions (Synth-100 is then the whole pool, whatever its class mix).
* A pool whose classes are unequal, or smaller than the split asks for, still serves every share of
  it (the default, ``strict=False``): a class the pool runs short of gives all it holds, and the rest
  of the total is split over the other classes in the same proportions
  (:func:`synthxray.classes.capped_split`). So Synth-100 is the whole pool under any ``balance``,
  and Synth-50 is half of it, as equal per class as the pool allows. ``strict=True`` (the spec's
  ``strict_counts: true``) keeps the exact split and refuses a recipe the pool cannot serve.

Named recipes (any number works where a number is shown):

==============================  =============  ====================  ======================================
name                            real_fraction  synthetic             how it trains
==============================  =============  ====================  ======================================
``baseline``, ``real-only``     1              none                  -
``synth-N`` (25, 50, 100)       1              N% (of the pool)      -
``limited-N`` (10, 25)          N/100          all                   -
``real-N``                      N/100          none                  -
``synth-only``,                 0              all                   -
``synthetic-only``
``mixed``, ``mixed-N``          1              all                   N% of every batch synthetic (50)
``balanced-real``,              1              none                  real images oversampled to synth-N's
``balanced-real-N``                                                  class counts (N = 50 by default)
``reweighted-real``             1              none                  class-weighted loss (balanced weights)
``pretrain-synth``              1              all                   trained on the pool, then fine-tuned
                                                                     on the real images
==============================  =============  ====================  ======================================

The controls: ``balanced-real-N`` trains on exactly as many images per class per epoch as
``synth-N`` does, but the extra images are *real* images of that class drawn again with
replacement (random oversampling, like imbalanced-learn's ``RandomOverSampler``; drawn once per
seed; the random flip/rotation/jitter makes every repeat a different view). So ``synth-N`` vs
``balanced-real-N`` isolates what the synthetic images add beyond the change of class mix and epoch
length. ``reweighted-real`` keeps the real set and weights the loss by ``n / (k * n_c)``
(scikit-learn's "balanced" weights).

A recipe can also be a mapping with the fields of :class:`Recipe` (``name``, ``real_fraction``,
``synthetic_ratio`` (a number or ``"all"``), ``batch_synthetic_fraction``, ``balance``,
``ratio_of``, ``oversample_like``, ``class_weight``, ``pretrain_synthetic``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..classes import capped_split, largest_remainder, match_class_names
from ..configcheck import check_fields

BALANCES = ("balanced", "real", "pool")
RATIO_OF = ("synthetic", "real")
DEFAULT_RATIO_OF = "synthetic"
CLASS_WEIGHTS = ("balanced",)
SOURCE_REAL, SOURCE_REPEAT, SOURCE_SYNTHETIC = "real", "real-repeat", "synthetic"


@dataclass(frozen=True)
class Recipe:
    """One training-data recipe (see the module docstring for the count rules)."""

    name: str
    real_fraction: float = 1.0
    synthetic_ratio: float | str = 0.0  # share of the pool (ratio_of synthetic) or of the real count, or "all"
    batch_synthetic_fraction: float | None = None  # mixed regime: share of synthetic images in every batch
    balance: str | None = None  # None: the experiment's default
    ratio_of: str | None = None  # None: the experiment's default
    oversample_like: float | None = None  # oversample real images to the class counts synth-(100x) would give
    class_weight: str | None = None  # "balanced": loss weights n / (k * n_c)
    pretrain_synthetic: bool = False  # train on the synthetic images first, then fine-tune on the real ones

    def __post_init__(self) -> None:
        where = f"recipe {self.name!r}"
        check_fields(self, f"{where}: ")
        if not 0.0 <= float(self.real_fraction) <= 1.0:
            raise ValueError(f"{where}: real_fraction must be in [0, 1], got {self.real_fraction}")
        if self.synthetic_ratio != "all" and (not isinstance(self.synthetic_ratio, (int, float)) or self.synthetic_ratio < 0):
            raise ValueError(f"{where}: synthetic_ratio must be a number >= 0 or 'all', got {self.synthetic_ratio!r}")
        if self.batch_synthetic_fraction is not None and not 0.0 < self.batch_synthetic_fraction < 1.0:
            raise ValueError(f"{where}: batch_synthetic_fraction must be in (0, 1), got {self.batch_synthetic_fraction}")
        if self.balance is not None and self.balance not in BALANCES:
            raise ValueError(f"{where}: balance must be one of {BALANCES}, got {self.balance!r}")
        if self.ratio_of is not None and self.ratio_of not in RATIO_OF:
            raise ValueError(f"{where}: ratio_of must be one of {RATIO_OF}, got {self.ratio_of!r}")
        if self.class_weight is not None and self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"{where}: class_weight must be one of {CLASS_WEIGHTS} or unset, got {self.class_weight!r}")
        if self.real_fraction == 0 and not self.uses_synthetic:
            raise ValueError(f"{where} has neither real nor synthetic images")
        if self.batch_synthetic_fraction is not None and (self.real_fraction == 0 or not self.uses_synthetic):
            raise ValueError(f"{where}: a per-batch synthetic share needs both real and synthetic images")
        if self.oversample_like is not None:
            if self.uses_synthetic or self.real_fraction == 0 or self.oversample_like <= 0:
                raise ValueError(f"{where}: oversample_like (> 0) oversamples real images, so the recipe takes no synthetic images and some real ones")
        if self.pretrain_synthetic and (not self.uses_synthetic or self.real_fraction == 0 or self.batch_synthetic_fraction is not None):
            raise ValueError(f"{where}: pretrain_synthetic needs synthetic and real images and no per-batch share")

    @property
    def uses_synthetic(self) -> bool:
        """Whether the classifier sees synthetic images."""
        return self.synthetic_ratio == "all" or float(self.synthetic_ratio) > 0

    @property
    def needs_pool(self) -> bool:
        """Whether the counts depend on the synthetic pool (its images, or only its size)."""
        return self.uses_synthetic or self.oversample_like is not None

    def check(self, ratio_of: str = DEFAULT_RATIO_OF) -> None:
        """Reject ratios the pool can never give (a share of the pool above 100%), naming the recipe."""
        ratio_of = self.ratio_of or ratio_of
        if ratio_of != "synthetic":
            return
        for what, value in (("synthetic_ratio", self.synthetic_ratio), ("oversample_like", self.oversample_like)):
            if isinstance(value, (int, float)) and value > 1 + 1e-9:
                raise ValueError(
                    f"recipe {self.name!r} asks for {value:.0%} of the synthetic pool ({what} {value}), but a pool can give at most 100% "
                    "(ratio_of: synthetic, the default: synth-N takes N% of the pool); use at most 100, or ratio_of: real to count N% of the real set"
                )

    def describe(self, ratio_of: str = DEFAULT_RATIO_OF, balance: str = "balanced", strict: bool = False) -> str:
        """The recipe in words, under the experiment's ``ratio_of`` and ``balance`` (a recipe's own override wins)."""
        ratio_of, balance = self.ratio_of or ratio_of, self.balance or balance
        real = "all real" if self.real_fraction == 1 else ("no real" if self.real_fraction == 0 else f"{self.real_fraction:.0%} of each real class")
        mix = {"balanced": "equal per class", "real": "in the real class mix", "pool": "in the pool's class mix"}[balance]
        if balance != "pool":
            mix += ", exactly" if strict else " as far as the pool allows"
        if not self.uses_synthetic:
            synth = "no synthetic"
        elif self.synthetic_ratio == "all":
            synth = "the whole synthetic pool"
        elif ratio_of == "synthetic":
            synth = f"{float(self.synthetic_ratio):.0%} of the synthetic pool ({mix})"
        else:
            synth = f"synthetic images = {float(self.synthetic_ratio):.0%} of the real count ({mix})"
        text = f"{real} + {synth}"
        if self.oversample_like is not None:
            of = "of the synthetic pool" if ratio_of == "synthetic" else "of the real count"
            text += (f", real images oversampled (with replacement) to the class counts of adding {self.oversample_like:.0%} {of} ({mix})")
        if self.batch_synthetic_fraction:
            text += f", {self.batch_synthetic_fraction:.0%} synthetic in every batch"
        if self.class_weight:
            text += ", class-weighted loss (n / (k * n_c))"
        if self.pretrain_synthetic:
            text += "; trained on the synthetic images first, then fine-tuned on the real ones"
        return text


def _num(m: re.Match, default: float = 0.0) -> float:
    return float(m.group(1)) / 100 if m.lastindex and m.group(1) else default


_PATTERNS = [
    (re.compile(r"(baseline|real-only|real)"), lambda m, n: Recipe(n)),
    (re.compile(r"(synth-only|synthetic-only)"), lambda m, n: Recipe(n, real_fraction=0.0, synthetic_ratio="all")),
    (re.compile(r"synth-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, synthetic_ratio=_num(m))),
    (re.compile(r"limited-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, real_fraction=_num(m), synthetic_ratio="all")),
    (re.compile(r"real-(\d+(?:\.\d+)?)"), lambda m, n: Recipe(n, real_fraction=_num(m))),
    (re.compile(r"mixed(?:-(\d+(?:\.\d+)?))?"), lambda m, n: Recipe(n, synthetic_ratio="all", batch_synthetic_fraction=_num(m, 0.5))),
    (re.compile(r"balanced-real(?:-(\d+(?:\.\d+)?))?"), lambda m, n: Recipe(n, oversample_like=_num(m, 0.5))),
    (re.compile(r"reweighted-real"), lambda m, n: Recipe(n, class_weight="balanced")),
    (re.compile(r"pretrain-synth"), lambda m, n: Recipe(n, synthetic_ratio="all", pretrain_synthetic=True)),
]
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))


def parse_recipe(value: str | Mapping[str, Any] | Recipe) -> Recipe:
    """A recipe from its name (``synth-50``, ``limited-10``, ``balanced-real`` ...) or a mapping of its fields."""
    if isinstance(value, Recipe):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - set(RECIPE_FIELDS)
        if unknown:
            raise ValueError(f"recipe {dict(value)}: unknown key(s) {sorted(unknown)}; allowed: {list(RECIPE_FIELDS)}")
        if "name" not in value:
            raise ValueError(f"recipe {dict(value)}: 'name' is required")
        fields = dict(value)
        if len(fields) == 1:
            return parse_recipe(fields["name"])
        if fields.get("synthetic_ratio", 0.0) is None:
            fields["synthetic_ratio"] = "all"
        return Recipe(**fields)  # values checked strictly by type there: '1' is not a fraction
    name = str(value).strip().lower()
    for pattern, make in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return make(m, name)
    raise ValueError(
        f"unknown recipe {value!r}; use baseline, real-only, synth-N, limited-N, real-N, synth-only, synthetic-only, mixed, mixed-N, "
        "balanced-real, balanced-real-N, reweighted-real or pretrain-synth (N a percentage), or a mapping with " + ", ".join(RECIPE_FIELDS)
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


def kept_real_counts(real_counts: Sequence[int], fraction: float) -> list[int]:
    """Real images per class kept at ``real_fraction`` ``fraction``: ``round(fraction * n)`` (the subset rule)."""
    return [_round(float(fraction) * n) for n in real_counts]


def _synthetic_share(recipe: Recipe, ratio: float, real_counts: Sequence[int], synthetic_counts: Sequence[int] | None, balance: str, ratio_of: str,
                     strict: bool = False) -> list[int]:
    """Synthetic images per class that ``ratio`` asks for under the count rules; unless ``strict``, capped by what the
    pool holds per class, the shortfall going to the other classes (the caller checks the result against the pool)."""
    if ratio_of == "synthetic" and synthetic_counts is None:
        raise ValueError(f"recipe {recipe.name!r} counts a share of the synthetic pool (ratio_of: synthetic), but the experiment has no synthetic data")
    total = _round(ratio * sum(real_counts if ratio_of == "real" else synthetic_counts))
    weights = {"balanced": [1.0] * len(real_counts), "real": list(real_counts), "pool": list(synthetic_counts or real_counts)}[balance]
    if not strict and synthetic_counts is not None and total <= sum(synthetic_counts):
        return capped_split(total, weights, synthetic_counts)
    return largest_remainder(total, weights)


def recipe_counts(real_counts: Sequence[int], synthetic_counts: Sequence[int] | None, recipe: Recipe, balance: str = "balanced", ratio_of: str = DEFAULT_RATIO_OF,
                  strict: bool = False) -> tuple[list[int], list[int]]:
    """(real per class, synthetic per class) that ``recipe`` takes; errors, naming the recipe, when the pool is too small
    (in all, or, with ``strict``, for the exact class split).

    For an oversampling recipe the real counts include the repeats (see :func:`oversample_counts`).
    """
    balance, ratio_of = recipe.balance or balance, recipe.ratio_of or ratio_of
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    if ratio_of not in RATIO_OF:
        raise ValueError(f"ratio_of must be one of {RATIO_OF}, got {ratio_of!r}")
    recipe.check(ratio_of)
    real = kept_real_counts(real_counts, recipe.real_fraction)
    if recipe.oversample_like is not None:
        extra = oversample_counts(real_counts, synthetic_counts, recipe, balance, ratio_of, strict)
        return [a + b for a, b in zip(real, extra)], [0] * len(real_counts)
    if not recipe.uses_synthetic:
        return real, [0] * len(real_counts)
    if synthetic_counts is None:
        raise ValueError(f"recipe {recipe.name!r} needs synthetic images, but the experiment has no synthetic data")
    if recipe.synthetic_ratio == "all":
        return real, list(synthetic_counts)
    synth = _synthetic_share(recipe, float(recipe.synthetic_ratio), real_counts, synthetic_counts, balance, ratio_of, strict)
    short = [(i, need, have) for i, (need, have) in enumerate(zip(synth, synthetic_counts)) if need > have]
    if short:
        detail = ", ".join(f"class {i}: needs {need}, pool has {have}" for i, need, have in short)
        raise ValueError(
            f"recipe {recipe.name!r} ({recipe.describe(ratio_of, balance, strict)}) needs more synthetic images than the pool holds ({detail}); "
            "generate more, lower the ratio" + (", or use balance: pool" if balance != "pool" else "")
            + (", or set strict_counts: false to take what each class holds" if strict and sum(synth) <= sum(synthetic_counts) else "")
        )
    return real, synth


def oversample_counts(real_counts: Sequence[int], synthetic_counts: Sequence[int] | None, recipe: Recipe, balance: str = "balanced", ratio_of: str = DEFAULT_RATIO_OF,
                      strict: bool = False) -> list[int]:
    """Extra real images per class (drawn again with replacement) that make ``balanced-real-N`` match synth-N's counts."""
    balance, ratio_of = recipe.balance or balance, recipe.ratio_of or ratio_of
    if recipe.oversample_like is None:
        return [0] * len(real_counts)
    extra = _synthetic_share(recipe, float(recipe.oversample_like), real_counts, synthetic_counts, balance, ratio_of, strict)
    kept = kept_real_counts(real_counts, recipe.real_fraction)  # the repeats are drawn from the kept images
    empty = [i for i, (e, n) in enumerate(zip(extra, kept)) if e > 0 and n == 0]
    if empty:
        keeps, of = [kept[i] for i in empty], [real_counts[i] for i in empty]
        raise ValueError(f"recipe {recipe.name!r}: classes {empty} have no real image to oversample "
                         f"(real fraction {recipe.real_fraction:g} keeps {keeps} of {of})")
    return extra


def synthetic_needed(real_counts: Sequence[int], recipes: Sequence[Recipe], balance: str = "balanced", default_pool: float = 1.0, ratio_of: str = DEFAULT_RATIO_OF) -> list[int]:
    """Synthetic images per class a generator must make so every recipe can be built.

    Recipes that take ``"all"`` synthetic images, and every share of the pool (``ratio_of:
    synthetic``), are served by a pool of ``default_pool`` times the real count (balanced as
    configured), unless a numeric ratio of the real count asks for more.
    """
    need = [0] * len(real_counts)
    for r in recipes:
        if not r.needs_pool:
            continue
        b = r.balance or balance
        if (r.ratio_of or ratio_of) == "synthetic" or r.synthetic_ratio == "all" or r.oversample_like is not None:
            ratio = default_pool
        else:
            ratio = float(r.synthetic_ratio)
        total = _round(ratio * sum(real_counts))
        part = largest_remainder(total, list(real_counts) if b == "real" else [1.0] * len(real_counts))
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


def select_indices(
    real_labels: np.ndarray, synthetic_labels: np.ndarray | None, num_classes: int, recipe: Recipe, seed: int, balance: str = "balanced",
    synthetic_class_map: Sequence[int] | None = None, ratio_of: str = DEFAULT_RATIO_OF, synthetic_counts: Sequence[int] | None = None,
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the real set, real rows drawn again (oversampling), and synthetic rows a recipe takes (the seed picks which).

    ``synthetic_counts`` stands in for the pool's class counts when only its size matters (oversampling).
    """
    real_counts = np.bincount(real_labels, minlength=num_classes).tolist()
    synth_counts = None if synthetic_counts is None else list(synthetic_counts)
    if synthetic_labels is not None:
        mapped = synthetic_labels if synthetic_class_map is None else np.asarray(synthetic_class_map)[synthetic_labels]
        synth_counts = np.bincount(mapped, minlength=num_classes).tolist() if len(mapped) else [0] * num_classes
    kept = Recipe(recipe.name, real_fraction=recipe.real_fraction, synthetic_ratio=recipe.synthetic_ratio, balance=recipe.balance, ratio_of=recipe.ratio_of)
    n_real, n_synth = recipe_counts(real_counts, synth_counts, kept, balance, ratio_of, strict)
    extra = oversample_counts(real_counts, synth_counts, recipe, balance, ratio_of, strict)
    rng = np.random.default_rng([int(seed), 7])
    real_idx = _pick(real_labels, n_real, rng)
    repeat_idx = np.concatenate([rng.choice(real_idx[real_labels[real_idx] == c], e, replace=True) for c, e in enumerate(extra) if e]) if sum(extra) else np.zeros(0, dtype=int)
    synth_idx = _pick(synthetic_labels, n_synth, rng, synthetic_class_map) if synthetic_labels is not None and sum(n_synth) else np.zeros(0, dtype=int)
    return real_idx, np.sort(repeat_idx), synth_idx


def augment(
    real,
    synthetic=None,
    ratio: float | str = 0.5,
    real_fraction: float = 1.0,
    seed: int = 0,
    balance: str = "balanced",
    ratio_of: str = DEFAULT_RATIO_OF,
    shuffle: bool = False,
    recipe: Recipe | str | Mapping[str, Any] | None = None,
    synthetic_counts: Sequence[int] | None = None,
    strict: bool = False,
):
    """Mix a real and a synthetic dataset into one ``datasets.Dataset``.

    ``ratio`` is the number of synthetic images as a fraction of the synthetic pool (0.5 adds half
    the pool: seed 004's convention, ``ratio_of="synthetic"``) or of the real set's size
    (``ratio_of="real"``), or ``"all"`` for the whole synthetic set; ``real_fraction`` keeps that
    share of every real class; ``balance`` is ``"balanced"`` (equal synthetic counts per class),
    ``"real"`` (the real class proportions) or ``"pool"`` (the pool's proportions), as far as the pool
    allows (a class it runs short of gives all it holds and the others make up the rest), or exactly
    with ``strict=True`` (an error when the pool cannot). ``recipe`` (a
    :class:`Recipe` or a recipe name) replaces ``ratio``/``real_fraction``, and errors name it.
    Synthetic labels are mapped to the real classes by name. The result has ``image``, ``label``
    (the real ClassLabel), ``source`` (``"real"``, ``"real-repeat"`` for oversampled repeats,
    ``"synthetic"``) and ``source_index`` (row in its source), real rows first.
    Either dataset may be anything :func:`synthxray.load_dataset` accepts.
    """
    import datasets

    from ..data import load_dataset

    real = load_dataset(real)
    names = list(real.features["label"].names)
    if recipe is None:
        ratio = "all" if ratio is None or ratio == "all" else float(ratio)
        recipe = Recipe("augment", real_fraction=float(real_fraction), synthetic_ratio=ratio)
    recipe = parse_recipe(recipe)
    synth_map = None
    if synthetic is not None:
        synthetic = load_dataset(synthetic)
        synth_map = match_class_names(names, synthetic.features["label"].names)
    real_idx, repeat_idx, synth_idx = select_indices(_labels(real), _labels(synthetic) if synthetic is not None else None, len(names), recipe, seed,
                                                     balance, synth_map, ratio_of, synthetic_counts, strict)
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
    if len(repeat_idx):
        parts.append(part(real, repeat_idx, SOURCE_REPEAT, None))
    if len(synth_idx):
        parts.append(part(synthetic, synth_idx, SOURCE_SYNTHETIC, synth_map))
    out = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return out.shuffle(seed=seed).flatten_indices() if shuffle else out
