"""A few-step generator distilled from a class-conditional DDPM: the teacher's UNet2DModel, trained by
consistency distillation (``synthxray/training/consistency.py``), sampled with diffusers' ``LCMScheduler``
in 1 to ``original_inference_steps`` network evaluations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from diffusers import LCMScheduler
from PIL import Image

from .base import GENERATORS, Generator, GeneratorInfo
from .ddpm import ClassConditionalDDPMPipeline, load_pipeline

SAMPLER = "lcm"  # the only sampler: the multistep consistency sampler of Luo et al. 2023 (diffusers' LCMScheduler)
SIGMA_DATA = 0.5  # LCMScheduler's boundary-condition constant


def make_consistency_scheduler(teacher_config: dict[str, Any], num_solver_steps: int, timestep_scaling: float = 10.0) -> LCMScheduler:
    """The LCM scheduler on the teacher's noise schedule (betas, T, prediction type), whose solver grid
    has ``num_solver_steps`` points ``k - 1, 2k - 1, ..., T - 1`` (``k = T // num_solver_steps``).

    Predicted clean images are clipped to [-1, 1], as the teacher's samplers do."""
    keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    config = {k: v for k, v in dict(teacher_config).items() if k in keep}
    return LCMScheduler(**config, original_inference_steps=num_solver_steps, timestep_scaling=timestep_scaling,
                        clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True)


def boundary_scalings(timesteps: torch.Tensor, timestep_scaling: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out)`` per timestep, the formula of ``LCMScheduler.get_scalings_for_boundary_condition_discrete``
    (``f(x, 0) = x``: the consistency function is the identity at t = 0), as (N, 1, 1, 1) tensors."""
    scaled = timesteps.float() * timestep_scaling
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


@GENERATORS.register("consistency")
class ConsistencyGenerator(Generator):
    """A class-conditional UNet2DModel distilled into a consistency model: 1 network evaluation per image
    and step, ``num_inference_steps`` from 1 to the distillation's solver steps (default: the saved one).

    ``synthxray.json``'s ``base_model``/``base_model_revision`` name the teacher; ``extra["distillation"]``
    holds how it was distilled."""

    backend = "consistency"

    def __init__(self, pipeline: ClassConditionalDDPMPipeline, info: GeneratorInfo, **kwargs: Any) -> None:
        super().__init__(info, **kwargs)
        if not isinstance(pipeline.scheduler, LCMScheduler):
            raise ValueError(f"a consistency generator samples with LCMScheduler, got {type(pipeline.scheduler).__name__}")
        self.pipeline = pipeline

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def max_steps(self) -> int:
        """The most evaluations a sample can take: the distillation's solver grid."""
        return int(self.pipeline.scheduler.config.original_inference_steps)

    def to(self, device: Any) -> "ConsistencyGenerator":
        self.pipeline.to(device)
        return self

    def resolve_settings(self, num_inference_steps: int | None, guidance_scale: float | None, scheduler: str | None) -> dict[str, Any]:
        """Steps 1..``max_steps`` (default: the saved one). The sampler is always ``lcm``; guidance was folded in at
        distillation (``extra["distillation"]["guidance_scale"]``), so only 1.0 is accepted."""
        if scheduler not in (None, SAMPLER):
            raise ValueError(
                f"the {self.backend} generator samples with its consistency sampler only; --scheduler {scheduler!r} does "
                f"not apply (drop it, or pass {SAMPLER!r})"
            )
        if guidance_scale not in (None, 1.0):
            raise ValueError(
                f"the {self.backend} generator has its teacher's guidance built in; guidance_scale={guidance_scale} does not "
                "apply (drop --guidance_scale; distil with --guidance_scale to change it)"
            )
        steps = int(self.default("num_inference_steps", 4) if num_inference_steps is None else num_inference_steps)
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"num_inference_steps must be in 1..{self.max_steps} for this {self.backend} generator, got {steps}")
        return {"num_inference_steps": steps, "guidance_scale": 1.0, "scheduler": SAMPLER}

    def _generate_batch(self, class_index: int, seeds: Sequence[int], num_inference_steps: int, guidance_scale: float,
                        scheduler: str, **kwargs: Any) -> list[Image.Image]:
        if kwargs:
            raise TypeError(f"the {self.backend} generator takes no {sorted(kwargs)}")
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]  # noise on the CPU: same images on any device
        out = self.pipeline([class_index] * len(seeds), generator=gens, num_inference_steps=num_inference_steps, guidance_scale=1.0)
        return out.images

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """The pipeline (UNet + LCMScheduler) and ``synthxray.json``."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.pipeline.save_pretrained(directory)
        self.info.save(directory)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
                        torch_dtype: torch.dtype | None = None, **kwargs: Any) -> "ConsistencyGenerator":
        pipe, info = load_pipeline(cls.backend, path_or_repo_id, revision, device, torch_dtype, **kwargs)
        return cls(pipe, info, source=str(path_or_repo_id), revision=revision)
