"""The small-site scenario (issue 22): K non-IID sites cut from one labelled dataset with the federated partitioners,
one experiment spec per small site, and a per-site + mean report of paired differences against each site's controls.

The sites are the ones a federated simulation with the same :class:`~synthxray.federated.config.FederatedConfig`
(``dataset``, ``num_clients``, ``partition``, ``seed`` ...) trains on: both go through
:func:`synthxray.federated.partition.partition_dataset`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..federated.config import FederatedConfig

SITES_FILE = "sites.json"


def site_dir(root: str | os.PathLike, site: int) -> Path:
    """Where site ``site``'s dataset folder (``save_to_disk``) lives under ``root``."""
    return Path(root) / f"site_{site}"


def partition_sites(cfg: "FederatedConfig", root: str | os.PathLike) -> list[dict[str, Any]]:
    """Cut ``cfg.dataset`` into ``cfg.num_clients`` sites with ``cfg``'s partition and save each as a dataset folder
    ``ROOT/site_K``; ``ROOT/sites.json`` lists them (path, size, class counts). Reused when ``sites.json`` exists
    and was written for the same partition (else a ValueError says which field differs)."""
    from ..data import class_names
    from ..federated.partition import class_counts, load_training_set, partition_dataset

    root = Path(root)
    key = {k: getattr(cfg, k) for k in ("dataset", "dataset_split", "num_clients", "partition", "seed", "majority_fraction",
                                        "large_site_fraction", "dirichlet_alpha", "max_train_images")}
    key["dataset"] = str(key["dataset"])
    index = root / SITES_FILE
    if index.is_file():
        saved = json.loads(index.read_text())
        bad = [k for k in key if saved["partition"].get(k) != key[k]]
        if bad:
            was = ", ".join(f"{k}={saved['partition'].get(k)!r}" for k in bad)
            raise ValueError(f"{index} was written for another partition ({was}); "
                             f"use another folder or delete it")
        return saved["sites"]
    ds = load_training_set(cfg)
    names = class_names(ds)
    parts = partition_dataset(cfg, ds)
    counts = class_counts(parts, names)
    if any(sum(c.values()) == 0 for c in counts):
        raise ValueError(f"a site got no images under the {cfg.partition} partition of {cfg.dataset}; use fewer num_clients")
    root.mkdir(parents=True, exist_ok=True)
    sites = []
    for i, (part, row) in enumerate(zip(parts, counts)):
        target = site_dir(root, i)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        part.flatten_indices().save_to_disk(str(tmp))
        os.replace(tmp, target)
        sites.append({"site": i, "path": str(target), "num_images": len(part), "class_counts": row})
    data = {"partition": key, "class_names": names, "unused_images": len(ds) - sum(len(p) for p in parts), "sites": sites}
    tmp = index.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, index)
    return sites


def site_spec(site_path: str | os.PathLike, synthetic: Any, recipes: Sequence[Any], output_dir: str | os.PathLike,
              **settings: Any) -> dict[str, Any]:
    """The experiment spec of one site: its own images as ``real_train``, ``synthetic`` (a pool folder or generator),
    and the shared test/val/classifier ``settings`` (any :class:`~synthxray.experiments.spec.ExperimentSpec` key)."""
    return {**settings, "real_train": str(site_path), "real_train_split": "train", "synthetic": synthetic,
            "recipes": list(recipes), "output_dir": str(output_dir)}


def relabel(runs: Sequence[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """The runs of the recipes in ``names`` with ``recipe`` renamed (``synth-100`` -> ``own + pool(b)``), so that runs
    of several experiments (one per synthetic pool) sit in one list; the others are dropped."""
    return [{**r, "recipe": names[r["recipe"]]} for r in runs if r["recipe"] in names]


def mean_over_sites(runs_by_site: dict[str, Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Pseudo-runs whose metrics are the mean over sites, one per (backbone, recipe, seed) that every site has; paired
    differences of these are the per-seed mean of the sites' paired differences."""
    from .report import METRICS

    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for runs in runs_by_site.values():
        for r in runs:
            keyed.setdefault((r["backbone"], r["recipe"], r["seed"]), []).append(r)
    out = []
    for (backbone, recipe, seed), group in sorted(keyed.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if len(group) != len(runs_by_site):
            continue
        metrics = {m: None if any(g["metrics"].get(m) is None for g in group) else
                   sum(g["metrics"][m] for g in group) / len(group) for m in METRICS}
        checks = [g.get("init_checksum") for g in group]
        out.append({"backbone": backbone, "recipe": recipe, "seed": seed, "metrics": metrics,
                    "init_checksum": None if None in checks else "|".join(checks)})
    return out


def site_table(runs_by_site: dict[str, Sequence[dict[str, Any]]], backbone: str, recipes: Sequence[str],
               references: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (site, recipe), then the mean over sites: each metric's mean/std/95% CI over seeds and the paired
    differences (95% t-interval over seeds, :func:`~synthxray.experiments.report.paired_deltas`) vs each reference."""
    from .report import METRICS, paired_deltas, summarize

    groups = dict(runs_by_site)
    if len(groups) > 1:
        groups["mean"] = mean_over_sites(runs_by_site)
    rows = []
    for site, runs in groups.items():
        for recipe in recipes:
            mine = [r for r in runs if r["backbone"] == backbone and r["recipe"] == recipe]
            if not mine:
                continue
            row: dict[str, Any] = {"site": site, "recipe": recipe, "seeds": sorted(r["seed"] for r in mine)}
            row.update({m: summarize(r["metrics"].get(m) for r in mine) for m in METRICS})
            row["paired"] = {ref: paired_deltas(runs, backbone, recipe, ref) for ref in references if ref != recipe}
            rows.append(row)
    return rows


def site_markdown(rows: Sequence[dict[str, Any]], references: Sequence[str]) -> str:
    """The per-site + mean table: accuracy and AUC (mean ± std over seeds) and paired Δ accuracy vs each reference."""
    from .report import _dec, _pct, paired_cell

    head = ["Site", "Training data", "Seeds", "Accuracy", "AUC"] + [f"Δ acc. vs {ref}" for ref in references] \
        + [f"Δ AUC vs {ref}" for ref in references]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        cells = [str(r["site"]), r["recipe"], str(len(r["seeds"])), _pct(r["accuracy"]), _dec(r["auc"])]
        cells += [paired_cell(r["paired"].get(ref)) for ref in references]
        cells += [paired_cell(r["paired"].get(ref), "auc") for ref in references]
        lines.append("| " + " | ".join(cells) + " |")
    unshared = sorted({f"{r['site']} · {r['recipe']} vs {ref}" for r in rows for ref, p in r["paired"].items()
                       if p and p.get("shared_init") is False})
    lines += ["", "Accuracy: mean ± sample std over seeds. Δ: difference in points (AUC: in 0.01) paired by seed, with the "
              "95% t-interval over seeds in brackets; 'mean' averages the sites' metrics per seed first."]
    if unshared:
        lines.append(f"Not paired on initial weights (different init_checksum): {', '.join(unshared)}.")
    return "\n".join(lines) + "\n"
