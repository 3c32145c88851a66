"""Train the ``vae`` baseline (seed 000: latent 64, MSE + KL, Adam 1e-3) with the shared step loop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..generators.vae import VAEGenerator
from ..networks.vae import ConvVAE
from .common import TrainState, help_field, make_lr_scheduler, plan_steps, train_loop
from .image_data import finish, resume_and_track, save_sample_grid, start_run
from .oneshot import OneShotTrainingConfig, generator_info, load_training_data

logger = logging.getLogger("synthxray.training")


@dataclass
class VAETrainingConfig(OneShotTrainingConfig):
    """Flags of ``train_scripts/train_vae.py``. Defaults: seed 000's VAE (latent 64, base width 32, MSE + KL,
    Adam lr 1e-3), class-conditional so it makes labelled images."""

    learning_rate: float = help_field(1e-3, "Adam learning rate (seed 000: 1e-3).")
    latent_dim: int = help_field(64, "Latent size (seed 000: 64).")
    base_channels: int = help_field(32, "Channels after the first 2x downsampling; doubled per block (seed 000: 32, 64).")
    max_channels: int = help_field(256, "Channel ceiling at low resolution (for 128-256 px images).")
    kl_weight: float = help_field(1.0, "Weight of the KL term (1: the plain VAE; <1 trades prior match for sharper reconstructions).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1 or self.base_channels < 1 or self.max_channels < 1:
            raise ValueError("latent_dim, base_channels and max_channels must be >= 1")
        if self.kl_weight < 0:
            raise ValueError("kl_weight must be >= 0")


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, mse, kl)`` per image: summed squared error over pixels + ``kl_weight`` * KL(q(z|x) || N(0, I))."""
    mse = (recon.float() - x.float()).pow(2).flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return mse + kl_weight * kl, mse, kl


def build_vae(cfg: VAETrainingConfig, num_classes: int, channels: int) -> ConvVAE:
    """The VAE (random weights) ``cfg`` describes, class-conditional unless ``--conditional false``."""
    return ConvVAE(image_channels=channels, resolution=cfg.resolution, latent_dim=cfg.latent_dim,
                   num_classes=num_classes if cfg.conditional else 0, base_channels=cfg.base_channels, max_channels=cfg.max_channels)


def make_loss_fn(cfg: VAETrainingConfig, vae: torch.nn.Module, last: dict[str, float]):
    """The loss of one batch (``last`` receives its mse and kl terms, for logging and the model card)."""

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["label"] if cfg.conditional else None
        recon, mu, logvar = vae(batch["pixel_values"], labels)
        loss, mse, kl = vae_loss(recon, batch["pixel_values"], mu, logvar, cfg.kl_weight)
        last.update(mse=mse.item(), kl=kl.item())
        return loss

    return loss_fn


def train(cfg: VAETrainingConfig) -> Path:
    """Train, checkpoint, and save the VAE generator to ``cfg.output_dir``; returns that folder."""
    from accelerate.utils import set_seed

    out, accelerator, data = start_run(cfg, lambda: load_training_data(cfg))
    set_seed(cfg.seed)
    vae = build_vae(cfg, len(data.class_names), data.channels)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    max_steps, _ = plan_steps(cfg, cfg.num_epochs, data.dataloader, accelerator)  # per process
    state = TrainState()
    lr_scheduler = make_lr_scheduler(cfg, optimizer, max_steps, accelerator.num_processes, state=state)
    vae, optimizer, dataloader, lr_scheduler = accelerator.prepare(vae, optimizer, data.dataloader, lr_scheduler)
    resume_and_track(accelerator, cfg, state, "train_vae")
    last: dict[str, float] = {}
    loss_fn = make_loss_fn(cfg, vae, last)

    def make_generator() -> VAEGenerator:
        model = accelerator.unwrap_model(vae)
        info = generator_info(cfg, "vae", data, state, accelerator, extra={
            "architecture": "vae", "losses": {"objective": f"mse_sum + {cfg.kl_weight} * kl", **{k: round(v, 4) for k, v in last.items()}},
            "parameters": {"vae": sum(p.numel() for p in model.parameters()),
                           "decoder": sum(p.numel() for n, p in model.named_parameters() if n.startswith(("fc_dec", "decoder")))},
        })
        return VAEGenerator(model, info)

    def on_step(step: int) -> None:
        if cfg.save_images_steps and step % cfg.save_images_steps == 0 and accelerator.is_main_process:
            save_sample_grid(make_generator(), cfg, out, step, accelerator)
            vae.train()

    logger.info("training a %sVAE on %d classes %s at %dpx, %d channel(s), %d images, %d steps",
                "class-conditional " if cfg.conditional else "", len(data.class_names), data.class_names, cfg.resolution,
                data.channels, len(data.dataset), max_steps)
    started, first_step, seconds_before = time.time(), state.step, state.seconds
    train_loop(accelerator, cfg, state, [vae], optimizer, lr_scheduler, dataloader, loss_fn, max_steps, on_step=on_step)
    accelerator.wait_for_everyone()
    finish(cfg, out, make_generator, state, accelerator, started, first_step, seconds_before)
    accelerator.end_training()
    return out
