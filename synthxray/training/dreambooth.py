"""DreamBooth: fine-tune all of Stable Diffusion's UNet (and optionally its text encoder).

Seed 004's recipe: ``--train_text_encoder --with_prior_preservation --prior_loss_weight 0.5
--learning_rate 1e-6 --train_batch_size 8 --gradient_accumulation_steps 2 --mixed_precision fp16
--resolution 512 --one_model_per_class`` on stabilityai/stable-diffusion-2-1-base. The result is a
plain diffusers ``StableDiffusionPipeline`` folder (one per class sub-folder with
``--one_model_per_class``) plus ``synthxray.json``: an ``sd-dreambooth`` generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..generators.stable_diffusion import make_sd_scheduler
from .common import help_field
from .stable_diffusion import BaseModel, FineTuneMethod, Parts, StableDiffusionTrainingConfig, train_stable_diffusion


@dataclass
class DreamBoothConfig(StableDiffusionTrainingConfig):
    """Flags of ``train_scripts/train_dreambooth.py`` (diffusers' train_dreambooth.py names and defaults)."""

    learning_rate: float = help_field(5e-6, "Peak learning rate (seed 004: 1e-6).")


class DreamBooth(FineTuneMethod):
    backend = "sd-dreambooth"

    def part_dtypes(self, cfg: StableDiffusionTrainingConfig, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        # trained weights stay fp32 (mixed precision autocasts the forward); a frozen text encoder takes weight_dtype
        return {"unet": torch.float32, "text_encoder": torch.float32 if cfg.train_text_encoder else weight_dtype}

    def trainable_parameters(self, cfg: StableDiffusionTrainingConfig, parts: Parts) -> list[torch.nn.Parameter]:
        parts.unet.requires_grad_(True)
        parts.text_encoder.requires_grad_(cfg.train_text_encoder)
        return list(parts.unet.parameters()) + (list(parts.text_encoder.parameters()) if cfg.train_text_encoder else [])

    def save(self, cfg: StableDiffusionTrainingConfig, base: BaseModel, unet, text_encoder, out: Path) -> None:
        from diffusers import StableDiffusionPipeline

        trained = {"unet": unet, **({"text_encoder": text_encoder} if cfg.train_text_encoder else {})}
        # the untrained parts come from the base model at full precision
        pipe = StableDiffusionPipeline.from_pretrained(base.source, variant=cfg.variant, **trained, **base.load_kwargs())
        pipe.scheduler = make_sd_scheduler(cfg.sample_scheduler, pipe.scheduler.config)
        pipe.save_pretrained(out)


def train(cfg: DreamBoothConfig) -> Path:
    """Train and save an ``sd-dreambooth`` generator to ``cfg.output_dir``; returns that folder."""
    return train_stable_diffusion(cfg, DreamBooth())
