"""Card rendering: ``templates/{generator,dataset,classifier}.md`` (Jinja) through huggingface_hub's
``ModelCard`` / ``DatasetCard``, from the folder's own metadata only (no network).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .metadata import (
    DATASET_MANIFEST, GENERATOR_CONFIG, _clean, _dataset_provenance, _counts, _dataset_recipe, _dict, _duration,
    _evaluation, _federation, _first_image_size, _hyperparameters, _i, _ignored, _is_hub_id, _latest_sample_grid, _modality,
    _number, _plots, _read_json, _results_table, _s, _size_category, _slug, _strs, _tags, _classifier_metadata,
)

logger = logging.getLogger("synthxray.hub")

CARD_FILE = "README.md"
CARD_MARKER = "<!-- synthxray:card"  # generated cards carry this; hand-written READMEs are never overwritten
KINDS = ("generator", "dataset", "classifier")
INTENDED_USE = (
    "Research on data augmentation and synthetic data for medical image classification. "
    "Not for clinical use: not for diagnosis, triage, treatment decisions or any other care of patients."
)


TEMPLATES_ENV = "SYNTHXRAY_MODEL_CARDS"  # a folder with generator.md, dataset.md and classifier.md of your own


def template_dir() -> Path:
    """Folder holding the card templates: ``$SYNTHXRAY_MODEL_CARDS`` when set, else the packaged ``templates/``."""
    env = os.environ.get(TEMPLATES_ENV)
    if env:
        folder = Path(env).expanduser()
        missing = [n for n in ("generator.md", "dataset.md", "classifier.md") if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{TEMPLATES_ENV}={env} lacks {', '.join(missing)}; point it at a folder with generator.md, dataset.md "
                f"and classifier.md (copy them from {_packaged()}) or unset it to use the packaged templates"
            )
        return folder
    return _packaged()


def _packaged() -> Path:
    folder = Path(str(resources.files("synthxray.hub") / "templates"))
    if not (folder / "generator.md").is_file():  # a broken install: the wheel lost its package data
        raise FileNotFoundError(f"card templates missing from {folder}; reinstall synthxray or set {TEMPLATES_ENV}")
    return folder


RENDERERS: dict[str, Callable[..., str]] = {}  # kind -> render_<kind>_card (filled below)


def card_text(kind: str, folder: str | os.PathLike, repo_id: str | None = None, overwrite: bool = False) -> str | None:
    """The card ``write_<kind>_card`` would write, as text, without touching the folder.

    ``None`` when the folder holds a hand-written README that is kept (``overwrite=True`` replaces it).
    """
    folder = Path(folder)
    if not overwrite and _hand_written(folder / CARD_FILE):
        return None
    return _safe_render(RENDERERS[kind], folder, repo_id)


def save_card(folder: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as the folder's ``README.md`` atomically (a temp file renamed over it)."""
    path = Path(folder) / CARD_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_generator_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a generator folder from its own metadata (no network).

    Returns the card's path, or ``None`` when the folder holds a hand-written README that is kept
    (pass ``overwrite=True`` to replace it).
    """
    return _write(folder, "generator", overwrite, repo_id)


def write_dataset_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a synthetic dataset folder from its manifest (no network)."""
    return _write(folder, "dataset", overwrite, repo_id)


def write_classifier_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a classifier folder from whatever JSON/CSV/markdown results it holds (no network)."""
    return _write(folder, "classifier", overwrite, repo_id)


def _write(folder: str | os.PathLike, kind: str, overwrite: bool, repo_id: str | None) -> Path | None:
    text = card_text(kind, folder, repo_id, overwrite)
    if text is None:
        logger.info("keeping the hand-written %s (overwrite=True replaces it)", Path(folder) / CARD_FILE)
        return None
    return save_card(folder, text)


def _hand_written(path: Path) -> bool:
    """A README.md that synthxray did not generate (no card marker): never overwritten unasked."""
    if not path.is_file():
        return False
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return CARD_MARKER not in path.read_text(encoding="utf-8")
    return True


def _safe_render(render: Callable[..., str], folder: Path, repo_id: str | None) -> str:
    """Render; metadata that breaks rendering is logged and left out rather than raised (templates missing still raise)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    try:
        return render(folder, repo_id)
    except FileNotFoundError:
        raise
    except Exception as exc:  # an unforeseen shape of metadata: still write a valid card
        logger.warning("the card for %s was written without its metadata (%s: %s)", folder, type(exc).__name__, exc)
        with tempfile.TemporaryDirectory() as empty:
            return render(Path(empty), repo_id or folder.resolve().name)


def render_generator_card(folder: str | os.PathLike, repo_id: str | None = None) -> str:
    """The generator card text for ``folder``."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = Path(folder)
    info = _read_json(folder / GENERATOR_CONFIG)
    extra = _dict(info.get("extra"))
    data = _dict(info.get("data"))
    defaults = _dict(info.get("defaults"))
    train_config = _dict(_read_json(folder / "training_config.json")) or _dict(extra.get("train_config"))
    summary = _dict(_read_json(folder / "train_summary.json"))
    backend = _s(info.get("backend")) or "unknown"
    classes = _strs(info.get("class_names"))
    resolution = _i(info.get("resolution")) or _i(train_config.get("resolution"))
    channels = _i(info.get("channels"))
    base_model, base_revision = _s(info.get("base_model")), _s(info.get("base_model_revision"))
    modality, anatomy = _modality(info, data, extra, train_config)
    data_source = _s(data.get("source")) or _s(train_config.get("dataset")) or _s(train_config.get("instance_data_dir"))
    data_license = _s(data.get("license")) or _s(extra.get("data_license"))
    license_ = _s(extra.get("license")) or _s(info.get("license"))
    steps = _i(extra.get("train_steps")) or _i(summary.get("steps"))
    seconds = extra.get("train_seconds") or extra.get("train_seconds_this_run")
    hardware = _s(extra.get("hardware")) or _s(extra.get("device"))
    evaluation = _evaluation(folder, extra)
    grid = _latest_sample_grid(folder)
    pipeline_class = _s(_dict(_read_json(folder / "model_index.json")).get("_class_name"))
    prompts = {str(k): str(v) for k, v in _dict(info.get("prompts")).items() if _s(v) is not None}
    defaults = {str(k): v for k, v in defaults.items() if _s(v) is not None}
    distillation = _dict(extra.get("distillation"))  # a few-step student: base_model is its teacher, not an SD base
    is_sd = backend.startswith("sd") or bool(prompts) or (bool(base_model) and not distillation)
    federation = _federation(extra.get("federation"))
    # a federated GAN/VAE: its trainer's flags (the federation's own are in the Federated training section)
    hyperparameters = _hyperparameters(_dict(extra.get("backend_config")) or train_config)

    tags = _tags("synthxray", "diffusers", "synthetic-data", "data-augmentation", "medical-imaging", backend,
                 "text-to-image" if is_sd else "class-conditional-image-generation",
                 modality and f"modality:{modality}", anatomy and f"anatomy:{anatomy}", modality, anatomy,
                 resolution and f"resolution:{resolution}", *[f"class:{_slug(c)}" for c in classes],
                 *[f"metric:{m}" for m in evaluation["metric_names"]])
    name = repo_id or Path(folder).resolve().name
    eval_results = []
    for row in evaluation["rows"]:
        if row["scope"] == "overall" and isinstance(row["value"], (int, float)) and math.isfinite(row["value"]):
            eval_results.append(EvalResult(
                task_type="text-to-image" if is_sd else "unconditional-image-generation",
                dataset_type=_slug(str(data_source or "real-data")), dataset_name=str(data_source or "real data"),
                metric_type=row["metric"], metric_value=float(row["value"]),
                metric_name=f"{row['metric'].upper()} ({row['extractor'] or 'extractor not recorded'})",
                metric_args=_clean({"extractor": row["extractor"], "protocol": row["protocol"], "n": row["n"]}) or None,
            ))
    card_data = ModelCardData(
        library_name="synthxray",
        license=license_,
        tags=tags,
        pipeline_tag="text-to-image" if is_sd else "unconditional-image-generation",
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[data_source] if _is_hub_id(data_source) else None,
        metrics=evaluation["metric_names"] or None,
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
        synthxray=_clean({
            "kind": "generator", "backend": backend, "classes": classes, "resolution": resolution,
            "channels": channels, "modality": modality, "anatomy": anatomy, "base_model": base_model,
            "base_model_revision": base_revision, "training_steps": steps,
            "teacher": _s(distillation.get("teacher")) if distillation else None,
            "extractor": evaluation["extractors"][0] if len(evaluation["extractors"]) == 1 else (evaluation["extractors"] or None),
            "protocol": evaluation["protocols"][0] if len(evaluation["protocols"]) == 1 else (evaluation["protocols"] or None),
            "metrics": evaluation["overall"] or None, "synthxray_version": _s(info.get("synthxray_version")),
            "federation": _clean({
                "framework": federation["framework"], "sites": federation["sites"], "partition": federation["partition"],
                "rounds": federation["rounds"], "local_steps": federation["local_steps"], "strategy": federation["strategy"],
                "differential_privacy": bool(federation["dp"]), "secure_aggregation": federation["secure_aggregation"],
            }) if federation else None,
        }),
    )
    context = {
        "name": name, "backend": backend, "pipeline_class": pipeline_class, "classes": classes,
        "num_classes": len(classes), "resolution": resolution, "channels": channels,
        "color": {1: "grayscale", 3: "RGB"}.get(channels, None), "prompts": prompts,
        "base_model": base_model, "base_model_revision": base_revision,
        "base_model_is_local": bool(base_model) and not _is_hub_id(base_model),
        "modality": modality, "anatomy": anatomy, "data": data, "data_source": data_source,
        "data_license": data_license, "license": license_, "defaults": defaults,
        "hyperparameters": hyperparameters, "training_steps": steps, "federation": federation,
        "distillation": distillation,
        "training_time": _duration(seconds), "hardware": hardware, "evaluation": evaluation, "sample_grid": grid,
        "intended_use": INTENDED_USE, "is_sd": is_sd, "synthxray_version": _s(info.get("synthxray_version")),
        "repo_id": repo_id or "USER/REPO", "marker": CARD_MARKER,
    }
    return _render(ModelCard, card_data, "generator.md", context)


def render_dataset_card(folder: str | os.PathLike, repo_id: str | None = None) -> str:
    """The synthetic dataset card text for ``folder`` (a ``save_to_disk`` folder with a manifest)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    manifest = _dict(_read_json(folder / DATASET_MANIFEST))
    ds_info = _dict(_read_json(folder / "dataset_info.json"))
    features = _dict(ds_info.get("features"))
    counts = _counts(manifest.get("counts"))
    classes = _strs(manifest.get("class_names")) or list(counts)
    if not classes:
        classes = _strs(_dict(features.get("label")).get("names"))
    num_images = _i(manifest.get("num_images"))
    if num_images is None and counts:
        num_images = sum(counts.values())
    generator_path = _s(manifest.get("generator_path")) or ""
    generator_revision = _s(manifest.get("generator_revision")) or ""
    generator_info = _dict(_read_json(Path(generator_path) / GENERATOR_CONFIG)) if generator_path and Path(generator_path).is_dir() else {}
    resolution = _i(generator_info.get("resolution")) or _first_image_size(folder)
    modality, anatomy = _modality(generator_info, _dict(generator_info.get("data")), _dict(generator_info.get("extra")), {})
    columns = _strs(manifest.get("columns")) or list(features)
    sampler = {k: _s(manifest.get(k)) for k in ("generator", "scheduler", "num_inference_steps", "guidance_scale", "seed")}
    provenance, seed_stride = _dataset_provenance(manifest, columns)
    generator_is_hub = _is_hub_id(generator_path)
    tags = _tags("synthxray", "synthetic", "synthetic-data", "data-augmentation", "medical-imaging",
                 sampler["generator"] and f"generator:{sampler['generator']}",
                 modality and f"modality:{modality}", anatomy and f"anatomy:{anatomy}", modality, anatomy,
                 resolution and f"resolution:{resolution}", *[f"class:{_slug(c)}" for c in classes])
    card_data = DatasetCardData(
        tags=tags,
        task_categories=["image-classification"],
        size_categories=[_size_category(num_images)] if num_images is not None else None,
        pretty_name=f"Synthetic {', '.join(classes)} images ({sampler['generator'] or 'synthxray'})" if classes else None,
        source_datasets=[generator_path] if generator_is_hub else None,
        synthxray=_clean({
            "kind": "dataset", "generator": sampler["generator"], "generator_repo": generator_path or None,
            "generator_revision": generator_revision or None, "classes": classes, "counts": counts or None,
            "num_images": num_images, "seed": _i(manifest.get("seed")), "scheduler": sampler["scheduler"],
            "num_inference_steps": _i(manifest.get("num_inference_steps")), "guidance_scale": _number(manifest.get("guidance_scale")),
            "resolution": resolution, "modality": modality, "anatomy": anatomy,
        }),
    )
    context = {
        "name": repo_id or folder.resolve().name, "repo_id": repo_id or "USER/DATASET", "manifest": manifest, "counts": counts, "classes": classes,
        "num_images": num_images, "generator": sampler["generator"], "generator_path": generator_path,
        "generator_revision": generator_revision, "generator_is_hub": generator_is_hub,
        "generator_is_local": bool(generator_path) and not generator_is_hub,
        "seed": sampler["seed"], "scheduler": sampler["scheduler"],
        "num_inference_steps": sampler["num_inference_steps"], "guidance_scale": sampler["guidance_scale"],
        "generate_kwargs": {str(k): str(v) for k, v in _dict(manifest.get("generate_kwargs")).items()},
        "generation_time": _duration(manifest.get("seconds")), "columns": columns, "provenance": provenance,
        "resolution": resolution, "modality": modality, "anatomy": anatomy, "recipe": _dataset_recipe(manifest),
        "seed_stride": seed_stride, "intended_use": INTENDED_USE, "marker": CARD_MARKER,
        "intensity": _dict(manifest.get("intensity")) or None,
    }
    return _render(DatasetCard, card_data, "dataset.md", context)


def render_classifier_card(folder: str | os.PathLike, repo_id: str | None = None) -> str:
    """The classifier card text for ``folder``, from whatever metadata and results files it holds."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    meta = _classifier_metadata(folder)
    results = _results_table(folder, meta)
    metric_names = sorted({m for m in _dict(meta.get("metrics"))} | set(results["metric_names"]))
    classes = meta.get("class_names") or []
    modality, anatomy = _modality(meta, {}, {}, {"dataset": meta.get("dataset")})
    tags = _tags("synthxray", "image-classification", "medical-imaging", "data-augmentation",
                 meta.get("backbone") and f"backbone:{meta.get('backbone')}", meta.get("recipe") and f"recipe:{meta.get('recipe')}",
                 modality and f"modality:{modality}", anatomy and f"anatomy:{anatomy}", modality, anatomy,
                 meta.get("image_size") and f"resolution:{meta.get('image_size')}",
                 *[f"class:{_slug(c)}" for c in classes], *[f"metric:{m}" for m in metric_names])
    card_data = ModelCardData(
        library_name="synthxray",
        license=meta.get("license"),
        tags=tags,
        pipeline_tag="image-classification",
        base_model=meta.get("base_model") if _is_hub_id(meta.get("base_model")) else None,
        datasets=[d for d in (meta.get("dataset"), meta.get("synthetic")) if _is_hub_id(d)] or None,
        metrics=metric_names or None,
        synthxray=_clean({
            "kind": "classifier", "backbone": meta.get("backbone"), "classes": classes or None,
            "image_size": meta.get("image_size"), "recipe": meta.get("recipe"), "seed": meta.get("seed"),
            "modality": modality, "anatomy": anatomy, "metrics": _dict(meta.get("metrics")) or None,
        }),
    )
    weights = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth") and not _ignored(p, folder))
    context = {
        "name": repo_id or folder.resolve().name, "repo_id": repo_id or "USER/REPO", "meta": meta, "backbone": meta.get("backbone"), "classes": classes,
        "image_size": meta.get("image_size"), "recipe": meta.get("recipe"), "seed": meta.get("seed"),
        "dataset": meta.get("dataset"), "synthetic": meta.get("synthetic"), "metrics": _dict(meta.get("metrics")),
        "results": results, "weights": weights, "modality": modality, "anatomy": anatomy,
        "pretrained": meta.get("pretrained"), "weights_note": meta.get("weights_note"), "plots": _plots(folder), "intended_use": INTENDED_USE, "marker": CARD_MARKER,
    }
    return _render(ModelCard, card_data, "classifier.md", context)


def _render(card_cls: Any, card_data: Any, template: str, context: dict) -> str:
    card = card_cls.from_template(card_data, template_path=str(template_dir() / template), **context)
    text = str(card)
    text = re.sub(r"\n{3,}", "\n\n", text)  # templates with skipped sections leave blank runs
    return text if text.endswith("\n") else text + "\n"




RENDERERS.update(generator=render_generator_card, dataset=render_dataset_card, classifier=render_classifier_card)
