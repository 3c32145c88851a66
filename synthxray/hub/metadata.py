"""Reading a folder's metadata for its card: tolerant (missing or malformed files give empty values).

Generator folders (``synthxray.json``, training config and summary, evaluation files), dataset
manifests and classifier folders (whatever JSON / CSV / markdown results they hold).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..manifest import DATASET_MANIFEST, GENERATOR_CONFIG, PROVENANCE_COLUMNS, SEED_STRIDE


# never pushed: training state, logs and staging folders (the card names the sample grid it shows)
DEFAULT_IGNORE = [
    "checkpoints/*", "checkpoints/**", "checkpoint_*/**", "checkpoint-*/**", "logs/**", "runs/**",
    "*.partial/**", "**/__pycache__/**", "**/.ipynb_checkpoints/**", ".*", "**/.*",
]
# keyword -> (modality, anatomy), matched against dataset names and paths when the metadata names neither
_MODALITY_HINTS = (
    (("chestmnist", "pneumoniamnist", "chest_xray", "chest-xray", "chestxray", "cxr", "pneumonia", "chest"), ("x-ray", "chest")),
    (("dermamnist", "derma", "skin", "isic"), ("dermatoscopy", "skin")),
    (("breastmnist", "breast"), ("ultrasound", "breast")),
    (("retinamnist", "retina", "fundus"), ("fundus-photography", "retina")),
    (("octmnist", "oct"), ("oct", "retina")),
    (("bloodmnist", "blood"), ("microscopy", "blood")),
    (("pathmnist", "patho", "histo"), ("histopathology", "colon")),
    (("tissuemnist", "tissue"), ("microscopy", "kidney")),
    (("organamnist", "organcmnist", "organsmnist", "organ"), ("ct", "abdomen")),
    (("xray", "x-ray", "radiograph"), ("x-ray", None)),
)



def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _dict(value: Any) -> dict:
    return dict(value) if isinstance(value, Mapping) else {}


def _s(value: Any) -> str | None:
    """A scalar as text; anything else (lists, dicts, None, booleans) as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value) if str(value).strip() else None
    return None


def _i(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _strs(value: Any) -> list[str]:
    """A list of scalars as a list of text (a single string is not split into characters)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if _s(v) is not None]
    return []


def _counts(value: Any) -> dict[str, int]:
    return {str(k): n for k, v in _dict(value).items() if (n := _i(v)) is not None}


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


def _tags(*values: Any) -> list[str]:
    out: list[str] = []
    for v in values:
        if v in (None, "", False):
            continue
        t = str(v).strip()
        if t and t not in out:
            out.append(t)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", str(text).lower()).strip("-") or "unnamed"


def _is_hub_id(value: Any) -> bool:
    """``user/name`` (or a bare name) that is not an existing local path."""
    if not isinstance(value, str) or not value or value.startswith((".", "/", "~")) or value.count("/") > 1:
        return False
    if os.path.exists(value) or "\\" in value or value.endswith((".npz", ".npy", ".zip")):
        return False
    return "/" in value and bool(re.fullmatch(r"[\w.-]+/[\w.-]+", value))


def _modality(info: Mapping, data: Mapping, extra: Mapping, train_config: Mapping) -> tuple[str | None, str | None]:
    modality = extra.get("modality") or data.get("modality") or info.get("modality")
    anatomy = extra.get("anatomy") or data.get("anatomy") or info.get("anatomy")
    if modality and anatomy:
        return str(modality), str(anatomy)
    text = " ".join(str(x) for x in (data.get("source"), train_config.get("dataset"), info.get("dataset"),
                                      " ".join(map(str, _dict(info.get("prompts")).values()))) if x).lower()
    for keys, (m, a) in _MODALITY_HINTS:
        if any(k in text for k in keys):
            return str(modality or m), (str(anatomy) if anatomy else a)
    return (str(modality) if modality else None), (str(anatomy) if anatomy else None)


def _hyperparameters(cfg: Mapping) -> dict[str, Any]:
    skip = {"output_dir", "hub_token", "hub_model_id", "push_to_hub", "overwrite_output_dir", "resume_from_checkpoint",
            "logger", "report_to", "dataloader_num_workers"}
    return {k: v for k, v in cfg.items() if k not in skip and v is not None}


def _federation(value: Any) -> dict[str, Any] | None:
    """The ``federation`` record a federated run writes into ``synthxray.json``, checked field by field for the card
    (None when the model was not trained federated)."""
    fed = _dict(value)
    sites = _i(fed.get("sites"))
    if not sites:
        return None
    strategy = _dict(fed.get("strategy"))
    dp = _dict(strategy.get("differential_privacy"))
    counts = [_counts(c) for c in fed.get("site_class_counts") or [] if isinstance(c, Mapping)] if isinstance(
        fed.get("site_class_counts"), list) else []
    partition = _s(fed.get("partition"))
    detail = None
    if partition == "majority" and _number(fed.get("majority_fraction")) is not None:
        detail = f"each site holds {_number(fed.get('majority_fraction')):.0%} of its images from one class"
    elif partition == "large-site" and _number(fed.get("large_site_fraction")) is not None:
        detail = (f"one large site with {_number(fed.get('large_site_fraction')):.0%} of the images (a random draw), the "
                  f"others each {_number(fed.get('majority_fraction')) or 0:.0%} from one class")
    elif partition == "dirichlet" and _number(fed.get("dirichlet_alpha")) is not None:
        detail = f"per-class Dirichlet shares, alpha {_number(fed.get('dirichlet_alpha')):g}"
    elif partition == "supernode":
        detail = "each site trained on its own local data"
    elif partition == "iid":
        detail = "images shared out at random"
    nbytes = _number(fed.get("bytes_per_round"))
    fraction = _number(strategy.get("fraction_train"))
    return {
        "framework": _s(fed.get("framework")) or "Flower", "engine": _s(fed.get("engine")), "sites": sites, "partition": partition, "partition_detail": detail,
        "rounds": _i(fed.get("rounds")), "num_rounds": _i(fed.get("num_rounds")), "local_steps": _i(fed.get("local_steps")),
        "strategy": _s(strategy.get("name")), "weighted_by": _s(strategy.get("weighted_by")),
        "fraction_train": fraction if fraction is not None and fraction < 1 else None,
        "proximal_mu": _number(strategy.get("proximal_mu")),
        "dp": {"kind": _s(dp.get("kind")), "noise_multiplier": _number(dp.get("noise_multiplier")),
               "clipping_norm": _number(dp.get("clipping_norm"))} if dp else None,
        "secure_aggregation": _s(fed.get("secure_aggregation")),
        "failed_site_rounds": _i(fed.get("failed_site_rounds")) or 0,
        "mb_per_round": round(nbytes / 1e6, 1) if nbytes else None,
        "site_class_counts": counts, "count_classes": list(counts[0]) if counts else [],
    }


def _duration(seconds: Any) -> str | None:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return None
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _latest_sample_grid(folder: Path) -> str | None:
    grids = sorted((folder / "samples").glob("*.png")) if (folder / "samples").is_dir() else []
    if grids:
        return grids[-1].relative_to(folder).as_posix()
    for name in ("samples.png", "sample_grid.png", "grid.png"):
        if (folder / name).is_file():
            return name
    return None


def _old_sample_grids(folder: Path) -> list[str]:
    """Sample grids other than the latest one: not pushed (the card shows the latest)."""
    grids = sorted((folder / "samples").glob("*.png")) if (folder / "samples").is_dir() else []
    return [g.relative_to(folder).as_posix() for g in grids[:-1]]


def _ignored(path: Path, folder: Path) -> bool:
    import fnmatch

    rel = path.relative_to(folder).as_posix()
    return any(fnmatch.fnmatch(rel, pat) for pat in DEFAULT_IGNORE)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    return None


def _evaluation(folder: Path, extra: Mapping) -> dict[str, Any]:
    """Evaluation numbers from ``evaluation*.json`` / ``eval_results.json`` / ``extra["evaluation"]``.

    Accepted shapes: what ``synthxray evaluate`` writes (``EvaluationResult.to_dict()``: ``"rows"`` of
    ``{"class", "n_real", "n_synthetic", m: {"mean", "std", "values"}}`` with ``"extractor"``, ``"protocol"``
    and ``"settings"``), ``{"extractor": E, "metrics": {m: v | {"mean", "std"}}, "per_class": {c: {m: v}}}``,
    a flat ``{m: v, "extractor": E}``, or a list of rows ``{"class"/"scope", "metric", "value", "std", "extractor"}``
    or ``{"class": c, m: v, ...}``. Each row keeps the extractor, protocol and n its number depends on.
    """
    sources: list[Any] = []
    if extra.get("evaluation"):
        sources.append(extra["evaluation"])
    for pattern in ("evaluation*.json", "eval_results*.json", "evaluation/*.json", "eval/*.json"):
        for p in sorted(folder.glob(pattern)):
            sources.append(_read_json(p))
    rows: list[dict[str, Any]] = []
    markdown = None
    for pattern in ("evaluation*.md", "evaluation/*.md", "eval/*.md"):
        for p in sorted(folder.glob(pattern)):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                markdown = p.read_text(encoding="utf-8").strip()
    for src in sources:
        rows.extend(_eval_rows(src, None))
    rows = [r for r in rows if r["value"] is not None]
    extractors = sorted({r["extractor"] for r in rows if r["extractor"]})
    metric_names = sorted({r["metric"] for r in rows})
    protocols = sorted({r["protocol"] for r in rows if r["protocol"]})
    overall = {r["metric"]: r["value"] for r in rows if r["scope"] == "overall"}
    return {"rows": rows, "extractors": extractors, "protocols": protocols, "metric_names": metric_names,
            "overall": overall, "markdown": markdown, "has_std": any(r["std"] is not None for r in rows),
            "has_samples": any(r["n"] for r in rows)}


_EVAL_META = {"extractor", "feature_extractor", "num_samples", "seeds", "num_seeds", "real", "synthetic", "class",
              "scope", "metric", "value", "std", "mean", "per_class", "metrics", "classes", "date", "dataset",
              "rows", "protocol", "settings", "timings", "memorization", "label_fidelity", "tsne", "n_real", "n_synthetic"}


def _result_rows(src: Mapping) -> list[dict[str, Any]]:
    """The rows of a ``synthxray evaluate`` result: one per class and metric, the mean and std over seeds."""
    settings = _dict(src.get("settings"))
    extractor = src.get("extractor") or settings.get("extractor_identity")
    protocol = src.get("protocol") or settings.get("protocol")
    rows: list[dict[str, Any]] = []
    for item in src["rows"]:
        if not isinstance(item, Mapping):
            continue
        n = _sample_counts(item.get("n_real"), item.get("n_synthetic"))
        for name, value in item.items():
            if isinstance(value, Mapping) and "mean" in value:
                rows.append(_eval_row(str(item.get("class", "overall")), name, value["mean"], value.get("std"),
                                      extractor, n, protocol))
    return rows


def _sample_counts(n_real: Any, n_synthetic: Any) -> str | None:
    """``"24 real / 24 synthetic"`` (per-seed synthetic counts that differ as their range)."""
    if isinstance(n_synthetic, list) and n_synthetic:
        n_synthetic = f"{min(n_synthetic)}-{max(n_synthetic)}" if len(set(n_synthetic)) > 1 else n_synthetic[0]
    if n_real is None and n_synthetic is None:
        return None
    return f"{'?' if n_real is None else n_real} real / {'?' if n_synthetic is None else n_synthetic} synthetic"


def _eval_rows(src: Any, extractor: str | None, scope: str = "overall") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if isinstance(src, Mapping) and isinstance(src.get("rows"), list):
        return _result_rows(src)
    if isinstance(src, list):
        for item in src:
            if not isinstance(item, Mapping):
                continue
            ex = item.get("extractor") or item.get("feature_extractor") or extractor
            sc = str(item.get("class") or item.get("scope") or scope)
            if "metric" in item:
                rows.append(_eval_row(sc, item["metric"], item.get("value", item.get("mean")), item.get("std"), ex,
                                      item.get("num_samples")))
            else:
                rows.extend(_eval_rows({k: v for k, v in item.items() if k not in ("class", "scope")}, ex, sc))
        return rows
    if not isinstance(src, Mapping):
        return rows
    ex = src.get("extractor") or src.get("feature_extractor") or extractor
    n = src.get("num_samples")
    metrics = src.get("metrics") if isinstance(src.get("metrics"), Mapping) else {k: v for k, v in src.items() if k not in _EVAL_META}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            if "mean" in value or "value" in value:
                rows.append(_eval_row(scope, name, value.get("mean", value.get("value")), value.get("std"),
                                      value.get("extractor") or ex, value.get("num_samples") or n))
            elif scope == "overall" and name not in _EVAL_META:  # {class: {metric: v}}
                rows.extend(_eval_rows(value, ex, str(name)))
        else:
            rows.append(_eval_row(scope, name, value, None, ex, n))
    per_class = src.get("per_class")
    if isinstance(per_class, Mapping):
        for cls, values in per_class.items():
            rows.extend(_eval_rows(values, ex, str(cls)))
    elif isinstance(per_class, list):
        rows.extend(_eval_rows(per_class, ex))
    return rows


def _eval_row(scope: str, metric: Any, value: Any, std: Any, extractor: Any, n: Any, protocol: Any = None) -> dict[str, Any]:
    return {"scope": scope, "metric": str(metric).lower(), "value": _number(value), "std": _number(std),
            "extractor": str(extractor) if extractor else None, "protocol": _s(protocol),
            "n": None if n is None or isinstance(n, (Mapping, list)) else str(n)}


def _first_image_size(folder: Path) -> int | None:
    try:
        import datasets

        ds = datasets.load_from_disk(str(folder))
        if isinstance(ds, datasets.DatasetDict):
            ds = next(iter(ds.values()))
        if len(ds) == 0 or "image" not in ds.features:
            return None
        w, h = ds[0]["image"].size
        return int(w) if w == h else None
    except Exception:
        return None


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _dataset_recipe(manifest: Mapping) -> str | None:
    """The ``synthxray generate`` command that remakes this dataset, from the manifest."""
    model = _s(manifest.get("generator_path"))
    if not model:
        return None
    parts = ["synthxray generate", f"--model {_shell(model)}"]
    if _s(manifest.get("generator_revision")):
        parts.append(f"--revision {_shell(manifest['generator_revision'])}")
    counts = _counts(manifest.get("counts"))
    if counts and len(set(counts.values())) == 1:
        parts.append(f"--per_class {next(iter(counts.values()))}")
    elif counts:
        parts.append(f"--images_per_class {_shell(','.join(f'{k}={v}' for k, v in counts.items()))}")
    for flag, key in (("--seed", "seed"), ("--scheduler", "scheduler"), ("--num_inference_steps", "num_inference_steps"),
                      ("--guidance_scale", "guidance_scale")):
        if _s(manifest.get(key)) is not None:
            parts.append(f"{flag} {_shell(_s(manifest[key]))}")
    negative = _s(_dict(manifest.get("generate_kwargs")).get("negative_prompt"))
    if negative:
        parts.append(f"--negative_prompt {_shell(negative)}")
    parts.append("--output_dir OUT")
    return " \\\n  ".join(parts)


def _shell(text: Any) -> str:
    import shlex

    return shlex.quote(str(text))


_CLASSIFIER_KEYS = {
    "backbone": ("backbone", "model", "architecture", "arch"),
    "class_names": ("class_names", "classes", "labels", "label_names"),
    "image_size": ("image_size", "resolution", "img_size", "input_size"),
    "recipe": ("recipe", "data_recipe"),
    "seed": ("seed",),
    "dataset": ("dataset", "real_train", "real", "train_dataset"),
    "synthetic": ("synthetic", "synthetic_dataset", "generator"),
    "metrics": ("metrics", "test_metrics", "results", "test"),
    "license": ("license",),
    "base_model": ("base_model", "pretrained_model", "weights"),
    "pretrained": ("pretrained",),
    "weights_note": ("weights_note",),
    "modality": ("modality",),
    "anatomy": ("anatomy",),
}


def _classifier_metadata(folder: Path) -> dict[str, Any]:
    """Merge the known keys found in the folder's JSON files (top level first, then nested one level)."""
    meta: dict[str, Any] = {}
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    preferred = ("classifier.json", "config.json", "synthxray_classifier.json", "metadata.json", "results.json", "metrics.json")
    files.sort(key=lambda p: (preferred.index(p.name) if p.name in preferred else len(preferred), p.name))
    if folder.name == "classifier" and (folder.parent / "result.json").is_file():
        files.append(folder.parent / "result.json")  # an experiment run: recipe, seed and test metrics live one level up
    for p in files:
        raw = _read_json(p)
        for src in (raw, *[v for v in _dict(raw).values() if isinstance(v, Mapping)]):
            src = _dict(src)
            for key, aliases in _CLASSIFIER_KEYS.items():
                if key in meta:
                    continue
                for alias in aliases:
                    value = src.get(alias)
                    if value in (None, "", [], {}):
                        continue
                    if key == "metrics":
                        value = {k: v for k, v in _dict(value).items() if _number(v) is not None}
                        if not value:
                            continue
                    if key == "class_names":
                        if isinstance(value, Mapping):
                            order = sorted(value, key=lambda x: (0, int(x), "") if str(x).isdigit() else (1, 0, str(x)))
                            value = [value[k] for k in order]
                        if not isinstance(value, list):
                            continue
                        value = [str(v) for v in value]
                    if key in ("backbone", "recipe", "dataset", "synthetic", "base_model", "license", "modality", "anatomy", "seed",
                               "weights_note"):
                        if isinstance(value, Mapping):
                            value = value.get("name")
                        value = _s(value)
                        if value is None:
                            continue
                    if key == "image_size" and _s(value) is None and not (isinstance(value, list) and _strs(value)):
                        continue
                    meta[key] = value
                    break
    if "metrics" not in meta:
        flat = {k: v for k, v in _dict(_read_json(folder / "metrics.json")).items() if _number(v) is not None}
        if flat:
            meta["metrics"] = flat
    return meta


def _results_table(folder: Path, meta: Mapping) -> dict[str, Any]:
    """An experiment results table: a markdown file as is, else a CSV rendered as markdown, else the metrics."""
    for pattern in ("results*.md", "report*.md", "results/*.md"):
        for p in sorted(folder.glob(pattern)):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = p.read_text(encoding="utf-8").strip()
                if "|" in text:
                    header = next((line for line in text.splitlines() if line.strip().startswith("|")), "")
                    names = [c.strip().lower() for c in header.strip("|").split("|")]
                    return {"markdown": text, "source": p.relative_to(folder).as_posix(),
                            "metric_names": [n for n in names if n in _KNOWN_METRICS]}
    for pattern in ("results*.csv", "results/*.csv", "*.csv"):
        for p in sorted(folder.glob(pattern)):
            with contextlib.suppress(OSError, UnicodeDecodeError, csv.Error):
                rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
                if len(rows) >= 2:
                    head, body = rows[0], rows[1:51]
                    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                    lines += ["| " + " | ".join(_fmt_cell(c) for c in r) + " |" for r in body]
                    if len(rows) > 51:
                        lines.append(f"\n({len(rows) - 51} more rows in `{p.name}`)")
                    names = [c.strip().lower() for c in head]
                    return {"markdown": "\n".join(lines), "source": p.relative_to(folder).as_posix(),
                            "metric_names": [n for n in names if n in _KNOWN_METRICS]}
    metrics = _dict(meta.get("metrics"))
    if metrics:
        lines = ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt_cell(v)} |" for k, v in metrics.items()]
        return {"markdown": "\n".join(lines), "source": None, "metric_names": [k.lower() for k in metrics]}
    return {"markdown": None, "source": None, "metric_names": []}


_KNOWN_METRICS = {"accuracy", "acc", "f1", "auc", "roc_auc", "precision", "recall", "balanced_accuracy", "loss"}


def _fmt_cell(value: Any) -> str:
    number = _number(value)
    if number is None or isinstance(value, str) and not re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", value.strip()):
        return str(value)
    return f"{number:.4g}"


def _plots(folder: Path) -> list[str]:
    found = []
    for p in sorted(folder.glob("*.png")) + sorted(folder.glob("plots/*.png")):
        found.append(p.relative_to(folder).as_posix())
    return found[:8]


def _existing_folder(folder: str | os.PathLike, kind: str) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{kind} folder {path} does not exist")
    if not any(path.iterdir()):
        raise FileNotFoundError(f"{kind} folder {path} is empty")
    return path




def _dataset_provenance(manifest: Mapping, columns: list[str]) -> tuple[list[str], int]:
    """(provenance columns, seed stride) as the manifest records them; manifests written before they were
    recorded (synthxray 0.1.0) were made with the values in ``synthxray.manifest``."""
    recorded = _strs(manifest.get("provenance_columns"))
    provenance = recorded or [c for c in columns if c in PROVENANCE_COLUMNS]
    return provenance, _i(manifest.get("seed_stride")) or SEED_STRIDE
