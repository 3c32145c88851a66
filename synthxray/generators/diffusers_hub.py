"""Generators synthxray did not train: any diffusers pipeline from the Hub or a folder (backend ``diffusers``).

Three kinds of pipeline, told apart by what the loaded pipeline's ``__call__`` takes:

* ``text2image`` (Stable Diffusion 1.x/2.x, SDXL, SD3, PixArt, Sana, ...: loaded with
  ``AutoPipelineForText2Image``): one prompt per class, ``prompts={"normal": "...", "pneumonia": "..."}``.
* ``class-conditional`` (``DiTPipeline``: an ``id2label`` in ``model_index.json``): classes are label names
  of ``id2label`` (``classes=[...]``, or ``{our_name: label_name}``), drawn through ``get_label_ids``.
* ``unconditional`` (``DDPMPipeline``, ``DDIMPipeline``, ...): one pipeline per class,
  ``load_generator({"normal": path_a, "pneumonia": path_b})``.

``save_pretrained`` writes a synthxray generator folder: the diffusers pipeline(s) as plain diffusers
folders plus ``synthxray.json`` (backend, kind, prompts, classes, defaults, source repo id, commit and
license), which ``load_generator(folder)`` loads back with no arguments.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from PIL import Image

from ..samplers import SCHEDULERS
from .base import (
    CONFIG_NAME, GENERATORS, Generator, GeneratorInfo, HubLoadError, _hub_commit, explain_hub_load, is_repo_id,
)

BACKEND = "diffusers"
KINDS = ("text2image", "class-conditional", "unconditional")
NATIVE = "native"  # the sampler the pipeline ships with (flow matching for SD3, DPM for others...)
MODEL_INDEX = "model_index.json"
CARD = "README.md"


def _dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    from .stable_diffusion import dtype_kwargs

    return dtype_kwargs(dtype)


def read_license(folder: Path) -> dict[str, str]:
    """``license`` (and ``license_name`` / ``license_link``) from a model card's YAML front matter, if any."""
    card = folder / CARD
    if not card.is_file():
        return {}
    try:
        from huggingface_hub.repocard import metadata_load

        meta = metadata_load(card) or {}
    except Exception:  # a malformed card must not stop a load: the license is then unknown
        return {}
    return {k: str(meta[k]) for k in ("license", "license_name", "license_link") if meta.get(k)}


def fetch_source(source: str | os.PathLike, revision: str | None = None) -> tuple[Path, str | None]:
    """A local folder holding ``model_index.json`` (and the card, if any) and the Hub commit it came from.

    For a repo id only ``model_index.json`` and ``README.md`` are fetched here; the pipeline's own
    ``from_pretrained`` then downloads the weight files it needs, not every checkpoint the repo holds.
    """
    path = Path(source)
    if path.is_dir():
        if not (path / MODEL_INDEX).is_file():
            raise FileNotFoundError(
                f"{source} has neither {CONFIG_NAME} nor {MODEL_INDEX}: it is not a synthxray generator nor a "
                "diffusers pipeline folder (save one with pipeline.save_pretrained, or train one with synthxray train)"
            )
        return path, _hub_commit(path)
    if not is_repo_id(source):
        raise FileNotFoundError(f"{source} is not a folder and not a Hub repo id (user/name)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    with explain_hub_load(str(source), revision):
        try:
            index = Path(hf_hub_download(str(source), MODEL_INDEX, revision=revision))
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError:
            raise HubLoadError(
                f"{source} has neither {CONFIG_NAME} nor {MODEL_INDEX}: it is not a synthxray generator nor a "
                "diffusers pipeline repo (single-file checkpoints and other libraries' models cannot be loaded)"
            ) from None
        commit = _hub_commit(index.parent)
        try:
            hf_hub_download(str(source), CARD, revision=commit or revision)
        except EntryNotFoundError:
            pass  # no model card: the license stays unknown
    return index.parent, commit


def load_pipeline(source: str | os.PathLike, revision: str | None, dtype: torch.dtype):
    """The diffusers pipeline of a folder or repo: ``AutoPipelineForText2Image`` for the text-to-image
    families it knows, ``DiffusionPipeline`` (the class ``model_index.json`` names) for the rest."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING

    local, commit = fetch_source(source, revision)
    index = json.loads((local / MODEL_INDEX).read_text())
    text2image = {cls.__name__ for cls in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()}
    loader = AutoPipelineForText2Image if index.get("_class_name") in text2image else DiffusionPipeline
    is_local = Path(source).is_dir()
    with explain_hub_load(str(source), commit or revision):
        # a repo id loads at the commit model_index.json came from: every file of one revision
        pipe = loader.from_pretrained(local if is_local else str(source),
                                      **({} if is_local else {"revision": commit or revision}), **_dtype_kwargs(dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe, local, commit, index


def pipeline_kind(pipe) -> str:
    """``text2image``, ``class-conditional`` or ``unconditional``, from what the pipeline's call takes."""
    params = inspect.signature(pipe.__call__).parameters
    if "class_labels" in params:
        return "class-conditional"
    if "prompt" in params:
        return "text2image"
    return "unconditional"


def _call_defaults(pipe) -> dict[str, Any]:
    params = inspect.signature(pipe.__call__).parameters
    out: dict[str, Any] = {}
    for name in ("num_inference_steps", "guidance_scale"):
        if name in params and isinstance(params[name].default, (int, float)) and params[name].default is not None:
            out[name] = params[name].default
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "class"


@GENERATORS.register(BACKEND)
class DiffusersHubGenerator(Generator):
    """A diffusers pipeline someone else trained, wrapped as a synthxray generator (see the module docstring)."""

    backend = BACKEND

    def __init__(self, info: GeneratorInfo, pipelines: Mapping[str | None, Any], device: torch.device,
                 cpu_offload: bool = False, **kwargs: Any) -> None:
        super().__init__(info, **kwargs)
        self.pipelines = dict(pipelines)  # None: one pipeline for every class; else class name -> pipeline
        self._device = device
        self.cpu_offload = cpu_offload
        self._native = {key: pipe.scheduler for key, pipe in self.pipelines.items()}
        for key, pipe in self.pipelines.items():
            if cpu_offload:
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe.to(device)

    # ---- what the generator knows -------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.info.extra["kind"])

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def per_class_models(self) -> dict[str, str]:
        return dict(self.info.extra.get("models") or {})

    def pipeline(self, class_index: int):
        """The diffusers pipeline that draws class ``class_index``."""
        if None in self.pipelines:
            return self.pipelines[None]
        return self.pipelines[self.class_names[class_index]]

    def to(self, device: Any) -> "DiffusersHubGenerator":
        self._device = torch.device(device)
        if not self.cpu_offload:
            for pipe in self.pipelines.values():
                pipe.to(self._device)
        return self

    def resolve_settings(
        self, num_inference_steps: int | None, guidance_scale: float | None, scheduler: str | None
    ) -> dict[str, Any]:
        """As the base class, except that the default sampler is the pipeline's own (``native``)."""
        scheduler = scheduler or self.default("scheduler", NATIVE)
        if scheduler == NATIVE:
            settings = super().resolve_settings(num_inference_steps, guidance_scale, "dpm")
            return {**settings, "scheduler": NATIVE}
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {(NATIVE, *SCHEDULERS)}")
        return super().resolve_settings(num_inference_steps, guidance_scale, scheduler)

    @property
    def provenance(self) -> dict[str, str]:
        """As every backend; a per-class generator lists each class's source and commit (``class=value;...``)."""
        sources = self.info.extra.get("sources") or {}
        if len(sources) > 1 and self.source is None:
            return {
                "generator": self.backend,
                "generator_path": ";".join(f"{k}={v.get('source', '')}" for k, v in sources.items()),
                "generator_revision": ";".join(f"{k}={v.get('revision') or ''}" for k, v in sources.items()),
            }
        return super().provenance

    # ---- sampling -------------------------------------------------------------------------------
    def _generate_batch(
        self, class_index: int, seeds: Sequence[int], num_inference_steps: int, guidance_scale: float,
        scheduler: str, negative_prompt: str | None = None, **kwargs: Any,
    ) -> list[Image.Image]:
        from .stable_diffusion import make_sd_scheduler

        key = None if None in self.pipelines else self.class_names[class_index]
        pipe = self.pipelines[key]
        native = self._native[key]
        pipe.scheduler = native if scheduler == NATIVE else make_sd_scheduler(scheduler, native.config)
        params = inspect.signature(pipe.__call__).parameters
        n = len(seeds)
        # one CPU generator per image: any image can be remade alone, on any device
        call: dict[str, Any] = {"generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]}
        if "num_inference_steps" in params:
            call["num_inference_steps"] = num_inference_steps
        if "guidance_scale" in params:
            call["guidance_scale"] = guidance_scale
        name = self.class_names[class_index]
        if self.kind == "text2image":
            call["prompt"] = [(self.info.prompts or {})[name]] * n
            negative = negative_prompt if negative_prompt is not None else self.default("negative_prompt", None)
            if negative and "negative_prompt" in params:
                call["negative_prompt"] = [negative] * n
            size = self.info.resolution
            if size and "height" in params:
                call.update(height=size, width=size)
        elif self.kind == "class-conditional":
            call["class_labels"] = [int(self.info.extra["label_ids"][name])] * n
        else:
            call["batch_size"] = n
        if negative_prompt is not None and self.kind != "text2image":
            raise TypeError(f"a {self.kind} pipeline takes no negative_prompt")
        images = list(pipe(**call, **kwargs).images)
        if self.info.channels == 1:
            images = [im.convert("L") for im in images]
        return images

    # ---- saving and loading -------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the pipeline(s) as plain diffusers folders (with their native scheduler) plus ``synthxray.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for key, pipe in self.pipelines.items():
            target = directory / self.per_class_models[key] if key is not None else directory
            sampler, pipe.scheduler = pipe.scheduler, self._native[key]
            try:
                pipe.save_pretrained(target)
            finally:
                pipe.scheduler = sampler
            id2label = self.info.extra.get("id2label")
            if id2label:  # DiT keeps id2label out of its config; the Hub's model_index.json carries it
                index = json.loads((target / MODEL_INDEX).read_text())
                index["id2label"] = id2label
                (target / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        self.info.save(directory)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike | Mapping[str, str | os.PathLike], revision: str | None = None,
        device: str | None = None, torch_dtype: torch.dtype | None = None, cpu_offload: bool = False, **kwargs: Any,
    ) -> "DiffusersHubGenerator":
        """A wrapped generator folder (``synthxray.json`` with backend ``diffusers``), or a new wrap of a plain
        diffusers folder, repo id or ``{class: source}`` mapping (the arguments of :func:`wrap`)."""
        from .base import _has_generator_config, resolve_pretrained_dir

        if not isinstance(path_or_repo_id, Mapping) and _has_generator_config(path_or_repo_id, revision):
            local = resolve_pretrained_dir(path_or_repo_id, revision=revision)
            return cls._load_wrapped(local, path_or_repo_id, revision, device, torch_dtype, cpu_offload, **kwargs)
        return wrap(path_or_repo_id, revision=revision, device=device, torch_dtype=torch_dtype,
                    cpu_offload=cpu_offload, **kwargs)

    @classmethod
    def _load_wrapped(cls, local: Path, source: Any, revision: str | None, device: str | None,
                      torch_dtype: torch.dtype | None, cpu_offload: bool, **kwargs: Any) -> "DiffusersHubGenerator":
        if kwargs:
            raise TypeError(f"{source} is a wrapped generator folder: its prompts and classes are in {CONFIG_NAME}; "
                            f"unexpected arguments {sorted(kwargs)}")
        info = GeneratorInfo.load(local)
        if info.backend != cls.backend:
            raise ValueError(f"{source} holds a {info.backend!r} generator, not {cls.backend!r}; use load_generator")
        dev, dtype = _device_and_dtype(device, torch_dtype)
        models = info.extra.get("models") or {}
        folders = {name: local / sub for name, sub in models.items()} if models else {None: local}
        pipelines = {}
        for key, folder in folders.items():
            if not (folder / MODEL_INDEX).is_file():
                raise FileNotFoundError(f"{source}: the pipeline of {key or 'the generator'} ({folder}) is missing")
            pipelines[key] = load_pipeline(folder, None, dtype)[0]
        return cls(info, pipelines, dev, cpu_offload, source=str(source), revision=_hub_commit(local) or revision)


def _device_and_dtype(device: str | None, torch_dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    from .stable_diffusion import default_device_and_dtype

    return default_device_and_dtype(device, torch_dtype)


def wrap(
    source: str | os.PathLike | Mapping[str, str | os.PathLike],
    prompts: Mapping[str, str] | None = None,
    classes: Sequence[str] | Mapping[str, str] | None = None,
    revision: str | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float | None = None,
    num_inference_steps: int | None = None,
    size: int | None = None,
    grayscale: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    torch_dtype: torch.dtype | None = None,
    cpu_offload: bool = False,
) -> DiffusersHubGenerator:
    """Wrap a diffusers pipeline (folder or Hub repo id) or a ``{class: source}`` mapping as a generator.

    ``prompts`` (text-to-image) or ``classes`` (id2label names of a class-conditional pipeline) name the
    classes; negative prompt, guidance scale, steps, size, sampler and ``grayscale`` become the defaults.
    ``torch_dtype`` defaults to float16 on CUDA and float32 on CPU; ``cpu_offload=True`` keeps only the
    running model on the GPU (``enable_model_cpu_offload``, for models larger than GPU memory).
    """
    if scheduler is not None and scheduler not in (NATIVE, *SCHEDULERS):
        raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {(NATIVE, *SCHEDULERS)}")
    dev, dtype = _device_and_dtype(device, torch_dtype)
    if cpu_offload and dev.type != "cuda":
        raise ValueError("cpu_offload=True needs a CUDA device (it moves each model to the GPU only while it runs)")
    per_class = isinstance(source, Mapping)
    if per_class and not source:
        raise ValueError("give at least one {class: folder_or_repo} pair")
    sources = dict(source) if per_class else {None: source}  # type: ignore[arg-type]
    pipelines, origin, index0 = {}, {}, None
    for key, src in sources.items():
        pipe, local, commit, index = load_pipeline(src, revision, dtype)
        pipelines[key] = pipe
        index0 = index0 or index
        origin[key or "*"] = {"source": str(src), "revision": commit or (revision if not Path(src).is_dir() else None),
                              "pipeline_class": type(pipe).__name__, **read_license(local)}
    kinds = {pipeline_kind(p) for p in pipelines.values()}
    if len(kinds) > 1:
        raise ValueError(f"the per-class pipelines are of different kinds ({sorted(kinds)}); give one kind")
    kind = kinds.pop()
    first = next(iter(pipelines.values()))
    extra: dict[str, Any] = {"kind": kind, "pipeline_class": type(first).__name__, "sources": origin}
    name = str(source if not per_class else {k: str(v) for k, v in sources.items()})
    if kind == "text2image":
        if not prompts:
            raise ValueError(f"{name} is a text-to-image pipeline ({type(first).__name__}): pass one prompt per class, "
                             'prompts={"normal": "...", "pneumonia": "..."} (CLI: --prompt CLASS=TEXT)')
        class_names = list(prompts) if not per_class else list(sources)
        missing = [c for c in class_names if c not in prompts]
        if missing:
            raise ValueError(f"no prompt for class(es) {missing}; give prompts for {class_names}")
        if classes is not None and list(classes) != class_names:
            raise ValueError(f"classes {list(classes)} do not match the prompts' classes {class_names}")
    elif kind == "class-conditional":
        if prompts:
            raise ValueError(f"{name} is class-conditional ({type(first).__name__}): it takes no prompts; "
                             "choose classes=[...] among its id2label names")
        labels = dict(getattr(first, "labels", None) or {})
        if not labels:
            raise ValueError(f"{name} is class-conditional but its {MODEL_INDEX} has no id2label to name the classes")
        if not classes:
            shown = ", ".join(sorted(labels)[:10]) + (" ..." if len(labels) > 10 else "")
            raise ValueError(f"{name} knows {len(labels)} classes ({shown}): choose some with classes=[...] "
                             "(or {our_name: label_name})")
        mapping = dict(classes) if isinstance(classes, Mapping) else {c: c for c in classes}
        unknown = [v for v in mapping.values() if v not in labels]
        if unknown:
            raise ValueError(f"{name} has no class(es) {unknown} in its id2label")
        class_names = list(mapping)
        extra["label_ids"] = {c: int(labels[v]) for c, v in mapping.items()}  # what get_label_ids([v]) gives
        extra["id2label"] = index0.get("id2label") if index0 else None
    else:
        if prompts:
            raise ValueError(f"{name} is an unconditional pipeline ({type(first).__name__}): it takes no prompts")
        if not per_class:
            if not classes or len(classes) != 1:
                raise ValueError(f"{name} is an unconditional pipeline: it draws one class. Give one per class, "
                                 'load_generator({"normal": path_a, "pneumonia": path_b}), or classes=["name"] for one')
            pipelines = {str(list(classes)[0]): pipelines[None]}
            origin[str(list(classes)[0])] = origin.pop("*")
        class_names = list(pipelines)
    if per_class and kind == "class-conditional":
        raise ValueError("a class-conditional pipeline draws every class itself: give one source, not a mapping")
    if len(set(class_names)) != len(class_names) or not class_names:
        raise ValueError(f"class names must be unique and non-empty, got {class_names}")
    if per_class or kind == "unconditional":
        extra["models"] = {c: _safe_name(c) for c in class_names}
        if len(set(extra["models"].values())) != len(class_names):
            extra["models"] = {c: f"class_{i}" for i, c in enumerate(class_names)}
    licenses = sorted({o["license"] for o in origin.values() if o.get("license")})
    if licenses:
        extra["license"] = licenses[0] if len(licenses) == 1 else ", ".join(licenses)
    defaults: dict[str, Any] = {**_call_defaults(first), "scheduler": scheduler or NATIVE, "grayscale": bool(grayscale)}
    if num_inference_steps is not None:
        defaults["num_inference_steps"] = int(num_inference_steps)
    if guidance_scale is not None:
        defaults["guidance_scale"] = float(guidance_scale)
    if negative_prompt:
        if kind != "text2image":
            raise ValueError(f"negative_prompt is for text-to-image pipelines, not {kind} ones")
        defaults["negative_prompt"] = negative_prompt
    channels = 1 if grayscale or _one_channel(first) else 3
    single = None if per_class else next(iter(origin.values()))
    info = GeneratorInfo(
        backend=BACKEND, class_names=class_names, channels=channels, resolution=size,
        prompts={c: prompts[c] for c in class_names} if kind == "text2image" and prompts else None,
        base_model=single["source"] if single else None, base_model_revision=single["revision"] if single else None,
        defaults=defaults, extra=extra,
    )
    return DiffusersHubGenerator(info, pipelines, dev, cpu_offload, source=None if per_class else str(source),
                                 revision=single["revision"] if single else None)


DiffusersHubGenerator.wrap = staticmethod(wrap)  # type: ignore[attr-defined]  # load_generator's entry point


def _one_channel(pipe) -> bool:
    net = getattr(pipe, "unet", None)
    return net is not None and getattr(net.config, "out_channels", 3) == 1 and not hasattr(pipe, "vae")
