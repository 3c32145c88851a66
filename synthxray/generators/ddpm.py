"""Class-conditional UNet2D DDPM: a diffusers pipeline that takes class labels, and its Generator."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    ImagePipelineOutput,
    UNet2DModel,
    UniPCMultistepScheduler,
)
from diffusers.utils import numpy_to_pil
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ..samplers import SCHEDULERS
from .base import GENERATORS, Generator, GeneratorInfo, resolve_pretrained_dir

logger = logging.getLogger("synthxray.generators.ddpm")

TIMESTEP_SPACING: str | None = None  # None: the training config's (diffusers' DDPMScheduler: "leading")


def make_scheduler(name: str, config: dict[str, Any], timestep_spacing: str | None = None):
    """Build a sampling scheduler from the training scheduler's config.

    Pixel-space samples live in [-1, 1]; every sampler clips or thresholds the predicted clean
    image to that range (a DPM-Solver built from a plain DDPM config does not, and diverges).

    Where the steps go matters more than the solver. "dpm" (DPM-Solver++(2M)) spaces its steps
    uniformly in log-SNR (``use_lu_lambdas``, Lu et al. 2022), which puts most of them at low noise,
    where the fine detail is made: on a PneumoniaMNIST DDPM, 20 steps gave Inception FID 83.3 instead
    of 100.0 with the config's "leading" spacing and 90.4 with Karras sigmas (benchmarks/RESULTS.md).
    "dpm-sde" is its stochastic form (SDE-DPM-Solver++(2M), same steps), which adds fresh noise at
    each step: 78.6 with 10 steps on that model. ``timestep_spacing`` ("leading", "trailing",
    "linspace") replaces the log-SNR steps and the config's spacing for every sampler; "trailing"
    starts at t = T-1 (Lin et al. 2024).
    """
    config = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    spacing = timestep_spacing or TIMESTEP_SPACING
    if spacing and name != "ddpm":
        config["timestep_spacing"] = spacing
    if name == "ddpm":
        return DDPMScheduler.from_config(config, clip_sample=True, clip_sample_range=1.0)
    if name == "ddim":
        return DDIMScheduler.from_config(config, clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=False)
    if name in ("dpm", "dpm-sde"):
        return DPMSolverMultistepScheduler.from_config(
            config,
            algorithm_type="dpmsolver++" if name == "dpm" else "sde-dpmsolver++",
            solver_order=2,
            thresholding=True,
            sample_max_value=1.0,
            dynamic_thresholding_ratio=0.995,
            lower_order_final=True,
            use_lu_lambdas=not spacing,
        )
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(
            config, predict_x0=True, thresholding=True, sample_max_value=1.0, dynamic_thresholding_ratio=0.995
        )
    raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")


class ClassConditionalDDPMPipeline(DiffusionPipeline):
    """Sample a class-conditional ``UNet2DModel`` with optional classifier-free guidance.

    The UNet has ``num_class_embeds = num_classes + 1``; the last index is the "null" class used
    for the unconditional branch of guidance.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler, image_size: int | None = None) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        # a UNet trained on padded images (28 px padded to 32) returns its centre ``image_size`` pixels
        self.register_to_config(image_size=image_size)

    @property
    def null_class(self) -> int:
        return int(self.unet.config.num_class_embeds) - 1

    @torch.no_grad()
    def postprocess(self, image: torch.Tensor, output_type: str = "pil") -> Any:
        """UNet-space samples in [-1, 1] -> the centre ``image_size`` pixels (padded training) as PIL images or an
        (N, H, W, C) array in [0, 1]."""
        size = image.shape[-1]
        crop = getattr(self.config, "image_size", None)
        if crop and crop < size:
            left = (size - crop) // 2
            image = image[..., left : left + crop, left : left + crop]
        image = (image / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
        return numpy_to_pil(image) if output_type == "pil" else image

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int] | torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
        progress: bool = False,
    ) -> ImagePipelineOutput | tuple:
        labels = torch.as_tensor(class_labels, device=self.device, dtype=torch.long).reshape(-1)
        if labels.numel() and int(labels.max()) >= self.null_class:
            raise ValueError(f"class label {int(labels.max())} out of range: the model has {self.null_class} classes")
        cfg = self.unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        shape = (labels.numel(), cfg.in_channels, size, size)
        image = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        image = image * self.scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        use_cfg = guidance_scale != 1.0
        cond = torch.cat([labels, torch.full_like(labels, self.null_class)]) if use_cfg else labels
        for t in self.progress_bar(self.scheduler.timesteps) if progress else self.scheduler.timesteps:
            model_in = torch.cat([image, image]) if use_cfg else image
            model_in = self.scheduler.scale_model_input(model_in, t)
            out = self.unet(model_in, t, class_labels=cond).sample
            if use_cfg:
                out_c, out_u = out.chunk(2)
                out = out_u + guidance_scale * (out_c - out_u)
            image = self.scheduler.step(out, t, image, **step_kwargs).prev_sample
        image = self.postprocess(image, output_type)
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


def padded_resolution(resolution: int, levels: int) -> int:
    """``resolution`` rounded up to a multiple of ``2**(levels-1)``, the sizes a UNet of ``levels`` levels takes."""
    factor = 2 ** (levels - 1)
    return -(-resolution // factor) * factor


def build_unet(
    num_classes: int,
    resolution: int,
    channels: int,
    block_out_channels: Sequence[int] = (64, 128, 128),
    layers_per_block: int = 2,
    attention_levels: Sequence[bool] | None = None,
    norm_num_groups: int = 32,
    attention_head_dim: int | None = None,
    mid_block_attention: bool = True,
) -> UNet2DModel:
    """A class-conditional UNet2DModel with one extra null class for classifier-free guidance.

    ``attention_head_dim=None`` gives one attention head per block (on a 2-core CPU, 8 heads of 8
    channels at 64 channels made a training step 11-25% slower than one head).
    """
    levels = len(block_out_channels)
    factor = 2 ** (levels - 1)
    if resolution % factor:
        good = sorted({r for r in (28, 32, 64, 128, 256) if r % factor == 0})
        raise ValueError(
            f"resolution {resolution} is not divisible by {factor} (the UNet downsamples {levels - 1} times); "
            f"use one of {good} or change block_out_channels"
        )
    if attention_levels is None:
        attention_levels = [False] * (levels - 1) + [True]
    if len(attention_levels) != levels:
        raise ValueError("attention_levels needs one entry per block_out_channels entry")
    groups = min([norm_num_groups] + [c for c in block_out_channels])
    if any(c % groups for c in block_out_channels):
        raise ValueError(f"block_out_channels {tuple(block_out_channels)} must all be divisible by {groups}")
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention_levels))
    return UNet2DModel(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=layers_per_block,
        block_out_channels=tuple(block_out_channels),
        down_block_types=down,
        up_block_types=up,
        num_class_embeds=num_classes + 1,
        norm_num_groups=groups,
        attention_head_dim=attention_head_dim,
        add_attention=mid_block_attention,
    )


@GENERATORS.register("ddpm")
class DDPMGenerator(Generator):
    """Class-conditional pixel-space DDPM trained from scratch (``train_scripts/train_ddpm.py``)."""

    backend = "ddpm"

    def __init__(self, pipeline: ClassConditionalDDPMPipeline, info: GeneratorInfo, **kwargs: Any) -> None:
        super().__init__(info, **kwargs)
        self.pipeline = pipeline
        self._train_scheduler_config = dict(pipeline.scheduler.config)

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    def to(self, device: Any) -> "DDPMGenerator":
        self.pipeline.to(device)
        return self

    def resolve_settings(
        self, num_inference_steps: int | None, guidance_scale: float | None, scheduler: str | None
    ) -> dict[str, Any]:
        """As the base class, except that the ancestral ``ddpm`` sampler always runs all T training steps:
        the settings (and so the provenance columns and manifest) record the steps actually run."""
        settings = super().resolve_settings(num_inference_steps, guidance_scale, scheduler)
        if settings["scheduler"] == "ddpm":
            steps = int(self._train_scheduler_config["num_train_timesteps"])
            if num_inference_steps is not None and int(num_inference_steps) != steps:
                logger.info("the ddpm sampler runs all %d training steps; num_inference_steps=%s is ignored",
                            steps, num_inference_steps)
            settings["num_inference_steps"] = steps
        return settings

    def _generate_batch(
        self, class_index: int, seeds: Sequence[int], num_inference_steps: int, guidance_scale: float, scheduler: str, **kwargs: Any
    ) -> list[Image.Image]:
        if kwargs:
            raise TypeError(f"the ddpm generator takes no {sorted(kwargs)}")
        self.pipeline.scheduler = make_scheduler(scheduler, self._train_scheduler_config)
        if scheduler == "ddpm":
            num_inference_steps = self._train_scheduler_config["num_train_timesteps"]
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        # draw the initial noise on CPU so results match across devices
        out = self.pipeline(
            [class_index] * len(seeds),
            generator=gens,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
        )
        return out.images

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Save the pipeline with its training noise scheduler (not the last sampler used) and the info."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        sampler = self.pipeline.scheduler
        self.pipeline.scheduler = DDPMScheduler.from_config(self._train_scheduler_config)
        try:
            self.pipeline.save_pretrained(directory)
        finally:
            self.pipeline.scheduler = sampler
        self.info.save(directory)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
        torch_dtype: torch.dtype | None = None, **kwargs: Any
    ) -> "DDPMGenerator":
        pipe, info = load_pipeline(cls.backend, path_or_repo_id, revision, device, torch_dtype, **kwargs)
        return cls(pipe, info, source=str(path_or_repo_id), revision=revision)


def load_pipeline(backend: str, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
                  torch_dtype: torch.dtype | None = None, **kwargs: Any) -> tuple["ClassConditionalDDPMPipeline", GeneratorInfo]:
    """The class-conditional pipeline and ``synthxray.json`` of a ``backend`` folder or Hub repo (ddpm and its distilled
    consistency student share it), on ``device`` (default: cuda when available)."""
    local = resolve_pretrained_dir(path_or_repo_id, revision=revision)
    info = GeneratorInfo.load(local)
    if info.backend != backend:
        raise ValueError(f"{path_or_repo_id} holds a {info.backend!r} generator, not {backend!r}; use load_generator")
    pipe = ClassConditionalDDPMPipeline.from_pretrained(local, torch_dtype=torch_dtype, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    if device:
        pipe.to(device)
    elif torch.cuda.is_available():
        pipe.to("cuda")
    return pipe, info
