"""Publish generators, synthetic datasets and classifiers on a Hugging Face Hub, with model cards.

All transfer goes through huggingface_hub (``create_repo``, ``create_branch``, ``upload_folder``,
``create_commit``) and datasets (``Dataset.push_to_hub``); the endpoint is ``HF_ENDPOINT`` like every
huggingface_hub client, so a private hub works by setting that variable. Pulling back needs nothing
here: ``load_generator("user/repo", revision=...)`` and ``synthxray.load_dataset("user/dataset")``
download with the same clients.

Cards are rendered from ``model_cards/{generator,dataset,classifier}.md`` (Jinja templates, rendered
with huggingface_hub's ``ModelCard`` / ``DatasetCard``) using only the metadata inside the folder, so
``write_generator_card`` / ``write_dataset_card`` / ``write_classifier_card`` never touch the network
and tolerate missing optional files: call them at the end of training, generation or experiments.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

logger = logging.getLogger("synthxray.hub")

CARD_FILE = "README.md"
CARD_MARKER = "<!-- synthxray:card"  # generated cards carry this; hand-written READMEs are never overwritten
GENERATOR_CONFIG = "synthxray.json"
DATASET_MANIFEST = "synthxray_dataset.json"
KINDS = ("generator", "dataset", "classifier")
INTENDED_USE = (
    "Research on data augmentation and synthetic data for medical image classification. "
    "Not for clinical use: not for diagnosis, triage, treatment decisions or any other care of patients."
)
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


class HubPushError(RuntimeError):
    """A push that could not finish; the message says why and what to do. Local files are untouched."""


@dataclass
class PushResult:
    """Where a push landed."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str | None
    url: str

    def __str__(self) -> str:
        return f"{self.url} (revision {self.revision}, commit {self.commit or '?'})"


# ==== pushing ==================================================================================
def push_generator(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    write_card: bool = True,
    ignore_patterns: Sequence[str] | None = None,
) -> PushResult:
    """Upload a generator folder (diffusers files + ``synthxray.json``) to a model repo.

    The card (``README.md``) is (re)written first from the folder's metadata unless the folder has a
    hand-written README. Checkpoints, logs and all sample grids but the last are left out. Pull it
    back with ``load_generator(repo_id, revision=...)``.
    """
    folder = _existing_folder(folder, "generator")
    if not (folder / GENERATOR_CONFIG).is_file():
        raise FileNotFoundError(
            f"{folder} has no {GENERATOR_CONFIG}: it is not a synthxray generator folder "
            "(train one with train_scripts/train_ddpm.py, or save one with Generator.save_pretrained)"
        )
    info = _read_json(folder / GENERATOR_CONFIG)
    if write_card:
        write_generator_card(folder, repo_id=repo_id)
    ignore = list(DEFAULT_IGNORE) + _old_sample_grids(folder) + list(ignore_patterns or [])
    message = commit_message or f"Upload synthxray {info.get('backend', '')} generator".replace("  ", " ")
    return _push_folder(folder, repo_id, "model", private, revision, token, message, ignore)


def push_classifier(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    write_card: bool = True,
    ignore_patterns: Sequence[str] | None = None,
) -> PushResult:
    """Upload a classifier folder (weights + JSON/results files) to a model repo with its card."""
    folder = _existing_folder(folder, "classifier")
    if write_card:
        write_classifier_card(folder, repo_id=repo_id)
    ignore = list(DEFAULT_IGNORE) + list(ignore_patterns or [])
    return _push_folder(folder, repo_id, "model", private, revision, token, commit_message or "Upload synthxray classifier", ignore)


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    write_card: bool = True,
    max_shard_size: str | int | None = None,
) -> PushResult:
    """Upload a synthetic dataset (a ``save_to_disk`` folder from ``generate_dataset``) to a dataset repo.

    The card and ``synthxray_dataset.json`` go first (one commit), then the rows as Parquet with
    ``Dataset.push_to_hub``, which adds the feature schema to the card. ``synthxray.load_dataset(repo_id)``
    and ``datasets.load_dataset(repo_id)`` read it back with the same rows and columns.
    """
    import datasets
    from huggingface_hub import CommitOperationAdd

    folder = _existing_folder(folder, "dataset")
    if not ((folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()):
        raise FileNotFoundError(
            f"{folder} is not a dataset folder written by save_to_disk (no state.json or dataset_dict.json); "
            "make one with synthxray.generate_dataset(..., output_dir=...) or `synthxray generate`"
        )
    loaded = datasets.load_from_disk(str(folder))
    if write_card:
        write_dataset_card(folder, repo_id=repo_id)
    token = _require_token(token)
    api = _api(token)
    endpoint = api.endpoint
    revision = revision or None
    with _explain("push", repo_id, "dataset", folder, endpoint):
        repo_id = _ensure_repo(api, repo_id, "dataset", private, revision)
        extras = [CARD_FILE, DATASET_MANIFEST]
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
               for name in extras if (folder / name).is_file()]
        if ops:
            api.create_commit(repo_id, ops, commit_message="Add the synthxray card and generation manifest",
                              repo_type="dataset", revision=revision)
        kwargs: dict[str, Any] = {"token": token, "revision": revision, "private": private,
                                  "commit_message": commit_message or "Upload synthetic dataset (synthxray)"}
        if max_shard_size is not None:
            kwargs["max_shard_size"] = max_shard_size
        info = loaded.push_to_hub(repo_id, **kwargs)
    return PushResult(repo_id, "dataset", revision or "main", getattr(info, "oid", None),
                      f"{endpoint}/datasets/{repo_id}")


def push(kind: str, folder: str | os.PathLike, repo_id: str, **kwargs: Any) -> PushResult:
    """``push("generator" | "dataset" | "classifier", folder, repo_id, ...)``."""
    pushers = {"generator": push_generator, "dataset": push_dataset, "classifier": push_classifier}
    if kind not in pushers:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    return pushers[kind](folder, repo_id, **kwargs)


def push_to_hub_if_requested(cfg: Any, folder: str | os.PathLike, kind: str = "generator") -> PushResult | None:
    """For training scripts: push ``folder`` when ``cfg.push_to_hub`` is set (``--push_to_hub``).

    The repo is ``cfg.hub_model_id``, or the folder's name under the token's user when unset; the
    token is ``cfg.hub_token`` or the logged-in one. Returns ``None`` when no push was asked for.
    Raises ``HubPushError`` (the trained model stays saved in ``folder``).
    """
    if not getattr(cfg, "push_to_hub", False):
        return None
    token = getattr(cfg, "hub_token", None)
    repo_id = getattr(cfg, "hub_model_id", None) or Path(folder).resolve().name
    if "/" not in repo_id:
        repo_id = f"{_whoami(token, repo_id)}/{repo_id}"
    steps = None
    with contextlib.suppress(Exception):
        steps = _read_json(Path(folder) / GENERATOR_CONFIG).get("extra", {}).get("train_steps")
    message = f"Upload {kind} trained with synthxray" + (f" ({steps} steps)" if steps else "")
    result = push(kind, folder, repo_id, token=token, commit_message=message)
    logger.info("pushed %s to %s", folder, result)
    return result


def _push_folder(folder: Path, repo_id: str, repo_type: str, private: bool | None, revision: str | None,
                 token: str | None, message: str, ignore: list[str]) -> PushResult:
    token = _require_token(token)
    api = _api(token)
    revision = revision or None
    with _explain("push", repo_id, repo_type, folder, api.endpoint):
        repo_id = _ensure_repo(api, repo_id, repo_type, private, revision)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, revision=revision,
            commit_message=message, ignore_patterns=ignore,
        )
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return PushResult(repo_id, repo_type, revision or "main", getattr(info, "oid", None), f"{api.endpoint}/{prefix}{repo_id}")


def _api(token: str | None):
    from huggingface_hub import HfApi

    from . import __version__

    return HfApi(token=token, library_name="synthxray", library_version=__version__)


def _require_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        from huggingface_hub import constants

        raise HubPushError(
            f"no Hub token: pushing to {constants.ENDPOINT} needs a write token. Pass --token (token=...), set "
            "HF_TOKEN, or run `hf auth login`. Nothing was uploaded and the local folder is unchanged."
        )
    return token


def _whoami(token: str | None, repo_name: str) -> str:
    token = _require_token(token)
    with _explain("push", repo_name, "model", None, _api(token).endpoint):
        return _api(token).whoami()["name"]


def _ensure_repo(api: Any, repo_id: str, repo_type: str, private: bool | None, revision: str | None) -> str:
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    repo_id = getattr(url, "repo_id", None) or repo_id
    if revision and revision != "main" and not revision.startswith("refs/pr/"):
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return repo_id


@contextlib.contextmanager
def _explain(action: str, repo_id: str, repo_type: str, folder: Path | None, endpoint: str) -> Iterator[None]:
    """Turn client errors into one HubPushError that says what happened and what to do next."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    where = f"{repo_type + 's/' if repo_type != 'model' else ''}{repo_id} on {endpoint}"
    local = f" The local folder {folder} is unchanged." if folder is not None else ""
    rerun = " Run the same push again to finish: files already on the Hub are not uploaded twice."
    try:
        yield
    except HubPushError:
        raise
    except RevisionNotFoundError as exc:
        raise HubPushError(f"cannot {action} {where}: revision not found ({_first_line(exc)}).{local}") from exc
    except RepositoryNotFoundError as exc:
        status = _status(exc)
        if status == 401:
            raise HubPushError(
                f"cannot {action} {where}: the Hub did not accept the token (401). Check --token / HF_TOKEN "
                f"and that it was issued by {endpoint}.{local}"
            ) from exc
        raise HubPushError(f"cannot {action} {where}: repository not found, or not visible with this token.{local}") from exc
    except HfHubHTTPError as exc:
        status = _status(exc)
        detail = _server_message(exc)
        if status == 401:
            msg = f"the Hub did not accept the token (401). Check --token / HF_TOKEN and that it was issued by {endpoint}"
        elif status == 403:
            msg = ("permission denied (403): the repository or its namespace belongs to another user or organisation, "
                   "or the token is read-only. Push to a repo id under your own namespace or use a write token")
        elif status in (409, 412):
            msg = f"the repository changed while pushing ({status}); run the push again"
        elif status is not None and status >= 500:
            msg = f"the Hub failed ({status}) part-way through"
        else:
            msg = f"the Hub refused the request ({status})"
        after = rerun if status is None or status >= 500 or status in (409, 412) else ""
        raise HubPushError(f"cannot {action} {where}: {msg}{' (' + detail + ')' if detail else ''}.{local}{after}") from exc
    except Exception as exc:
        if _is_network_error(exc):
            raise HubPushError(
                f"network failure during {action} to {where}: {_first_line(exc)}. Nothing is half-written on the Hub "
                f"(a commit lands whole or not at all).{local}{rerun}"
            ) from exc
        raise


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _server_message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    message = response.headers.get("X-Error-Message") or ""
    if not message:
        with contextlib.suppress(Exception):
            message = str(response.json().get("error") or "")
    return message.strip()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _is_network_error(exc: BaseException) -> bool:
    """True for dropped connections, timeouts and refused connections, also when wrapped (LFS uploads)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        module = type(exc).__module__ or ""
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if module.startswith(("httpx", "httpcore", "requests", "urllib3")) and (
            "Timeout" in name or "Connect" in name or "Network" in name or "Protocol" in name or "Transport" in name
            or "Read" in name or "Write" in name
        ):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


# ==== cards ====================================================================================
def template_dir() -> Path:
    """Folder holding the card templates: ``$SYNTHXRAY_MODEL_CARDS``, the repo's ``model_cards/``, or packaged copies."""
    env = os.environ.get("SYNTHXRAY_MODEL_CARDS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here.parent / "model_cards", here / "model_cards"]
    for c in candidates:
        if (c / "generator.md").is_file():
            return c
    raise FileNotFoundError(
        f"card templates not found (looked in {', '.join(map(str, candidates))}); set SYNTHXRAY_MODEL_CARDS to the "
        "folder holding generator.md, dataset.md and classifier.md"
    )


def write_generator_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a generator folder from its own metadata (no network).

    Returns the card's path, or ``None`` when the folder holds a hand-written README that is kept
    (pass ``overwrite=True`` to replace it).
    """
    folder = Path(folder)
    return _write_card(folder, _safe_render(render_generator_card, folder, repo_id), overwrite)


def write_dataset_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a synthetic dataset folder from its manifest (no network)."""
    folder = Path(folder)
    return _write_card(folder, _safe_render(render_dataset_card, folder, repo_id), overwrite)


def write_classifier_card(folder: str | os.PathLike, overwrite: bool = False, repo_id: str | None = None) -> Path | None:
    """Write ``README.md`` for a classifier folder from whatever JSON/CSV/markdown results it holds (no network)."""
    folder = Path(folder)
    return _write_card(folder, _safe_render(render_classifier_card, folder, repo_id), overwrite)


def _safe_render(render: Any, folder: Path, repo_id: str | None) -> str:
    """Render; metadata that breaks rendering is logged and left out rather than raised (templates missing still raise)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    try:
        return render(folder, repo_id)
    except FileNotFoundError:
        raise
    except Exception as exc:  # an unforeseen shape of metadata: still write a valid card
        import tempfile

        logger.warning("the card for %s was written without its metadata (%s: %s)", folder, type(exc).__name__, exc)
        with tempfile.TemporaryDirectory() as empty:
            return render(Path(empty), repo_id or folder.resolve().name)


def _write_card(folder: Path, text: str, overwrite: bool) -> Path | None:
    path = folder / CARD_FILE
    if path.is_file() and not overwrite:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if CARD_MARKER not in path.read_text(encoding="utf-8"):
                logger.info("keeping the hand-written %s (overwrite=True replaces it)", path)
                return None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


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
    is_sd = backend.startswith("sd") or bool(prompts) or bool(base_model)

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
            "extractor": evaluation["extractors"][0] if len(evaluation["extractors"]) == 1 else (evaluation["extractors"] or None),
            "metrics": evaluation["overall"] or None, "synthxray_version": _s(info.get("synthxray_version")),
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
        "hyperparameters": _hyperparameters(train_config), "training_steps": steps,
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
    from .synthesis import PROVENANCE_COLUMNS

    provenance = [c for c in columns if c in PROVENANCE_COLUMNS]
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
        "seed_stride": _seed_stride(), "intended_use": INTENDED_USE, "marker": CARD_MARKER,
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


# ---- reading metadata (tolerant: missing or malformed files give empty values) -----------------
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

    Accepted shapes: ``{"extractor": E, "metrics": {m: v | {"mean", "std"}}, "per_class": {c: {m: v}}}``,
    a flat ``{m: v, "extractor": E}``, or a list of rows ``{"class"/"scope", "metric", "value", "std", "extractor"}``
    or ``{"class": c, m: v, ...}``.
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
    overall = {r["metric"]: r["value"] for r in rows if r["scope"] == "overall"}
    return {"rows": rows, "extractors": extractors, "metric_names": metric_names, "overall": overall,
            "markdown": markdown, "has_std": any(r["std"] is not None for r in rows),
            "has_samples": any(r.get("num_samples") for r in rows)}


_EVAL_META = {"extractor", "feature_extractor", "num_samples", "seeds", "num_seeds", "real", "synthetic", "class",
              "scope", "metric", "value", "std", "mean", "per_class", "metrics", "classes", "date", "dataset"}


def _eval_rows(src: Any, extractor: str | None, scope: str = "overall") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
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


def _eval_row(scope: str, metric: Any, value: Any, std: Any, extractor: Any, num_samples: Any) -> dict[str, Any]:
    return {"scope": scope, "metric": str(metric).lower(), "value": _number(value), "std": _number(std),
            "extractor": str(extractor) if extractor else None, "num_samples": num_samples}


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


def _seed_stride() -> int:
    from .synthesis import SEED_STRIDE

    return SEED_STRIDE


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


__all__ = [
    "HubPushError",
    "PushResult",
    "push",
    "push_classifier",
    "push_dataset",
    "push_generator",
    "push_to_hub_if_requested",
    "render_classifier_card",
    "render_dataset_card",
    "render_generator_card",
    "write_classifier_card",
    "write_dataset_card",
    "write_generator_card",
]
