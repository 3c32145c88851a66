"""The backend-independent generator interface and the ``synthxray.json`` file that names a backend."""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from PIL import Image

from ..errors import ExplainedError
from ..manifest import GENERATOR_CONFIG
from ..registry import Registry
from ..samplers import SCHEDULERS

GENERATORS: Registry[type["Generator"]] = Registry("generator")

CONFIG_NAME = GENERATOR_CONFIG  # synthxray.manifest: the names of the files synthxray writes


@dataclass
class GeneratorInfo:
    """What ``synthxray.json`` holds next to the diffusers files."""

    backend: str
    class_names: list[str]
    channels: int = 3
    resolution: int | None = None
    prompts: dict[str, str] | None = None
    base_model: str | None = None
    base_model_revision: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    synthxray_version: str = ""

    def save(self, directory: str | os.PathLike) -> None:
        from .. import __version__

        self.synthxray_version = __version__
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "GeneratorInfo":
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory} has no {CONFIG_NAME}: it is not a synthxray generator folder "
                "(train one with train_scripts/train_ddpm.py, or load plain diffusers folders with diffusers)"
            )
        raw = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; upgrade synthxray to read this file")
        return cls(**raw)


def resolve_pretrained_dir(path_or_repo_id: str | os.PathLike, revision: str | None = None, **hub_kwargs: Any) -> Path:
    """Return a local folder for a local path or a Hub repo id (downloaded with huggingface_hub)."""
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"{text} is not a folder and not a Hub repo id (user/name)")
    from huggingface_hub import snapshot_download

    with explain_hub_load(text, revision):
        return Path(snapshot_download(repo_id=text, revision=revision, **hub_kwargs))


class HubLoadError(ExplainedError, OSError):
    """A generator that could not be fetched from the Hub; the one-line message says why and what to do."""


def is_repo_id(path_or_repo_id: str | os.PathLike) -> bool:
    """True for text that names a Hub repo (``user/name`` or ``name``) rather than a local path."""
    text = str(path_or_repo_id)
    return not Path(text).exists() and not text.startswith((".", "/", "~")) and text.count("/") <= 1


@contextlib.contextmanager
def explain_hub_load(repo_id: str, revision: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub download errors into one ``HubLoadError`` line that says what to do.

    The same translation as ``synthxray.hub.push`` makes for uploads (gated repos, tokens, revisions, network).
    """
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import (
        GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    from ..hub.push import _first_line, _is_network_error, _status

    where = f"{repo_id}{f' (revision {revision})' if revision else ''} on {constants.ENDPOINT}"
    login = "log in with `hf auth login` or set HF_TOKEN"
    try:
        yield
    except GatedRepoError as exc:
        if get_token() is None:
            raise HubLoadError(f"cannot load {where}: the repo is gated and no Hub token is set: accept its license "
                               f"on {constants.ENDPOINT}/{repo_id} and {login}") from exc
        raise HubLoadError(f"cannot load {where}: the repo is gated and this token has no access "
                           f"({_status(exc)}): accept its license on {constants.ENDPOINT}/{repo_id} with the "
                           "account the token belongs to, or wait until the request is approved") from exc
    except RevisionNotFoundError as exc:
        raise HubLoadError(f"cannot load {where}: revision not found; give an existing branch, tag or commit") from exc
    except RepositoryNotFoundError as exc:
        if _status(exc) == 401 and get_token() is not None:
            raise HubLoadError(f"cannot load {where}: the Hub did not accept the token (401); check HF_TOKEN") from exc
        hint = f"; if it is private, {login}" if get_token() is None else ", or not visible with this token"
        raise HubLoadError(f"cannot load {where}: repository not found{hint}") from exc
    except LocalEntryNotFoundError as exc:
        offline = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached"
        raise HubLoadError(f"cannot load {where}: {offline} and its files are not in the local cache "
                           f"({constants.HF_HUB_CACHE}); download it once with network access or pass a local folder"
                           ) from exc
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise HubLoadError(f"cannot load {where}: access denied ({status}); {login} with a token that may read "
                               "this repo (and accept its license if it is gated)") from exc
        raise HubLoadError(f"cannot load {where}: the Hub refused the request ({status}: {_first_line(exc)})") from exc
    except Exception as exc:
        if _is_network_error(exc):
            raise HubLoadError(f"cannot load {where}: network failure ({_first_line(exc)}); check the connection "
                               "or pass a local folder") from exc
        raise


class Generator(ABC):
    """A trained image generator that makes labelled images, whatever its backend.

    Subclasses register with ``@GENERATORS.register("name")``, set ``backend`` and implement
    ``_generate_batch``, ``save_pretrained`` and ``from_pretrained``.
    """

    backend: str = ""

    def __init__(self, info: GeneratorInfo, source: str | None = None, revision: str | None = None) -> None:
        self.info = info
        self.source = source
        self.revision = revision

    # ---- what every backend provides -------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.info.class_names)

    @abstractmethod
    def _generate_batch(
        self,
        class_index: int,
        seeds: Sequence[int],
        num_inference_steps: int,
        guidance_scale: float,
        scheduler: str,
        **kwargs: Any,
    ) -> list[Image.Image]:
        """Generate ``len(seeds)`` images of one class, image ``i`` drawn from ``seeds[i]``."""

    @abstractmethod
    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the diffusers files plus ``synthxray.json``."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, **kwargs: Any) -> "Generator":
        """Load from a local folder or a Hub repo id."""

    def to(self, device: Any) -> "Generator":
        return self

    # ---- shared behaviour ----------------------------------------------------------------
    def class_index(self, class_label: int | str | None) -> int:
        """Turn a class name or index into an index, with errors naming the known classes."""
        if class_label is None:
            if self.num_classes == 1:
                return 0
            raise ValueError(f"class_label is required: this generator has classes {self.class_names}")
        if isinstance(class_label, str):
            if class_label in self.info.class_names:
                return self.info.class_names.index(class_label)
            if class_label.isdigit() and int(class_label) < self.num_classes:
                return int(class_label)
            raise ValueError(f"unknown class {class_label!r}; this generator knows {self.class_names}")
        index = int(class_label)
        if not 0 <= index < self.num_classes:
            raise ValueError(f"class index {index} is out of range for classes {self.class_names}")
        return index

    def default(self, name: str, fallback: Any) -> Any:
        return self.info.defaults.get(name, fallback)

    def generate(
        self,
        num_images: int,
        class_label: int | str | None = None,
        seed: int | Sequence[int] | None = None,
        batch_size: int = 16,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        scheduler: str | None = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> list[Image.Image]:
        """Generate ``num_images`` PIL images of one class.

        ``seed`` is an int (image ``i`` uses ``seed + i``, so any image can be remade alone) or one
        seed per image. Unset sampler settings come from the generator's saved defaults.
        """
        if num_images < 0:
            raise ValueError("num_images must be >= 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        index = self.class_index(class_label)
        if seed is None:
            import random

            seed = random.randrange(2**31)
        seeds = [int(seed) + i for i in range(num_images)] if isinstance(seed, int) else [int(s) for s in seed]
        if len(seeds) != num_images:
            raise ValueError(f"got {len(seeds)} seeds for {num_images} images")
        settings = self.resolve_settings(num_inference_steps, guidance_scale, scheduler)
        images: list[Image.Image] = []
        import torch
        from tqdm.auto import tqdm

        bar = tqdm(total=num_images, desc=f"generate {self.class_names[index]}", disable=not progress, unit="img")
        for start in range(0, num_images, batch_size):
            chunk = seeds[start : start + batch_size]
            # sampling never needs gradients: without no_grad every step's graph is kept alive until the batch ends
            # (a 20-step batch of 64 held 4.7 GB on the default DDPM, issue 35)
            with torch.no_grad():
                images.extend(self._generate_batch(index, chunk, **settings, **kwargs))
            bar.update(len(chunk))
        bar.close()
        return images

    def resolve_settings(
        self, num_inference_steps: int | None, guidance_scale: float | None, scheduler: str | None
    ) -> dict[str, Any]:
        """Fill unset sampler settings from the saved defaults and validate them."""
        scheduler = scheduler or self.default("scheduler", "dpm")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {SCHEDULERS}")
        steps = int(self.default("num_inference_steps", 20) if num_inference_steps is None else num_inference_steps)
        if steps < 1:
            raise ValueError("num_inference_steps must be >= 1")
        guidance = float(self.default("guidance_scale", 1.0) if guidance_scale is None else guidance_scale)
        return {"num_inference_steps": steps, "guidance_scale": guidance, "scheduler": scheduler}

    @property
    def provenance(self) -> dict[str, str]:
        """Name, source and revision recorded in every synthetic sample."""
        return {
            "generator": self.backend,
            "generator_path": str(self.source or ""),
            "generator_revision": str(self.revision or ""),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, classes={self.class_names}, source={self.source!r})"


def load_generator(
    path_or_repo_id: str | os.PathLike | Mapping[str, str | os.PathLike], revision: str | None = None, **kwargs: Any
) -> Generator:
    """Load any generator from a local folder or a Hub repo id.

    The backend is read from ``synthxray.json`` and looked up in the generator registry. A diffusers
    folder or repo without ``synthxray.json`` (a model someone else trained), or a ``{class: folder_or_repo}``
    mapping of unconditional pipelines, is wrapped by the ``diffusers`` backend
    (``synthxray.generators.diffusers_hub``): pass ``prompts={class: text}`` for a text-to-image model.
    """
    if isinstance(path_or_repo_id, Mapping) or not _has_generator_config(path_or_repo_id, revision):
        wrap = GENERATORS.get("diffusers").wrap  # type: ignore[attr-defined]
        return wrap(path_or_repo_id, revision=revision, **kwargs)
    local = resolve_pretrained_dir(path_or_repo_id, revision=revision)
    info = GeneratorInfo.load(local)
    cls = GENERATORS.get(info.backend)
    gen = cls.from_pretrained(local, **kwargs)
    gen.source = str(path_or_repo_id)
    gen.revision = _hub_commit(local) or revision  # pin the exact commit a branch or tag resolved to
    return gen


def _has_generator_config(path_or_repo_id: str | os.PathLike, revision: str | None) -> bool:
    """Whether a folder or Hub repo holds ``synthxray.json`` (for a repo: fetched alone, not the whole repo)."""
    path = Path(path_or_repo_id)
    if path.is_dir():
        return (path / CONFIG_NAME).is_file()
    if not is_repo_id(path_or_repo_id):
        resolve_pretrained_dir(path_or_repo_id, revision=revision)  # raises its "not a folder" error
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    with explain_hub_load(str(path_or_repo_id), revision):
        try:
            hf_hub_download(str(path_or_repo_id), CONFIG_NAME, revision=revision)
        except LocalEntryNotFoundError:
            raise  # offline and not cached: explained as such, not as "no synthxray.json"
        except EntryNotFoundError:
            return False
    return True


def _hub_commit(local: Path) -> str | None:
    """Snapshot folders from the Hub cache are named after their commit hash."""
    parts = local.resolve().parts
    if len(parts) >= 2 and parts[-2] == "snapshots":
        return parts[-1]
    return None


def list_generators() -> list[str]:
    """Names of the registered generator backends."""
    return GENERATORS.names()
