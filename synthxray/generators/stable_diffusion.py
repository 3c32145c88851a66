"""Stable Diffusion generators fine-tuned with DreamBooth (``sd-dreambooth``) or LoRA (``sd-lora``).

A class maps to a text prompt (``GeneratorInfo.prompts``). Labelled data is trained either as one
model with a prompt per class, or as one model per class (seed 004's way); per-class models live in
sub-folders named in ``info.extra["models"]`` and each sub-folder is a generator of its own.

On disk:

* ``sd-dreambooth``: a full ``StableDiffusionPipeline`` folder (or one per class sub-folder) that
  plain ``StableDiffusionPipeline.from_pretrained`` loads, plus ``synthxray.json``.
* ``sd-lora``: ``pytorch_lora_weights.safetensors`` (or one per class sub-folder) that plain
  ``pipe.load_lora_weights(folder)`` loads, plus ``synthxray.json`` naming the base model id and revision.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from ..samplers import SCHEDULERS
from .base import GENERATORS, Generator, GeneratorInfo, resolve_pretrained_dir

# seed 004: DPM-Solver multistep, 50 steps, guidance 4.0
SD_DEFAULTS: dict[str, Any] = {"scheduler": "dpm", "num_inference_steps": 50, "guidance_scale": 4.0}
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


def make_sd_scheduler(name: str, config: Any):
    """A sampling scheduler for latent diffusion, built from a pipeline's scheduler config."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    classes = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler,
               "dpm-sde": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}
    if name not in classes:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")
    config = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    if name == "dpm-sde":
        config["algorithm_type"] = "sde-dpmsolver++"
    return classes[name].from_config(config)


def sub_info(info: GeneratorInfo, class_name: str) -> GeneratorInfo:
    """The ``synthxray.json`` of one per-class sub-folder: the same generator with that one class."""
    extra = {k: v for k, v in info.extra.items() if k != "models"}
    prompts = {class_name: (info.prompts or {})[class_name]}
    return dataclasses.replace(info, class_names=[class_name], prompts=prompts, extra=extra, data=dict(info.data), defaults=dict(info.defaults))


def dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: ``dtype`` in newer diffusers (``torch_dtype`` is deprecated there), ``torch_dtype`` before."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def default_device_and_dtype(device: str | torch.device | None, torch_dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """CUDA in fp16 when there is a GPU, otherwise CPU in fp32 (unless told otherwise)."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype or (torch.float16 if dev.type == "cuda" else torch.float32)
    return dev, dtype


class StableDiffusionGenerator(Generator):
    """What both Stable Diffusion backends share: prompts per class, seeds per image, grayscale output."""

    def __init__(self, info: GeneratorInfo, local_dir: str | os.PathLike, device: torch.device, dtype: torch.dtype, **kwargs: Any) -> None:
        super().__init__(info, **kwargs)
        self.local_dir = Path(local_dir)
        self._device = device
        self.dtype = dtype
        for name in info.class_names:
            if name not in (info.prompts or {}):
                raise ValueError(f"{local_dir}/synthxray.json has no prompt for class {name!r}")

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def per_class_models(self) -> dict[str, str]:
        """Class name -> sub-folder, when the generator is one model per class."""
        return dict(self.info.extra.get("models") or {})

    def prompt(self, class_label: int | str | None = None) -> str:
        """The text prompt that draws a class."""
        return self.info.prompts[self.class_names[self.class_index(class_label)]]  # type: ignore[index]

    def pipeline(self, class_index: int):
        """The ``StableDiffusionPipeline`` (with the right adapter active) that draws class ``class_index``."""
        raise NotImplementedError

    def _generate_batch(
        self,
        class_index: int,
        seeds: Sequence[int],
        num_inference_steps: int,
        guidance_scale: float,
        scheduler: str,
        negative_prompt: str | None = None,
        **kwargs: Any,
    ) -> list[Image.Image]:
        pipe = self.pipeline(class_index)
        pipe.scheduler = make_sd_scheduler(scheduler, self._scheduler_config(pipe))
        n = len(seeds)
        prompt = self.prompt(class_index)
        if negative_prompt is None:
            negative_prompt = self.default("negative_prompt", None)
        size = self.info.resolution
        # one CPU generator per image: any image can be remade alone, on any device
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        out = pipe(
            prompt=[prompt] * n,
            negative_prompt=[negative_prompt] * n if negative_prompt else None,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=gens,
            height=size,
            width=size,
            **kwargs,
        )
        images = list(out.images)
        if self.info.channels == 1:
            images = [im.convert("L") for im in images]
        return images

    def _scheduler_config(self, pipe) -> dict[str, Any]:
        # the config the pipeline came with; later swaps must not drift from it
        if not hasattr(pipe, "_synthxray_scheduler_config"):
            pipe._synthxray_scheduler_config = dict(pipe.scheduler.config)
        return pipe._synthxray_scheduler_config

    @staticmethod
    def _prepare(pipe, device: torch.device):
        pipe.set_progress_bar_config(disable=True)
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                module.eval()  # adapters loaded into a pipeline may come in training mode (LoRA dropout)
        return pipe.to(device)

    @classmethod
    def _load_info(cls, path_or_repo_id: str | os.PathLike, revision: str | None) -> tuple[Path, GeneratorInfo]:
        local = resolve_pretrained_dir(path_or_repo_id, revision=revision)
        info = GeneratorInfo.load(local)
        if info.backend != cls.backend:
            raise ValueError(f"{path_or_repo_id} holds a {info.backend!r} generator, not {cls.backend!r}; use load_generator")
        for name, sub in (info.extra.get("models") or {}).items():
            if not (local / sub).is_dir():
                raise FileNotFoundError(f"{path_or_repo_id}: the model of class {name!r} ({sub}/) is missing")
        return local, info


@GENERATORS.register("sd-dreambooth")
class DreamBoothGenerator(StableDiffusionGenerator):
    """Stable Diffusion fully fine-tuned with DreamBooth (``train_scripts/train_dreambooth.py``).

    One model with a prompt per class, or one model per class loaded on first use (one at a time,
    so many classes fit in memory).
    """

    backend = "sd-dreambooth"

    def __init__(self, info: GeneratorInfo, local_dir: str | os.PathLike, device: torch.device, dtype: torch.dtype, pipeline=None, **kwargs: Any) -> None:
        super().__init__(info, local_dir, device, dtype, **kwargs)
        self._loaded: tuple[int | None, Any] | None = (None, pipeline) if pipeline is not None else None

    def pipeline(self, class_index: int):
        from diffusers import StableDiffusionPipeline

        key = class_index if self.per_class_models else None
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous class's model before loading the next
            folder = self.local_dir / self.per_class_models[self.class_names[class_index]] if key is not None else self.local_dir
            pipe = StableDiffusionPipeline.from_pretrained(folder, **dtype_kwargs(self.dtype))
            self._loaded = (key, self._prepare(pipe, self._device))
        return self._loaded[1]

    def to(self, device: Any) -> "DreamBoothGenerator":
        self._device = torch.device(device)
        if self._loaded is not None:
            self._loaded[1].to(self._device)
        return self

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.per_class_models:
            for i, name in enumerate(self.class_names):
                sub = directory / self.per_class_models[name]
                self.pipeline(i).save_pretrained(sub)
                sub_info(self.info, name).save(sub)
        else:
            self.pipeline(0).save_pretrained(directory)
        self.info.save(directory)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
        torch_dtype: torch.dtype | None = None, **kwargs: Any,
    ) -> "DreamBoothGenerator":
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        local, info = cls._load_info(path_or_repo_id, revision)
        dev, dtype = default_device_and_dtype(device, torch_dtype)
        gen = cls(info, local, dev, dtype, source=str(path_or_repo_id), revision=revision)
        if not gen.per_class_models:
            gen.pipeline(0)  # load now: errors show at load time, not at the first image
        return gen


@GENERATORS.register("sd-lora")
class LoRAGenerator(StableDiffusionGenerator):
    """A Stable Diffusion base model plus LoRA adapters (``train_scripts/train_lora.py``).

    ``synthxray.json`` records the base model id (or folder) and revision; ``base_model=`` overrides
    it, e.g. to point at a local copy. Per-class adapters are all loaded and switched per class.
    """

    backend = "sd-lora"

    def __init__(self, info: GeneratorInfo, local_dir: str | os.PathLike, device: torch.device, dtype: torch.dtype, pipeline, **kwargs: Any) -> None:
        super().__init__(info, local_dir, device, dtype, **kwargs)
        self._pipe = pipeline

    def adapter_name(self, class_index: int) -> str | None:
        return f"class_{class_index}" if self.per_class_models else None

    def pipeline(self, class_index: int):
        name = self.adapter_name(class_index)
        if name is not None:
            self._pipe.set_adapters(name)
        return self._pipe

    def to(self, device: Any) -> "LoRAGenerator":
        self._device = torch.device(device)
        self._pipe.to(self._device)
        return self

    def lora_folders(self) -> dict[str | None, Path]:
        """Sub-folder (None for the top folder) -> folder holding its LoRA weights file."""
        if self.per_class_models:
            return {sub: self.local_dir / sub for sub in self.per_class_models.values()}
        return {None: self.local_dir}

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        for sub, folder in self.lora_folders().items():
            target = directory / sub if sub else directory
            target.mkdir(parents=True, exist_ok=True)
            if target.resolve() != folder.resolve():
                shutil.copy2(folder / LORA_WEIGHTS_NAME, target / LORA_WEIGHTS_NAME)
        for name, sub in self.per_class_models.items():
            sub_info(self.info, name).save(directory / sub)
        self.info.save(directory)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
        torch_dtype: torch.dtype | None = None, base_model: str | None = None, base_model_revision: str | None = None,
        **kwargs: Any,
    ) -> "LoRAGenerator":
        from diffusers import StableDiffusionPipeline

        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        local, info = cls._load_info(path_or_repo_id, revision)
        base = base_model or info.base_model
        if not base:
            raise ValueError(f"{path_or_repo_id}/synthxray.json names no base model; pass base_model=")
        base_revision = base_model_revision if base_model else (base_model_revision or info.base_model_revision)
        dev, dtype = default_device_and_dtype(device, torch_dtype)
        is_local = Path(base).is_dir()
        try:
            # from_pretrained fetches only the pipeline's files, not every checkpoint a Hub repo holds
            pipe = StableDiffusionPipeline.from_pretrained(base, revision=None if is_local else base_revision, **dtype_kwargs(dtype))
        except (OSError, ValueError) as exc:  # missing folder, no network, unknown repo or revision
            raise FileNotFoundError(
                f"the LoRA generator {path_or_repo_id} needs its base model {base!r}"
                f"{f' (revision {base_revision})' if base_revision and not is_local else ''}, which could not be loaded: {exc}. "
                "Pass base_model= (e.g. a local copy) to load_generator."
            ) from None
        gen = cls(info, local, dev, dtype, pipe, source=str(path_or_repo_id), revision=revision)
        adapters = {gen.adapter_name(i): local / gen.per_class_models[n] for i, n in enumerate(info.class_names)} if gen.per_class_models else {None: local}
        for adapter, folder in adapters.items():
            if not (folder / LORA_WEIGHTS_NAME).is_file():
                raise FileNotFoundError(f"{folder} has no {LORA_WEIGHTS_NAME}")
            with warnings.catch_warnings():  # several adapters in one model is the point here
                warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                pipe.load_lora_weights(folder, adapter_name=adapter)
        cls._prepare(pipe, dev)
        return gen
