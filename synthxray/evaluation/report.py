"""Markdown for evaluation results: the metric table, memorization and label-fidelity summaries.

A leaf of the evaluation package: it reads plain dicts / the result's attributes and imports
nothing from the modules that compute them.
"""

from __future__ import annotations

from typing import Any

HEADS = {"fid": "FID", "kid": "KID ×10³", "precision": "precision", "recall": "recall"}
SCALE = {"kid": 1000.0}
TABLE_METRICS = ("fid", "kid", "precision", "recall")


def conditions_line(settings: dict[str, Any], extractor: str, n_real: Any, n_synthetic: Any) -> str:
    """One line naming what every number depends on: protocol, extractor, compared size and n."""
    return (f"FID protocol **{settings.get('protocol', '?')}**; features **{extractor}**; compared at "
            f"**{_px(settings.get('compared_size', '?'))}**; n = {n_real} real / {n_synthetic} synthetic.")


def _px(size: Any) -> str:
    return f"{size} px" if isinstance(size, int) else str(size)


def _fmt(metric: str, value: float) -> str:
    if metric == "fid":
        return ("{:.1f}" if abs(value) >= 10 else "{:.2f}" if abs(value) >= 1 else "{:.3f}").format(value)
    return ("{:.2f}" if metric == "kid" else "{:.3f}").format(value)


def evaluation_markdown(result: Any) -> str:
    """The report of an ``EvaluationResult``: conditions, notes, one row per class, then the extras."""
    shown = [m for m in result.metrics if m in TABLE_METRICS]
    k = len(result.seeds)
    st = result.settings
    overall = result.rows[0] if result.rows else {}
    lines = [
        conditions_line(st, result.extractor, overall.get("n_real", "?"), overall.get("n_synthetic", "?")),
        "Numbers from another protocol, extractor, size or n are not comparable with these.",
        f"Real: {result.real.get('source', '')} (split {result.real.get('split', '?')}, "
        f"{result.real.get('num_images', '?')} images, native {_px(st.get('real_native_size', '?'))}); "
        f"synthetic: {result.synthetic.get('source', '')} (native {_px(st.get('synthetic_native_size', '?'))}); "
        + (f"mean ± std over {k} seeds {result.seeds}." if k > 1 else f"seed {result.seeds[0]}."),
    ]
    if st.get("resolution_note"):
        lines.append(f"Resolution: {st['resolution_note']}.")
    if st.get("class_mix_note"):
        lines.append(f"Class mix: {st['class_mix_note']}.")
    note = result.real.get("split_note", "")
    if note and ("TRAINING" in note or "optimistic" in note):
        lines.append(f"**Warning — {note}.**")
    lines.append("")
    if shown:
        lines.append("| class | n real | n synthetic | " + " | ".join(HEADS[m] for m in shown) + " |")
        lines.append("|---|---:|---:|" + "---:|" * len(shown))
        for row in result.rows:
            cells = []
            for m in shown:
                s = SCALE.get(m, 1.0)
                mean, std = row[m]["mean"] * s, row[m]["std"] * s
                cell = _fmt(m, mean) if mean == mean else "n/a"
                if k > 1 and mean == mean:
                    cell += " ± " + _fmt(m, std)
                cells.append(cell)
            lines.append(f"| {row['class']} | {row['n_real']} | {row['n_synthetic']} | " + " | ".join(cells) + " |")
        dim = st.get("feature_dim", 0)
        small = [r["class"] for r in result.rows if min(r["n_real"], _min(r["n_synthetic"])) < 2 * dim]
        if small:
            lines += ["", f"Rows with fewer images than twice the feature dimension ({dim}) "
                      f"have biased, seed-sensitive FID ({', '.join(small)}): compare them only at equal n."]
    if result.memorization:
        lines += ["", memorization_markdown(result.memorization)]
    if result.label_fidelity:
        lines += ["", fidelity_markdown(result.label_fidelity)]
    if result.tsne:
        lines += ["", f"Embedding plot ({result.tsne.get('method')}): {result.tsne.get('path') or '(not saved)'}"]
    return "\n".join(lines) + "\n"


def _min(n: Any) -> int:
    return min(n) if isinstance(n, list) else int(n)


def memorization_markdown(report: dict[str, Any]) -> str:
    lines = ["Memorization (nearest training image of each synthetic image):", "",
             "| space | median distance | reference median | threshold | synthetic under threshold | reference under threshold |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in report["spaces"].items():
        lines.append(f"| {name} | {s['synthetic_to_train']['median']:.4f} | {s['reference']['median']:.4f} | "
                     f"{s['threshold']:.4f} | {s['fraction_below']:.1%} | {s['reference_fraction_below']:.1%} |")
    return "\n".join(lines)


def fidelity_markdown(report: dict[str, Any]) -> str:
    names = report["class_names"]
    lines = [f"Label fidelity ({report.get('classifier', '')}):", "",
             "| set | accuracy | macro F1 | " + " | ".join(f"F1 {n}" for n in names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    for key, title in (("real_validation", "real (held out)"), ("real_test", "real test"), ("synthetic", "synthetic")):
        if key in report:
            s = report[key]
            lines.append(f"| {title} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | "
                         + " | ".join(f"{s['per_class'][n]['f1']:.3f}" for n in names) + " |")
    return "\n".join(lines)
