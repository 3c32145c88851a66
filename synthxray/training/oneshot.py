"""What the GAN and VAE trainers share on top of ``training.image_data``: their config fields, the data
loader and the ``synthxray.json`` they write (the run's start and final save are ``image_data``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..data import intensity_of
from ..generators.base import GeneratorInfo
from ..generators.oneshot import UNCONDITIONAL_CLASS
from ..networks.common import resolution_plan
from .common import TrainState, hardware_summary, help_field
from .image_data import ImageDataConfig, image_dataloader, load_image_dataset


@dataclass
class OneShotTrainingConfig(ImageDataConfig):
    """Flags shared by ``train_gan.py`` and ``train_vae.py`` (train_ddpm.py's names where they mean the same)."""

    resolution: int = help_field(32, "Square training resolution: 3..7 times a power of two, 16..512 px (28, 32, 64, 128, 256, ...).")
    conditional: bool = help_field(
        True, "Condition on the class labels, so the model makes labelled images of each class. Without labels "
        f"(--conditional false, seed 000's form) the generator has one class, {UNCONDITIONAL_CLASS!r}.",
    )
    lr_scheduler: str = help_field("constant", "constant (the seeds) | cosine | linear | constant_with_warmup | onecycle.")
    adam_weight_decay: float = help_field(0.0, "Adam weight decay (the seeds: 0).")
    max_grad_norm: float = help_field(0.0, "Gradient clipping norm (0 disables; the seeds do not clip).")
    train_batch_size: int = help_field(64, "Batch size per device (seed 000: 128).")

    def __post_init__(self) -> None:
        super().__post_init__()
        resolution_plan(self.resolution, "this network")  # refuse e.g. 30 px before any data is read


@dataclass
class TrainingData:
    dataset: Any
    class_names: list[str]
    channels: int
    dataloader: torch.utils.data.DataLoader


def load_training_data(cfg: OneShotTrainingConfig) -> TrainingData:
    """The training split as a shuffled DataLoader of ``{"pixel_values": [-1, 1] tensors, "label": long}``."""
    ds, names, channels = load_image_dataset(cfg)
    return TrainingData(ds, names, channels, image_dataloader(cfg, ds, channels))


def generator_info(cfg: OneShotTrainingConfig, backend: str, data: TrainingData, state: TrainState, accelerator,
                   extra: dict[str, Any] | None = None) -> GeneratorInfo:
    """The ``synthxray.json`` of a one-pass generator: no sampler defaults (one evaluation per image)."""
    names = data.class_names if cfg.conditional else [UNCONDITIONAL_CLASS]
    more = {} if cfg.conditional else {"trained_on_classes": data.class_names}
    return GeneratorInfo(
        backend=backend, class_names=names, channels=data.channels, resolution=cfg.resolution,
        data={"source": str(cfg.dataset), "split": cfg.dataset_split, "num_images": len(data.dataset), "intensity": intensity_of(data.dataset)},
        defaults={"num_inference_steps": 1},
        extra={"train_steps": state.step, "network_evaluations_per_image": 1, **more, **(extra or {}),
               "train_config": cfg.to_dict(), "hardware": hardware_summary(accelerator)},
    )
