"""What the trainers that learn from a labelled image dataset share (DDPM, GAN, VAE): the data flags and
their checks, the dataset and DataLoader, the run's start (nothing is written before the data is read)
and the final save (model, sample grid, ``train_summary.json``, card, push)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from ..data import DataError, is_grayscale, load_dataset, with_image_transform
from ..data import class_names as dataset_class_names
from ..images import class_grid
from .checkpoints import check_output_dir, prepare_output_dir, resume, write_config
from .common import TrainingConfig, TrainState, finish_model_folder, help_field, make_accelerator

logger = logging.getLogger("synthxray.training")

T = TypeVar("T")


@dataclass
class ImageDataConfig(TrainingConfig):
    """Flags of the trainers that read a labelled image dataset (``train_ddpm.py``, ``train_gan.py``, ``train_vae.py``)."""

    dataset: str = help_field("", "Image folder with class sub-folders, MedMNIST .npz or name, save_to_disk folder, or Hub id.")
    dataset_split: str = help_field("train", "Split to train on.")
    resolution: int = help_field(32, "Square training resolution in pixels.")
    channels: int | None = help_field(None, "1 or 3; default: 1 when the data is grayscale.")
    num_epochs: int = help_field(50, "Passes over the training data in total (on N processes too), used when max_train_steps is not set.")
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
        if self.resolution < 1:
            raise ValueError(f"--resolution must be a positive number of pixels, got {self.resolution}")
        if self.num_epochs < 1:
            raise ValueError(f"--num_epochs must be >= 1, got {self.num_epochs}")
        if self.max_train_images is not None and self.max_train_images < 1:
            raise ValueError(f"--max_train_images must be >= 1, got {self.max_train_images}")
        if self.save_images_steps < 0:
            raise ValueError(f"--save_images_steps must be >= 0 (0 disables), got {self.save_images_steps}")
        if self.num_validation_images < 1:
            raise ValueError(f"--num_validation_images must be >= 1, got {self.num_validation_images}")


def load_image_dataset(cfg: ImageDataConfig) -> tuple[Any, list[str], int]:
    """``(dataset, class names, channels)`` of ``--dataset``'s split (``--max_train_images`` applied); an empty split is an error."""
    ds = load_dataset(cfg.dataset, split=cfg.dataset_split)
    if len(ds) == 0:
        raise DataError(f"--dataset {cfg.dataset} (split {cfg.dataset_split!r}) holds no images")
    if cfg.max_train_images:
        ds = ds.select(range(min(cfg.max_train_images, len(ds))))
    channels = cfg.channels or (1 if is_grayscale(ds) else 3)
    return ds, dataset_class_names(ds), channels


def image_dataloader(cfg: ImageDataConfig, ds: Any, channels: int, pad_to: int | None = None) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``{"pixel_values": [-1, 1] tensors, "label": long}`` (``--random_flip`` applied);
    ``pad_to`` larger than ``--resolution`` repeats the edge pixels out to that size (a UNet's 28 -> 32)."""
    augment = None
    if cfg.random_flip:
        from torchvision.transforms import RandomHorizontalFlip

        augment = RandomHorizontalFlip()
    train_ds = with_image_transform(ds, cfg.resolution, channels, augment)
    pad = max((pad_to or cfg.resolution) - cfg.resolution, 0)
    padding = (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([r["pixel_values"] for r in rows])
        if pad:
            pixels = torch.nn.functional.pad(pixels, padding, mode="replicate")
        return {"pixel_values": pixels, "label": torch.tensor([r["label"] for r in rows], dtype=torch.long)}

    return torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.train_batch_size, shuffle=True, drop_last=len(ds) > cfg.train_batch_size,
        num_workers=cfg.dataloader_num_workers, collate_fn=collate,
    )


def start_run(cfg: ImageDataConfig, load: Callable[[], T]) -> tuple[Path, Any, T]:
    """``(output folder, accelerator, load())``: the output folder is checked, the data read (on the main
    process first: the first load may convert and cache it), and only then the folder and its
    ``training_config.json`` written, so a bad flag or dataset leaves nothing on disk."""
    check_output_dir(cfg)
    accelerator = make_accelerator(cfg, log_with=cfg.logger)
    with accelerator.main_process_first():
        data = load()
    out = prepare_output_dir(cfg) if accelerator.is_main_process else Path(cfg.output_dir)
    if accelerator.is_main_process:
        write_config(cfg, out)
    accelerator.wait_for_everyone()
    return out, accelerator, data


def resume_and_track(accelerator, cfg: ImageDataConfig, state: TrainState, project: str, *more_state: Any) -> None:
    """Register ``more_state`` (an EMA; None is skipped) and ``state`` for checkpointing, in that order, resume
    when ``--resume_from_checkpoint`` asks, and start the ``--logger`` trackers as ``project``."""
    for obj in (*more_state, state):
        if obj is not None:
            accelerator.register_for_checkpointing(obj)
    resume(accelerator, cfg, state)
    if accelerator.is_main_process:
        accelerator.init_trackers(project, config={k: str(v) for k, v in cfg.to_dict().items()})


def save_sample_grid(gen: Any, cfg: ImageDataConfig, out: Path, step: int, accelerator) -> None:
    """``samples/step_XXXXXX.png``: one row per class, the same seeds every time (and to TensorBoard)."""
    grid = class_grid(gen, per_class=cfg.num_validation_images, seed=cfg.seed)
    (out / "samples").mkdir(exist_ok=True)
    grid.save(out / "samples" / f"step_{step:06d}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            import numpy as np

            tracker.writer.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")


def finish(cfg: ImageDataConfig, out: Path, make_generator: Callable[[], Any], state: TrainState, accelerator,
           started: float, first_step: int, seconds_before: float, summary_extra: dict[str, Any] | None = None) -> None:
    """Final save on the main process: the generator folder, a last grid, ``train_summary.json``, the card, push.

    ``started`` (``time.time()``), ``first_step`` and ``seconds_before`` are the clock, step and training
    seconds when this run (perhaps resumed) began."""
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
