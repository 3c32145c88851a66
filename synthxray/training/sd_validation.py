"""Validation grids during Stable Diffusion fine-tuning, sampled with the weights being trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..generators.stable_diffusion import make_sd_scheduler
from ..images import image_grid
from .sd_config import StableDiffusionTrainingConfig
from .sd_data import Concept


def validation_prompts(cfg: StableDiffusionTrainingConfig, concepts: list[Concept]) -> list[tuple[str, str]]:
    """(row label, prompt) pairs; a prompt with {label} gives one row per class."""
    if not cfg.validation_prompt:
        return []
    if "{label}" in cfg.validation_prompt:
        return [(c.name, cfg.validation_prompt.format(label=c.name)) for c in concepts]
    return [(concepts[0].name if len(concepts) == 1 else "", cfg.validation_prompt)]


@torch.no_grad()
def save_validation_grid(
    cfg: StableDiffusionTrainingConfig, modules: dict[str, Any], tokenizer, noise_scheduler, prompts: list[tuple[str, str]],
    grayscale: bool, folder: Path, step: int, accelerator,
) -> Path:
    """Sample ``num_validation_images`` per prompt with the weights being trained; save and log the grid."""
    from diffusers import StableDiffusionPipeline

    unet, text_encoder, vae = modules["unet"], modules["text_encoder"], modules["vae"]
    vae.to(accelerator.device)
    text_encoder.to(accelerator.device)
    was_training = {m: m.training for m in (unet, text_encoder)}
    for m in was_training:
        m.eval()  # no LoRA or text-encoder dropout in the grid
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=make_sd_scheduler(cfg.sample_scheduler, noise_scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    n = cfg.num_validation_images
    images = []
    with accelerator.autocast():
        for _, prompt in prompts:
            images.extend(pipe(
                [prompt] * n, negative_prompt=[cfg.negative_prompt] * n if cfg.negative_prompt else None,
                num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance_scale, height=cfg.resolution, width=cfg.resolution,
                generator=[torch.Generator("cpu").manual_seed(cfg.seed + i) for i in range(n)],
            ).images)
    if grayscale:
        images = [im.convert("L") for im in images]
    grid = image_grid(images, n, labels=[label for label, _ in prompts] if any(label for label, _ in prompts) else None)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:06d}.png"
    grid.save(path)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            import numpy as np

            tracker.writer.add_image("validation", np.asarray(grid.convert("RGB")), step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": [wandb.Image(grid)]}, step=step)
    for m, training in was_training.items():
        m.train(training)
    return path
