"""What the GAN and VAE trainers share on top of ``training.common``: their config fields, the data
loader, the ``synthxray.json`` they write and the final save (model, sample grid, summary, card, push)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import class_names as dataset_class_names
from ..data import is_grayscale, load_dataset, with_image_transform
from ..generators.base import GeneratorInfo
from ..generators.oneshot import UNCONDITIONAL_CLASS, OneShotGenerator
from ..images import class_grid
from ..networks.common import resolution_plan
from .common import TrainingConfig, TrainState, finish_model_folder, hardware_summary, help_field

logger = logging.getLogger("synthxray.training")


@dataclass
class OneShotTrainingConfig(TrainingConfig):
    """Flags shared by ``train_gan.py`` and ``train_vae.py`` (train_ddpm.py's names where they mean the same)."""

    dataset: str = help_field("", "Image folder with class sub-folders, MedMNIST .npz or name, save_to_disk folder, or Hub id.")
    dataset_split: str = help_field("train", "Split to train on.")
    resolution: int = help_field(32, "Square training resolution: 3..7 times a power of two, 16..512 px (28, 32, 64, 128, 256, ...).")
    channels: int | None = help_field(None, "1 or 3; default: 1 when the data is grayscale.")
    num_epochs: int = help_field(50, "Epochs, used when max_train_steps is not set.")
    conditional: bool = help_field(
        True, "Condition on the class labels, so the model makes labelled images of each class. Without labels "
        f"(--conditional false, seed 000's form) the generator has one class, {UNCONDITIONAL_CLASS!r}.",
    )
    lr_scheduler: str = help_field("constant", "constant (the seeds) | cosine | linear | constant_with_warmup | onecycle.")
    adam_weight_decay: float = help_field(0.0, "Adam weight decay (the seeds: 0).")
    max_grad_norm: float = help_field(0.0, "Gradient clipping norm (0 disables; the seeds do not clip).")
    train_batch_size: int = help_field(64, "Batch size per device (seed 000: 128).")
    random_flip: bool = help_field(False, "Random horizontal flips (off: chest anatomy is not mirror-symmetric).")
    save_images_steps: int = help_field(500, "Save a per-class sample grid every N steps (0 disables).")
    num_validation_images: int = help_field(8, "Images per class in each sample grid.")
    logger: str = help_field("none", "none | tensorboard | wandb.")
    max_train_images: int | None = help_field(None, "Use only the first N training images (quick trials).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.dataset:
            raise ValueError("dataset is required (an image folder, .npz, MedMNIST name, dataset folder or Hub id)")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        resolution_plan(self.resolution, "this network")  # refuse e.g. 30 px before any data is read


@dataclass
class TrainingData:
    dataset: Any
    class_names: list[str]
    channels: int
    dataloader: torch.utils.data.DataLoader


def load_training_data(cfg: OneShotTrainingConfig) -> TrainingData:
    """The training split as a shuffled DataLoader of ``{"pixel_values": [-1, 1] tensors, "label": long}``."""
    ds = load_dataset(cfg.dataset, split=cfg.dataset_split)
    if cfg.max_train_images:
        ds = ds.select(range(min(cfg.max_train_images, len(ds))))
    names = dataset_class_names(ds)
    channels = cfg.channels or (1 if is_grayscale(ds) else 3)
    augment = None
    if cfg.random_flip:
        from torchvision.transforms import RandomHorizontalFlip

        augment = RandomHorizontalFlip()
    train_ds = with_image_transform(ds, cfg.resolution, channels, augment)

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.stack([r["pixel_values"] for r in rows]),
            "label": torch.tensor([r["label"] for r in rows], dtype=torch.long),
        }

    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.train_batch_size, shuffle=True, drop_last=len(ds) > cfg.train_batch_size,
        num_workers=cfg.dataloader_num_workers, collate_fn=collate,
    )
    return TrainingData(ds, names, channels, loader)


def generator_info(cfg: OneShotTrainingConfig, backend: str, data: TrainingData, state: TrainState, accelerator,
                   extra: dict[str, Any] | None = None) -> GeneratorInfo:
    """The ``synthxray.json`` of a one-pass generator: no sampler defaults (one evaluation per image)."""
    names = data.class_names if cfg.conditional else [UNCONDITIONAL_CLASS]
    more = {} if cfg.conditional else {"trained_on_classes": data.class_names}
    return GeneratorInfo(
        backend=backend, class_names=names, channels=data.channels, resolution=cfg.resolution,
        data={"source": str(cfg.dataset), "split": cfg.dataset_split, "num_images": len(data.dataset)},
        defaults={"num_inference_steps": 1},
        extra={"train_steps": state.step, "network_evaluations_per_image": 1, **more, **(extra or {}),
               "train_config": cfg.to_dict(), "hardware": hardware_summary(accelerator)},
    )


def save_sample_grid(gen: OneShotGenerator, cfg: OneShotTrainingConfig, out: Path, step: int, accelerator) -> None:
    """``samples/step_XXXXXX.png``: one row per class, the same seeds every time (and to TensorBoard)."""
    grid = class_grid(gen, per_class=cfg.num_validation_images, seed=cfg.seed)
    (out / "samples").mkdir(exist_ok=True)
    grid.save(out / "samples" / f"step_{step:06d}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            import numpy as np

            tracker.writer.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")


def finish(cfg: OneShotTrainingConfig, out: Path, make_generator: Callable[[], OneShotGenerator], state: TrainState,
           accelerator, started: float, first_step: int, seconds_before: float, summary_extra: dict[str, Any] | None = None) -> None:
    """Final save on the main process: the generator folder, a last grid, ``train_summary.json``, the card, push."""
    if not accelerator.is_main_process:
        return
    gen = make_generator()
    gen.info.extra["train_seconds_this_run"] = round(time.time() - started, 1)
    gen.save_pretrained(out)
    if cfg.save_images_steps:
        save_sample_grid(gen, cfg, out, state.step, accelerator)
    run_steps, run_seconds = state.step - first_step, state.elapsed() - seconds_before
    summary = {
        "steps": state.step, "classes": gen.class_names, "channels": gen.info.channels, "train_seconds": round(state.elapsed(), 1),
        "seconds_per_step_this_run": round(run_seconds / run_steps, 4) if run_steps else None, **(summary_extra or {}),
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("saved the %s generator to %s", gen.backend, out)
    finish_model_folder(cfg, out)
