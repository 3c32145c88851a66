"""Class images for prior preservation: the ones in --class_data_dir, topped up by the base model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..generators.stable_diffusion import dtype_kwargs, make_sd_scheduler
from .sd_config import PRECISIONS, StableDiffusionTrainingConfig
from .sd_data import image_files
from .sd_parts import BaseModel

logger = logging.getLogger("synthxray.training")


def ensure_class_images(cfg: StableDiffusionTrainingConfig, base: BaseModel, accelerator) -> list[Path]:
    """The class images for prior preservation; the base model generates those missing."""
    folder = Path(cfg.class_data_dir or "")
    folder.mkdir(parents=True, exist_ok=True)
    have = image_files(folder)
    missing = cfg.num_class_images - len(have)
    if missing > 0 and accelerator.is_main_process:
        logger.info("generating %d class images of %r with the base model into %s", missing, cfg.class_prompt, folder)
        generate_class_images(cfg, base, folder, len(have), missing, accelerator.device)
    accelerator.wait_for_everyone()
    return image_files(folder)[: cfg.num_class_images]


@torch.no_grad()
def generate_class_images(cfg: StableDiffusionTrainingConfig, base: BaseModel, folder: Path, first: int, count: int, device: torch.device) -> None:
    from diffusers import StableDiffusionPipeline
    from tqdm.auto import tqdm

    dtype = PRECISIONS[cfg.prior_generation_precision] if cfg.prior_generation_precision else (torch.float16 if device.type == "cuda" else torch.float32)
    pipe = StableDiffusionPipeline.from_pretrained(
        base.source, **dtype_kwargs(dtype), variant=cfg.variant, safety_checker=None, requires_safety_checker=False, **base.load_kwargs()
    )
    pipe.scheduler = make_sd_scheduler(cfg.sample_scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    index = first
    for start in tqdm(range(0, count, cfg.sample_batch_size), desc="class images"):
        n = min(cfg.sample_batch_size, count - start)
        seeds = [cfg.seed + first + start + i for i in range(n)]
        images = pipe(
            [cfg.class_prompt] * n, negative_prompt=[cfg.negative_prompt] * n if cfg.negative_prompt else None,
            num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance_scale, height=cfg.resolution, width=cfg.resolution,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        ).images
        for im in images:
            while (folder / f"class_{index:05d}.png").exists():
                index += 1
            tmp = folder / f".class_{index:05d}.png.tmp"
            im.save(tmp, format="PNG")
            os.replace(tmp, folder / f"class_{index:05d}.png")
    del pipe
    if device.type == "cuda":
        torch.cuda.empty_cache()
