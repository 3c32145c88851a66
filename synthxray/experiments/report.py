"""Metrics of one run, their spread over seeds, and the results files: CSV, JSON, markdown, PNG plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .recipes import display_name
from .stats import adjust, t_test

METRICS = ("accuracy", "f1", "auc", "precision", "recall")


# ---- one run --------------------------------------------------------------------------------------
def compute_metrics(y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str], positive: int | None = None) -> dict[str, Any]:
    """Accuracy, F1, AUC, precision, recall and the confusion matrix (rows: true class, columns: predicted).

    Two classes: F1/precision/recall of the ``positive`` class (default: the second class, e.g.
    PNEUMONIA after NORMAL) and AUC of its probability. More classes: macro averages and one-vs-rest
    macro AUC. AUC is ``None`` when the test set lacks a class.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    k = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(y), k):
        raise ValueError(f"probs must have shape ({len(y)}, {k}), got {probs.shape}")
    pred = probs.argmax(axis=1)
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y, pred)), "n": int(len(y))}
    present = np.unique(y)
    if k == 2:
        pos = 1 if positive is None else int(positive)
        kw = {"average": "binary", "pos_label": pos, "zero_division": 0}
        out["f1"] = float(f1_score(y, pred, **kw))
        out["precision"] = float(precision_score(y, pred, **kw))
        out["recall"] = float(recall_score(y, pred, **kw))
        out["auc"] = float(roc_auc_score(y == pos, probs[:, pos])) if len(present) == 2 else None
        out["positive_class"] = class_names[pos]
    else:
        kw = {"average": "macro", "labels": list(range(k)), "zero_division": 0}
        out["f1"] = float(f1_score(y, pred, **kw))
        out["precision"] = float(precision_score(y, pred, **kw))
        out["recall"] = float(recall_score(y, pred, **kw))
        out["auc"] = float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(k)))) if len(present) == k else None
        out["positive_class"] = None
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=list(range(k))).tolist()
    return out


# ---- over seeds -----------------------------------------------------------------------------------
def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean, sample std, a two-sided 95% t-interval of the mean and the t-test's p-value against 0 (``None`` where
    undefined)."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    n = len(v)
    if n == 0:
        return {"mean": None, "std": None, "ci95_low": None, "ci95_high": None, "n": 0, "p": None}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "std": None, "ci95_low": None, "ci95_high": None, "n": 1, "p": None}
    from scipy import stats

    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n,
            "p": t_test(mean, std, n)}


def paired_deltas(runs: Sequence[dict[str, Any]], backbone: str, recipe: str, reference: str) -> dict[str, Any] | None:
    """Per-seed differences ``recipe - reference`` (same backbone, same seed) summarised with a paired 95% t-interval.

    Runs with the same seed share the validation split and the initial weights (``init_checksum``);
    ``shared_init`` says whether every pair did. None when no seed has both runs.
    """
    by_seed = {}
    for x in runs:
        if x["backbone"] == backbone and x["recipe"] in (recipe, reference):
            by_seed.setdefault(x["seed"], {})[x["recipe"]] = x
    pairs = [(d[recipe], d[reference]) for s, d in sorted(by_seed.items()) if recipe in d and reference in d]
    if not pairs or recipe == reference:
        return None
    out: dict[str, Any] = {"seeds": [a["seed"] for a, _ in pairs]}
    for m in METRICS:
        diffs = [None if a["metrics"][m] is None or b["metrics"][m] is None else a["metrics"][m] - b["metrics"][m] for a, b in pairs]
        out[m] = summarize(diffs)
    checks = [(a.get("init_checksum"), b.get("init_checksum")) for a, b in pairs]
    out["shared_init"] = None if any(c is None for pair in checks for c in pair) else all(x == y for x, y in checks)
    return out


def aggregate(runs: Sequence[dict[str, Any]], backbones: Sequence[str], recipes: Sequence[str], baseline: str | None,
              compare_to: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per (backbone, recipe): mean/std/95% CI of every metric, the change vs ``baseline``, and paired
    per-seed differences vs every recipe of ``compare_to`` (default: the baseline)."""
    compare_to = list(compare_to) if compare_to is not None else ([baseline] if baseline else [])
    rows = []
    for b in backbones:
        for r in recipes:
            group = [x for x in runs if x["backbone"] == b and x["recipe"] == r]
            if not group:
                continue
            row: dict[str, Any] = {
                "backbone": b, "recipe": r, "experiment": display_name(r), "seeds": sorted(x["seed"] for x in group),
                "n_real": group[0]["counts"]["real"], "n_synthetic": group[0]["counts"]["synthetic"],
                "n_real_repeats": group[0]["counts"].get("real_repeats", 0),
                "pretrained": all(x["model"]["pretrained"] for x in group),
                "weights_note": group[0]["model"]["weights_note"],
            }
            for m in METRICS:
                row[m] = summarize(x["metrics"][m] for x in group)
            cms = np.asarray([x["metrics"]["confusion_matrix"] for x in group], dtype=float)
            row["confusion_matrix"] = cms.mean(axis=0).tolist()
            rob = [x.get("robustness") for x in group if x.get("robustness")]
            if rob:
                row["robustness"] = {k: summarize(d.get(k) for d in rob) for k in rob[0] if k != "epsilon"}
                row["robustness_epsilon"] = rob[0].get("epsilon")
            rows.append(row)
    for row in rows:
        base = next((x for x in rows if x["backbone"] == row["backbone"] and x["recipe"] == baseline), None)
        row["delta"] = {}
        for m in METRICS:
            a = row[m]["mean"]
            b = base[m]["mean"] if base else None
            row["delta"][m] = None if (a is None or b is None) else a - b
        row["paired"] = {ref: p for ref in compare_to if (p := paired_deltas(runs, row["backbone"], row["recipe"], ref)) is not None}
    adjust_families(rows, compare_to)
    return rows


def adjust_families(rows: Sequence[dict[str, Any]], references: Sequence[str]) -> None:
    """Multiplicity adjustment (:func:`synthxray.experiments.stats.adjust`) of the paired comparisons a table shows:
    one family per (backbone, reference, metric), i.e. every row's comparison with that reference."""
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        for ref in references:
            for m in METRICS:
                adjust(r["paired"][ref][m] for r in rows if r["backbone"] == backbone and ref in r.get("paired", {}))


PAIRED_METRICS = ("accuracy", "f1", "auc")


# ---- files -----------------------------------------------------------------------------------------
def _num(x: Any, digits: int = 4) -> Any:
    return "" if x is None else round(float(x), digits)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One row per backbone x recipe; mean, std and CI bounds for each metric, Δ vs baseline, paired Δs with their CI."""
    refs = list(dict.fromkeys(ref for r in rows for ref in r.get("paired", {})))
    header = ["backbone", "recipe", "experiment", "n_seeds", "seeds", "n_real", "n_real_repeats", "n_synthetic", "pretrained"]
    for m in METRICS:
        header += [f"{m}_mean", f"{m}_std", f"{m}_ci95_low", f"{m}_ci95_high"]
    header += [f"delta_{m}" for m in METRICS]
    header += [f"paired_delta_{m}_vs_{ref}_{k}" for ref in refs for m in PAIRED_METRICS for k in ("mean", "ci95_low", "ci95_high")]
    attacks = sorted({k for r in rows for k in r.get("robustness", {})})
    header += [f"{a}_accuracy_mean" for a in attacks] + [f"{a}_accuracy_std" for a in attacks]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            line = [r["backbone"], r["recipe"], r["experiment"], len(r["seeds"]), " ".join(map(str, r["seeds"])), r["n_real"], r.get("n_real_repeats", 0),
                    r["n_synthetic"], r["pretrained"]]
            for m in METRICS:
                s = r[m]
                line += [_num(s["mean"]), _num(s["std"]), _num(s["ci95_low"]), _num(s["ci95_high"])]
            line += [_num(r["delta"][m]) for m in METRICS]
            for ref in refs:
                p = r.get("paired", {}).get(ref)
                line += [_num(p[m][k]) if p else "" for m in PAIRED_METRICS for k in ("mean", "ci95_low", "ci95_high")]
            rob = r.get("robustness", {})
            line += [_num(rob.get(a, {}).get("mean")) for a in attacks] + [_num(rob.get(a, {}).get("std")) for a in attacks]
            w.writerow(line)


def _pct(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return "–"
    text = f"{100 * s['mean']:.1f}%"
    if s["std"] is not None:
        text += f" ± {100 * s['std']:.1f}"
    return text


def _dec(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return "–"
    text = f"{s['mean']:.3f}"
    if s["std"] is not None:
        text += f" ± {s['std']:.3f}"
    return text


def _ci(s: dict[str, Any], pct: bool = True) -> str:
    if s["ci95_low"] is None:
        return "–"
    if pct:
        return f"{100 * s['ci95_low']:.1f}–{100 * s['ci95_high']:.1f}%"
    return f"{s['ci95_low']:.3f}–{s['ci95_high']:.3f}"


def paired_cell(p: dict[str, Any] | None, metric: str = "accuracy", digits: int = 1, scale: float = 100, bold: bool = False,
                missing: str = "", adjusted: bool = False) -> str:
    """``+1.2 (−0.3, +2.7)``: mean paired difference (times ``scale``: points) and its 95% t-interval (from 2 seeds on);
    ``bold`` marks an interval that excludes 0. ``adjusted``: the Bonferroni interval of its family and the Holm p-value
    instead, ``+1.2 (−0.9, +3.3) p 0.210`` (:func:`synthxray.experiments.stats.adjust`)."""
    if not p or p[metric]["mean"] is None:
        return missing
    s = p[metric]
    low, high = ("ci_adj_low", "ci_adj_high") if adjusted else ("ci95_low", "ci95_high")
    text = f"{scale * s['mean']:+.{digits}f}"
    if s.get(low) is not None:
        text += f" ({scale * s[low]:+.{digits}f}, {scale * s[high]:+.{digits}f})"
        if bold and (s[low] > 0 or s[high] < 0):
            text = f"**{text}**"
        if adjusted:
            text += f" p {s['p_holm']:.3f}"
    elif adjusted:
        return missing
    return text


def counts_markdown(runs: Sequence[dict[str, Any]], recipes: Sequence[str]) -> str:
    """How each recipe's training set was drawn: the rule in words and the images per class (seed 0's, or the first seed's)."""
    lines = ["", "How the counts were drawn (images per class; repeats are real images drawn again):", ""]
    for name in recipes:
        run = min((x for x in runs if x["recipe"] == name), key=lambda x: x["seed"], default=None)
        if run is None:
            continue
        c = run["counts"]
        parts = [f"real {c['real_per_class']}"]
        if c.get("real_repeats"):
            parts.append(f"repeats {c['real_repeats_per_class']}")
        if c.get("synthetic"):
            parts.append(f"synthetic {c['synthetic_per_class']}")
        lines.append(f"- {display_name(name)}: {run.get('recipe_description', name)}; " + ", ".join(parts))
    return "\n".join(lines) + "\n" if len(lines) > 3 else ""


def markdown_table(rows: Sequence[dict[str, Any]], baseline: str | None = None) -> str:
    """Seed 004's table (Experiment, Accuracy, F1, AUC, Δ vs Baseline) plus spread, CI, precision, recall and paired Δs."""
    lines = []
    attacks = sorted({k for r in rows for k in r.get("robustness", {})})
    refs = [ref for ref in dict.fromkeys(ref for r in rows for ref in r.get("paired", {})) if ref != baseline]
    head = ["Backbone", "Experiment", "Real", "Synthetic", "Seeds", "Accuracy (mean ± std)", "95% CI", "F1", "AUC", "Precision", "Recall", f"Δ vs {display_name(baseline) if baseline else 'baseline'}"]
    head += [f"Δ vs {display_name(ref)}" for ref in refs]
    adjusted_refs = [ref for ref in ([baseline] if baseline else []) + refs
                     if any(r.get("paired", {}).get(ref, {}).get("accuracy", {}).get("family", 0) > 1 for r in rows)]
    head += [f"Δ vs {display_name(ref)}, adjusted" for ref in adjusted_refs]
    head += [f"Acc. under {a}" for a in attacks]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * len(head)) + "|")
    random_init = set()
    for r in rows:
        name = r["backbone"] + ("†" if not r["pretrained"] else "")
        if not r["pretrained"]:
            random_init.add(r["backbone"])
        d = r["delta"]["accuracy"]
        delta = "" if r["recipe"] == baseline or d is None else (paired_cell(r.get("paired", {}).get(baseline)) or f"{100 * d:+.1f}")
        real = str(r["n_real"]) + (f" + {r['n_real_repeats']} repeats" if r.get("n_real_repeats") else "")
        cells = [name, r["experiment"], real, str(r["n_synthetic"]), str(len(r["seeds"])), _pct(r["accuracy"]), _ci(r["accuracy"]),
                 _dec(r["f1"]), _dec(r["auc"]), _dec(r["precision"]), _dec(r["recall"]), delta]
        cells += [paired_cell(r.get("paired", {}).get(ref)) for ref in refs]
        cells += [paired_cell(r.get("paired", {}).get(ref), adjusted=True) for ref in adjusted_refs]
        cells += [_pct(r.get("robustness", {}).get(a, {"mean": None, "std": None})) for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "Mean ± sample standard deviation over seeds; 95% CI is the t-interval of the mean (shown from 2 seeds on). "
             "Δ columns: accuracy difference in points, paired by seed (runs with the same seed share the validation split and the initial weights), "
             "with the paired 95% t-interval in brackets. "
             "Adjusted columns: the same differences corrected for the number m of comparisons with that reference "
             "(per backbone): Bonferroni t-intervals at 1 - 0.05/m and Holm-adjusted p-values. "
             "F1, precision and recall are of the positive class for two classes, macro averages otherwise."]
    unshared = sorted({f"{r['backbone']} · {r['experiment']}" for r in rows for p in r.get("paired", {}).values() if p.get("shared_init") is False})
    if unshared:
        notes.append(f"Not paired on initial weights (different init_checksum): {', '.join(unshared)}.")
    if random_init:
        notes.append(f"† {', '.join(sorted(random_init))}: trained from RANDOM initial weights (no pretrained weights were available or requested); "
                     "see weights_note in results.json.")
    if attacks:
        eps = next((r.get("robustness_epsilon") for r in rows if r.get("robustness_epsilon") is not None), None)
        notes.append(f"Robustness: test accuracy under {', '.join(attacks)} at ε = {eps:.4f} ({eps * 255:.0f}/255) in [0, 1] pixel space." if eps else "")
    return "\n".join(lines + notes).rstrip() + "\n"


def write_json(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    data = {**meta, "summary": list(rows), "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


# ---- plots -----------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(rows: Sequence[dict[str, Any]], backbones: Sequence[str], recipes: Sequence[str], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(recipes) * max(1, len(backbones)) ** 0.5 + 2), 4.2))
    width = 0.8 / max(1, len(backbones))
    x = np.arange(len(recipes))
    for i, b in enumerate(backbones):
        means, errs = [], [[], []]
        for r in recipes:
            row = next((o for o in rows if o["backbone"] == b and o["recipe"] == r), None)
            s = row["accuracy"] if row else {"mean": None, "ci95_low": None}
            m = s["mean"] if s["mean"] is not None else np.nan
            means.append(100 * m)
            lo = 100 * (m - s["ci95_low"]) if s.get("ci95_low") is not None else 0
            errs[0].append(lo)
            errs[1].append(lo)
        bars = ax.bar(x + (i - (len(backbones) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=b)
        for rect, m, e in zip(bars, means, errs[1]):
            if not np.isnan(m):
                ax.annotate(f"{m:.1f}", (rect.get_x() + rect.get_width() / 2, rect.get_height() + e), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [display_name(r) for r in recipes], rotation=20)
    ax.set_ylabel("test accuracy (%)")
    finite = [100 * o["accuracy"]["mean"] for o in rows if o["accuracy"]["mean"] is not None]
    if finite:
        ax.set_ylim(max(0, min(finite) - 10), min(100, max(finite) + 5))
    ax.set_title("Accuracy by recipe (error bars: 95% CI over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(runs: Sequence[dict[str, Any]], backbones: Sequence[str], recipes: Sequence[str], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, len(backbones), figsize=(4.5 * len(backbones), 6.5), squeeze=False)
    for j, b in enumerate(backbones):
        for r in recipes:
            hs = [x["history"] for x in runs if x["backbone"] == b and x["recipe"] == r and x.get("history")]
            if not hs:
                continue
            n = min(len(h) for h in hs)
            epochs = np.arange(1, n + 1)
            for i, key in enumerate(("train_loss", "val_accuracy")):
                vals = np.mean([[e[key] for e in h[:n]] for h in hs], axis=0)
                axes[i, j].plot(epochs, vals, marker=".", label=display_name(r))
        axes[0, j].set_title(f"{b}: training loss")
        axes[1, j].set_title(f"{b}: validation accuracy")
        axes[1, j].set_xlabel("epoch")
        from matplotlib.ticker import MaxNLocator

        for ax in axes[:, j]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, j].legend(fontsize=7)
    fig.suptitle("Training curves (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(rows: Sequence[dict[str, Any]], backbones: Sequence[str], recipes: Sequence[str], class_names: Sequence[str], path: Path) -> None:
    plt = _plt()
    k = len(class_names)
    size = 1.0 + 0.45 * k
    fig, axes = plt.subplots(len(backbones), len(recipes), figsize=(max(2.6, size) * len(recipes), max(2.6, size) * len(backbones) + 0.5), squeeze=False)
    for i, b in enumerate(backbones):
        for j, r in enumerate(recipes):
            ax = axes[i, j]
            row = next((o for o in rows if o["backbone"] == b and o["recipe"] == r), None)
            if row is None:
                ax.axis("off")
                continue
            cm = np.asarray(row["confusion_matrix"])
            ax.imshow(cm, cmap="Blues")
            for (a, c), v in np.ndenumerate(cm):
                ax.text(c, a, f"{v:.0f}", ha="center", va="center", fontsize=8, color="white" if v > cm.max() / 2 else "black")
            ax.set_xticks(range(k), [n[:10] for n in class_names], fontsize=7, rotation=30)
            ax.set_yticks(range(k), [n[:10] for n in class_names], fontsize=7)
            ax.set_title(f"{b}\n{display_name(r)}", fontsize=8)
            if j == 0:
                ax.set_ylabel("true")
            if i == len(backbones) - 1:
                ax.set_xlabel("predicted")
    fig.suptitle("Confusion matrices on the test set (mean counts over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmap(rows: Sequence[dict[str, Any]], path: Path) -> None:
    plt = _plt()
    labels = [f"{r['backbone']} · {r['experiment']}" for r in rows]
    data = np.array([[np.nan if r[m]["mean"] is None else r[m]["mean"] for m in METRICS] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 0.42 * len(rows) + 1.5))
    im = ax.imshow(data, cmap="viridis", aspect="auto", vmin=np.nanmin(data) if np.isfinite(data).any() else 0, vmax=1)
    for (a, c), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(c, a, f"{v:.3f}", ha="center", va="center", fontsize=8, color="white" if v < np.nanmean(data) else "black")
    ax.set_xticks(range(len(METRICS)), [m.upper() if m == "auc" else m.capitalize() for m in METRICS])
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title("Test metrics (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_robustness(rows: Sequence[dict[str, Any]], path: Path) -> None:
    plt = _plt()
    attacks = ["clean"] + sorted({k for r in rows for k in r.get("robustness", {})})
    rows = [r for r in rows if r.get("robustness")]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    width = 0.8 / len(attacks)
    x = np.arange(len(rows))
    for i, a in enumerate(attacks):
        vals = [100 * (r["accuracy"]["mean"] if a == "clean" else (r["robustness"][a]["mean"] or 0)) for r in rows]
        ax.bar(x + (i - (len(attacks) - 1) / 2) * width, vals, width, label=a)
    ax.set_xticks(x, [f"{r['backbone']}\n{r['experiment']}" for r in rows], fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy under perturbation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(rows, runs, backbones, recipes, class_names, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "accuracy_comparison.png": lambda p: plot_accuracy(rows, backbones, recipes, p),
        "training_curves.png": lambda p: plot_training_curves(runs, backbones, recipes, p),
        "confusion_matrices.png": lambda p: plot_confusion(rows, backbones, recipes, class_names, p),
        "metrics_heatmap.png": lambda p: plot_heatmap(rows, p),
    }
    if any(r.get("robustness") for r in rows):
        paths["robustness.png"] = lambda p: plot_robustness(rows, p)
    written = []
    for name, fn in paths.items():
        fn(folder / name)
        written.append(folder / name)
    return written
