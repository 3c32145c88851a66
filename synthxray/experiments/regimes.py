"""Limited-data regimes: the recipe grid over real fractions, its table and plot, and what the generator is worth in real images.

A spec with ``regimes`` (``synthxray experiment --config exp.yaml``)::

    regimes:
      fractions: [0.01, 0.05, 0.1, 0.25, 1.0]      # share of every real class kept (stratified, seeded)
      recipes: [real, balanced-real, reweighted-real, limited, pretrain-synth, mixed]

expands, for every fraction F, into the recipes below (named ``<kind>-f<100 F>``: ``limited-f5``),
all taking the same real images for a given seed:

==================  =======================================================================
kind                training data at real fraction F
==================  =======================================================================
``real``            the F real images alone (the small site on its own)
``balanced-real``   the F real images oversampled (with replacement) to *limited-F's* class
                    counts: as many images per class per epoch as with the synthetic pool,
                    none of them synthetic (the count-matched control)
``reweighted-real`` the F real images, class-weighted loss ``n / (k * n_c)``
``limited``         the F real images + the whole synthetic pool
``pretrain-synth``  trained on the whole synthetic pool, then fine-tuned on the F real images
``mixed``           the F real images + the whole pool, ``mixed_fraction`` synthetic per batch
==================  =======================================================================

The report (``regimes.md`` / ``regimes.csv`` / ``regimes.json``, ``plots/regimes_<backbone>.png``)
has one row per (F, recipe) with paired per-seed differences against real-F and balanced-real-F
(95% t-intervals), and :func:`real_images_worth`: how many real images reach the same accuracy on
the real-only (and on the balanced-real) curve.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .recipes import Recipe, display_name
from .report import METRICS, aggregate, paired_cell, paired_deltas
from .stats import adjust, seeds_needed

REGIME_KINDS = ("real", "balanced-real", "reweighted-real", "limited", "pretrain-synth", "mixed")
CONTROL_KINDS = ("real", "balanced-real", "reweighted-real")
SYNTHETIC_KINDS = ("limited", "pretrain-synth", "mixed")
REFERENCES = ("real", "balanced-real")  # paired deltas and worth curves are taken against these, at the same F
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)
DETECT = 0.02  # the accuracy difference (2 points) whose seed count the report states, at each cell's spread


def fraction_label(fraction: float) -> str:
    """``0.05`` -> ``"5"``: the percentage as it appears in recipe names."""
    return f"{100 * float(fraction):g}"


def regime_name(kind: str, fraction: float) -> str:
    """``("limited", 0.05)`` -> ``"limited-f5"``."""
    return f"{kind}-f{fraction_label(fraction)}"


@dataclass
class RegimeSpec:
    """The real-fraction x recipe grid of a limited-data study."""

    fractions: list[float] = field(default_factory=lambda: list(DEFAULT_FRACTIONS),
                                   metadata={"help": "Shares of every real class kept, each in (0, 1]; 1 is the whole real set."})
    recipes: list[str] = field(default_factory=lambda: list(REGIME_KINDS),
                               metadata={"help": f"Recipe kinds run at every fraction: some of {list(REGIME_KINDS)}; real and balanced-real are required."})
    mixed_fraction: float = field(default=0.5, metadata={"help": "mixed-F: share of synthetic images in every batch, in (0, 1)."})

    def __post_init__(self) -> None:
        from ..configcheck import check_fields

        if isinstance(self.fractions, (int, float)) or isinstance(self.recipes, str):
            raise ValueError("regimes.fractions and regimes.recipes are lists, e.g. fractions: [0.05, 0.1], recipes: [real, balanced-real, limited]")
        check_fields(self, "regimes.")  # strictly typed: '1' or null is not a fraction, abc not a mixed_fraction
        self.fractions = [float(f) for f in self.fractions]
        bad = [f for f in self.fractions if not 0 < f <= 1]
        if not self.fractions or bad:
            raise ValueError(f"regimes.fractions must be a non-empty list of numbers in (0, 1] (0.05 = 5% of every real class), got {self.fractions}")
        labels = [fraction_label(f) for f in self.fractions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"regimes.fractions repeat: {self.fractions}")
        self.fractions = sorted(self.fractions)
        self.recipes = [str(k).strip().lower() for k in self.recipes]
        unknown = [k for k in self.recipes if k not in REGIME_KINDS]
        if unknown:
            raise ValueError(f"regimes.recipes: unknown kind(s) {unknown}; choose from {list(REGIME_KINDS)}")
        if len(set(self.recipes)) != len(self.recipes):
            raise ValueError(f"regimes.recipes repeat: {self.recipes}")
        missing = [k for k in REFERENCES if k not in self.recipes]
        if missing:
            raise ValueError(f"regimes.recipes must include the controls {list(REFERENCES)} (every row is compared with them); missing {missing}")
        if not 0 < self.mixed_fraction < 1:
            raise ValueError(f"regimes.mixed_fraction must be in (0, 1), got {self.mixed_fraction}")
        # the order the table and the plot use
        self.recipes = [k for k in REGIME_KINDS if k in self.recipes]

    @classmethod
    def parse(cls, value: Any) -> "RegimeSpec | None":
        if value in (None, False):
            return None
        if value is True:
            return cls()
        if isinstance(value, RegimeSpec):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"regimes: unknown key(s) {sorted(unknown)}; allowed keys: {sorted(known)}")
            return cls(**value)
        raise ValueError(f"regimes must be true or a mapping with fractions and recipes, got {value!r}")

    def recipe(self, kind: str, fraction: float) -> Recipe:
        """The :class:`Recipe` of one grid cell."""
        name, f = regime_name(kind, fraction), float(fraction)
        if kind == "real":
            return Recipe(name, real_fraction=f)
        if kind == "balanced-real":
            # balance "pool": the repeats copy the pool's own class counts, i.e. exactly what limited-F adds
            return Recipe(name, real_fraction=f, oversample_like=1.0, balance="pool")
        if kind == "reweighted-real":
            return Recipe(name, real_fraction=f, class_weight="balanced")
        if kind == "limited":
            return Recipe(name, real_fraction=f, synthetic_ratio="all")
        if kind == "pretrain-synth":
            return Recipe(name, real_fraction=f, synthetic_ratio="all", pretrain_synthetic=True)
        if kind == "mixed":
            return Recipe(name, real_fraction=f, synthetic_ratio="all", batch_synthetic_fraction=float(self.mixed_fraction))
        raise ValueError(f"unknown regime kind {kind!r}; choose from {list(REGIME_KINDS)}")

    def expand(self) -> list[Recipe]:
        """Every (fraction, kind) recipe, fraction by fraction."""
        return [self.recipe(k, f) for f in self.fractions for k in self.recipes]

    def cells(self) -> list[tuple[float, str, str]]:
        """(fraction, kind, recipe name) of every grid cell, in :meth:`expand`'s order."""
        return [(f, k, regime_name(k, f)) for f in self.fractions for k in self.recipes]


# ---- what the generator is worth --------------------------------------------------------------------
def real_images_worth(n_real: Sequence[float], accuracy: Sequence[float], target: float) -> dict[str, Any]:
    """How many real images reach ``target`` accuracy on a real-only curve.

    The curve (accuracy at ``n_real`` images) is made non-decreasing by isotonic regression on
    ``log n`` (extra real data is not expected to hurt; this smooths seed noise), then inverted by
    log-linear interpolation. ``status`` is ``"within"`` (``n`` is the interpolated count),
    ``"below"`` (the target is under the curve's smallest point: fewer than ``n_min`` real images;
    ``n`` is None) or ``"above"`` (beyond the largest point: more than ``n_max``; ``n`` is None).
    """
    from sklearn.isotonic import IsotonicRegression

    x = np.asarray(n_real, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"real_images_worth needs at least two (n_real, accuracy) points of equal length, got {len(x)} and {len(y)}")
    if (x <= 0).any() or not np.isfinite(y).all() or not math.isfinite(target):
        raise ValueError("real_images_worth: image counts must be > 0 and accuracies finite")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(np.unique(x)) != len(x):
        raise ValueError(f"real_images_worth: repeated image counts {x.tolist()}")
    lx = np.log(x)
    fit = IsotonicRegression(increasing=True).fit_transform(lx, y)
    out: dict[str, Any] = {"target": float(target), "n_min": float(x[0]), "n_max": float(x[-1]), "curve": fit.tolist()}
    eps = 1e-9
    if target < fit[0] - eps:
        return {**out, "n": None, "status": "below"}
    if target > fit[-1] + eps:
        return {**out, "n": None, "status": "above"}
    i = int(np.argmax(fit >= target - eps))  # first point that reaches the target
    if i == 0:
        return {**out, "n": float(x[0]), "status": "within"}
    t = (target - fit[i - 1]) / (fit[i] - fit[i - 1])
    return {**out, "n": float(math.exp(lx[i - 1] + t * (lx[i] - lx[i - 1]))), "status": "within"}


def worth_text(w: dict[str, Any] | None) -> str:
    """``≈ 1,234``, ``< 47`` or ``> 4,708`` (beyond the measured range)."""
    if not w:
        return "–"
    if w["status"] == "below":
        return f"< {w['n_min']:,.0f}"
    if w["status"] == "above":
        return f"> {w['n_max']:,.0f}"
    return f"≈ {w['n']:,.0f}"


# ---- the table ------------------------------------------------------------------------------------
def regime_rows(regimes: RegimeSpec, runs: Sequence[dict[str, Any]], backbones: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (backbone, fraction, kind) that has finished runs: counts, metrics over seeds, paired Δ vs real-F and
    balanced-real-F, and the synthetic recipes' worth in real images on both reference curves."""
    names = [name for _, _, name in regimes.cells()]
    by_name = {name: (f, k) for f, k, name in regimes.cells()}
    rows = []
    for row in aggregate(runs, backbones, names, baseline=None, compare_to=[]):
        f, kind = by_name[row["recipe"]]
        row = {**row, "fraction": f, "kind": kind}
        row["paired"] = {}
        for ref in REFERENCES:
            p = paired_deltas(runs, row["backbone"], row["recipe"], regime_name(ref, f))
            if p is not None:
                row["paired"][ref] = p
        rows.append(row)
    for b in backbones:  # one family per (backbone, reference, metric): every synthetic cell compared with that control
        for ref in REFERENCES:
            for m in METRICS:
                adjust(r["paired"][ref][m] for r in rows
                       if r["backbone"] == b and r["kind"] in SYNTHETIC_KINDS and ref in r["paired"])
    for r in rows:
        p = r["paired"].get("balanced-real", {}).get("accuracy")
        r["seeds_for_2_points"] = seeds_needed(DETECT, p["std"]) if p else None
    for b in backbones:
        mine = [r for r in rows if r["backbone"] == b]
        for ref in REFERENCES:
            curve = sorted(((r["n_real"], r["accuracy"]["mean"]) for r in mine if r["kind"] == ref and r["accuracy"]["mean"] is not None))
            for r in mine:
                if r["kind"] not in SYNTHETIC_KINDS or r["accuracy"]["mean"] is None or len(curve) < 2:
                    continue
                w = real_images_worth([c[0] for c in curve], [c[1] for c in curve], r["accuracy"]["mean"])
                w["n_real_used"] = r["n_real"]
                r.setdefault("worth", {})[ref] = w
    return rows


def _cell(p: dict[str, Any] | None, metric: str, digits: int = 1, scale: float = 100, adjusted: bool = False) -> str:
    return paired_cell(p, metric, digits, scale, bold=True, missing="–", adjusted=adjusted)


def _ms(s: dict[str, Any], pct: bool) -> str:
    if s["mean"] is None:
        return "–"
    k = 100 if pct else 1
    text = f"{k * s['mean']:.1f}" if pct else f"{s['mean']:.3f}"
    if s["std"] is not None:
        text += f" ± {k * s['std']:.1f}" if pct else f" ± {s['std']:.3f}"
    return text


def regime_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The regime table: one row per (fraction, recipe); Δs in points (AUC in thousandths), bold where the 95% CI excludes 0."""
    head = ["Backbone", "Real fraction", "Recipe", "Real", "Synthetic", "Seeds", "Accuracy % (mean ± sd)", "F1", "AUC",
            "Δ acc vs real-F", "Δ acc vs balanced-real-F", "Δ acc vs balanced-real-F, adjusted", "Δ AUC ×1000 vs balanced-real-F",
            "Δ AUC ×1000 vs balanced-real-F, adjusted", "Seeds for a 2-pt Δ", "Worth (real-F curve)", "Worth (balanced-real-F curve)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        real = str(r["n_real"]) + (f" + {r['n_real_repeats']} repeats" if r.get("n_real_repeats") else "")
        p = r.get("paired", {})
        w = r.get("worth", {})
        cells = [r["backbone"], f"{fraction_label(r['fraction'])}%", display_name(r["kind"]), real, str(r["n_synthetic"]), str(len(r["seeds"])),
                 _ms(r["accuracy"], True), _ms(r["f1"], False), _ms(r["auc"], False),
                 _cell(p.get("real"), "accuracy"), _cell(p.get("balanced-real"), "accuracy"),
                 _cell(p.get("balanced-real"), "accuracy", adjusted=True), _cell(p.get("balanced-real"), "auc", 0, 1000),
                 _cell(p.get("balanced-real"), "auc", 0, 1000, adjusted=True),
                 "–" if r.get("seeds_for_2_points") is None else str(r["seeds_for_2_points"]),
                 worth_text(w.get("real")), worth_text(w.get("balanced-real"))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "Mean ± sample sd over seeds. Δ: paired by seed against the same fraction's real-F / balanced-real-F run (same real images, "
             "same initial weights), in points, with the paired 95% t-interval; **bold** where it excludes 0. balanced-real-F trains on the "
             "F real images oversampled to limited-F's class counts (as many images per epoch as with the pool, none synthetic). "
             "Adjusted: the same Δ corrected for the m comparisons of synthetic recipes with balanced-real-F in this table "
             "(per backbone and metric; the control rows are not part of that family): "
             "the Bonferroni t-interval at 1 - 0.05/m (bold where it excludes 0) and the Holm-adjusted p-value. "
             "Seeds for a 2-pt Δ: paired seeds a t-test needs to detect a 2-point accuracy difference with 80% power at "
             "α = 0.05 (unadjusted), at this cell's spread of paired differences. "
             "Worth: the real images that reach the recipe's mean accuracy on the real-only / balanced-real curve (isotonic in "
             "log n, interpolated log-linearly); `<`/`>`: outside the measured range."]
    return "\n".join(lines + notes) + "\n"


def regime_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import csv

    header = ["backbone", "fraction", "kind", "recipe", "n_seeds", "n_real", "n_real_repeats", "n_synthetic"]
    header += [f"{m}_{k}" for m in ("accuracy", "f1", "auc") for k in ("mean", "std", "ci95_low", "ci95_high")]
    delta_keys = ("mean", "ci95_low", "ci95_high", "p", "p_holm", "ci_adj_low", "ci_adj_high", "family")
    header += [f"delta_{m}_vs_{ref}_{k}" for ref in REFERENCES for m in ("accuracy", "f1", "auc") for k in delta_keys]
    header += ["seeds_for_2_points"]
    header += [f"worth_{ref}_{k}" for ref in REFERENCES for k in ("n", "status")]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            line = [r["backbone"], r["fraction"], r["kind"], r["recipe"], len(r["seeds"]), r["n_real"], r.get("n_real_repeats", 0), r["n_synthetic"]]
            line += [r[m][k] for m in ("accuracy", "f1", "auc") for k in ("mean", "std", "ci95_low", "ci95_high")]
            for ref in REFERENCES:
                p = r.get("paired", {}).get(ref)
                line += [p[m].get(k) if p else "" for m in ("accuracy", "f1", "auc") for k in delta_keys]
            line += [r.get("seeds_for_2_points")]
            for ref in REFERENCES:
                wr = r.get("worth", {}).get(ref)
                line += [wr["n"] if wr else "", wr["status"] if wr else ""]
            w.writerow(["" if v is None else v for v in line])
    tmp.replace(path)


# ---- the plot -------------------------------------------------------------------------------------
STYLE = {"real": ("black", "-", "o"), "balanced-real": ("tab:gray", "-", "s"), "reweighted-real": ("tab:brown", ":", "^"),
         "limited": ("tab:blue", "--", "D"), "pretrain-synth": ("tab:green", "--", "v"), "mixed": ("tab:purple", "--", "P")}


def plot_regimes(rows: Sequence[dict[str, Any]], backbone: str, path: Path) -> Path:
    """Accuracy and AUC against the number of real images (log x; solid: real images only, dashed: with the synthetic pool;
    error bars: 95% CI over seeds), and each synthetic recipe's worth in real images (the diagonal: worth exactly its real images)."""
    from .report import _plt

    plt = _plt()
    mine = [r for r in rows if r["backbone"] == backbone]
    kinds = [k for k in REGIME_KINDS if any(r["kind"] == k for r in mine)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, metric, label in ((axes[0], "accuracy", "test accuracy (%)"), (axes[1], "auc", "test AUC")):
        scale = 100 if metric == "accuracy" else 1
        for k in kinds:
            pts = sorted((r["n_real"], r[metric]) for r in mine if r["kind"] == k and r[metric]["mean"] is not None)
            if not pts:
                continue
            x = [p[0] for p in pts]
            y = [scale * p[1]["mean"] for p in pts]
            err = [scale * (p[1]["mean"] - p[1]["ci95_low"]) if p[1]["ci95_low"] is not None else 0 for p in pts]
            color, ls, marker = STYLE[k]
            ax.errorbar(x, y, yerr=err, color=color, ls=ls, marker=marker, capsize=3, ms=5, label=display_name(k))
        means = [scale * r[metric]["mean"] for r in mine if r[metric]["mean"] is not None]
        if means:  # a 1%-data run's interval can span the whole axis: keep the means in view
            ax.set_ylim(max(0.0, min(means) - 0.1 * scale), min(1.0 * scale, max(means) + 0.05 * scale))
        ax.set_xscale("log")
        ax.set_xlabel("real training images (log)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{backbone}: accuracy vs real images (solid: real only, dashed: + synthetic)", fontsize=9)
    axes[1].set_title("AUC vs real images (error bars: 95% CI over seeds)", fontsize=9)
    ax = axes[2]
    ns = sorted({r["n_real"] for r in mine})
    for ref, ls, alpha in (("balanced-real", "-", 1.0), ("real", ":", 0.45)):
        for k in SYNTHETIC_KINDS:
            pts = sorted((r["n_real"], r["worth"][ref]) for r in mine if r["kind"] == k and r.get("worth", {}).get(ref))
            if not pts:
                continue
            color, _, marker = STYLE[k]
            x = [p[0] for p in pts]
            y = [p[1]["n"] if p[1]["status"] == "within" else (p[1]["n_min"] if p[1]["status"] == "below" else p[1]["n_max"])
                 for p in pts]
            curve = "balanced-real curve" if ref == "balanced-real" else "real-only curve"
            ax.plot(x, y, color=color, ls=ls, marker=marker, alpha=alpha, label=f"{display_name(k)} ({curve})")
            for xi, yi, (_, w) in zip(x, y, pts):
                if w["status"] != "within":
                    ax.annotate("↓" if w["status"] == "below" else "↑", (xi, yi), color=color, ha="center", alpha=alpha,
                                va="top" if w["status"] == "below" else "bottom", fontsize=12)
    if ns:
        ax.plot(ns, ns, color="black", lw=0.8, label="worth = its own real images")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _readable_log_ticks(ax, ns)
    ax.set_xlabel("real training images (log)")
    ax.set_ylabel("real images with the same accuracy (log)")
    ax.set_title("What real + synthetic is worth in real images\n(solid: on the count-matched balanced-real curve, "
                 "dotted: real-only; ↓ / ↑: outside the measured range)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    for a in axes[:2]:
        _readable_log_ticks(a, ns, y=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _readable_log_ticks(ax: Any, ns: Sequence[float], y: bool = True) -> None:
    """Label a log axis at the measured image counts only, as plain numbers: matplotlib's minor labels
    (2 x 10^2, 3 x 10^2, ...) overlap on a short range."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    if not ns:
        return
    axes = (ax.xaxis, ax.yaxis) if y else (ax.xaxis,)
    for axis in axes:
        axis.set_major_locator(FixedLocator(list(ns)))
        axis.set_major_formatter(lambda v, _pos: f"{v:,.0f}")
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())


def write_regime_report(regimes: RegimeSpec, runs: Sequence[dict[str, Any]], backbones: Sequence[str], out: Path, plots: bool = True) -> tuple[str, list[Path]]:
    """``regimes.md`` / ``regimes.csv`` / ``regimes.json`` and ``plots/regimes_<backbone>.png``; returns the markdown and the files."""
    rows = regime_rows(regimes, runs, backbones)
    md = regime_markdown(rows)
    files = [out / "regimes.md", out / "regimes.csv", out / "regimes.json"]
    tmp = files[0].with_name("regimes.md.tmp")
    tmp.write_text(md)
    tmp.replace(files[0])
    regime_csv(rows, files[1])
    tmp = files[2].with_name("regimes.json.tmp")
    tmp.write_text(json.dumps({"regimes": dataclasses.asdict(regimes), "rows": rows}, indent=2, default=str) + "\n")
    tmp.replace(files[2])
    if plots and rows:
        for b in backbones:
            if any(r["backbone"] == b for r in rows):
                files.append(plot_regimes(rows, b, out / "plots" / f"regimes_{b}.png"))
    return md, files
