"""Uploads (huggingface_hub ``create_repo`` / ``create_commit``, datasets ``push_to_hub``) and the
translation of client errors into one ``HubPushError`` that says what happened and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ExplainedError
from .cards import CARD_FILE, KINDS, card_text, save_card
from .metadata import DATASET_MANIFEST, DEFAULT_IGNORE, GENERATOR_CONFIG, _existing_folder, _old_sample_grids, _read_json

logger = logging.getLogger("synthxray.hub")


class HubPushError(ExplainedError, RuntimeError):
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

    The card (``README.md``) is rendered from the folder's metadata and uploaded in the same commit,
    unless the folder has a hand-written README (uploaded as it is); the local README is updated only
    after the upload succeeded. Checkpoints, logs and all sample grids but the last are left out. Pull
    it back with ``load_generator(repo_id, revision=...)``.
    """
    folder = _existing_folder(folder, "generator")
    if not (folder / GENERATOR_CONFIG).is_file():
        raise FileNotFoundError(
            f"{folder} has no {GENERATOR_CONFIG}: it is not a synthxray generator folder "
            "(train one with train_scripts/train_ddpm.py, or save one with Generator.save_pretrained)"
        )
    info = _read_json(folder / GENERATOR_CONFIG)
    card = card_text("generator", folder, repo_id) if write_card else None
    ignore = list(DEFAULT_IGNORE) + _old_sample_grids(folder) + list(ignore_patterns or [])
    message = commit_message or f"Upload synthxray {info.get('backend', '')} generator".replace("  ", " ")
    result = _push_folder(folder, repo_id, "model", private, revision, token, message, ignore, card)
    _keep_card(folder, card)
    return result


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
    card = card_text("classifier", folder, repo_id) if write_card else None
    ignore = list(DEFAULT_IGNORE) + list(ignore_patterns or [])
    message = commit_message or "Upload synthxray classifier"
    result = _push_folder(folder, repo_id, "model", private, revision, token, message, ignore, card)
    _keep_card(folder, card)
    return result


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
    card = card_text("dataset", folder, repo_id) if write_card else None
    token = _require_token(token)
    api = _api(token)
    endpoint = api.endpoint
    revision = revision or None
    with _explain("push", repo_id, "dataset", folder, endpoint):
        repo_id = _ensure_repo(api, repo_id, "dataset", private, revision)
        extras = [DATASET_MANIFEST] + ([] if card is not None else [CARD_FILE])
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
               for name in extras if (folder / name).is_file()]
        if card is not None:
            ops.insert(0, CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
        if ops:
            api.create_commit(repo_id, ops, commit_message="Add the synthxray card and generation manifest",
                              repo_type="dataset", revision=revision)
        kwargs: dict[str, Any] = {"token": token, "revision": revision, "private": private,
                                  "commit_message": commit_message or "Upload synthetic dataset (synthxray)"}
        if max_shard_size is not None:
            kwargs["max_shard_size"] = max_shard_size
        info = loaded.push_to_hub(repo_id, **kwargs)
    _keep_card(folder, card)
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
                 token: str | None, message: str, ignore: list[str], card: str | None = None) -> PushResult:
    """One commit with the folder's files (less ``ignore``) and, when given, ``card`` as README.md."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.utils import filter_repo_objects

    token = _require_token(token)
    api = _api(token)
    revision = revision or None
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = [f for f in filter_repo_objects(files, ignore_patterns=ignore) if not (card is not None and f == CARD_FILE)]
    ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
    if card is not None:  # rendered in memory: the local README.md is written only once the push succeeded
        ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
    with _explain("push", repo_id, repo_type, folder, api.endpoint):
        repo_id = _ensure_repo(api, repo_id, repo_type, private, revision)
        info = api.create_commit(repo_id, ops, commit_message=message, repo_type=repo_type, revision=revision)
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return PushResult(repo_id, repo_type, revision or "main", getattr(info, "oid", None), f"{api.endpoint}/{prefix}{repo_id}")


def _keep_card(folder: Path, card: str | None) -> None:
    """After a successful push: the local README.md becomes the card that was uploaded."""
    if card is not None:
        with contextlib.suppress(OSError):  # the push succeeded; a read-only folder only misses the local copy
            save_card(folder, card)


def _api(token: str | None):
    from huggingface_hub import HfApi

    from .. import __version__

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


