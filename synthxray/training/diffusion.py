"""The denoising objective shared by the pixel DDPM and the latent Stable Diffusion trainers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def add_noise(noise_scheduler, clean: torch.Tensor, generator: torch.Generator | None = None):
    """Sample noise and timesteps and return ``(noisy, noise, timesteps)``."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device, generator=generator
    ).long()
    return noise_scheduler.add_noise(clean, noise, timesteps), noise, timesteps


def diffusion_target(noise_scheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the network predicts: the noise (epsilon) or the velocity (v_prediction)."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(clean, noise, timesteps)
    if kind == "sample":
        return clean
    raise ValueError(f"unknown prediction_type {kind!r}")


def diffusion_loss(
    noise_scheduler,
    model_pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    snr_gamma: float | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """MSE, optionally with min-SNR-gamma weighting (Hang et al. 2023).

    With ``reduce=False`` the per-sample losses are returned (for prior preservation splits).
    """
    per_sample = F.mse_loss(model_pred.float(), target.float(), reduction="none").mean(dim=list(range(1, model_pred.ndim)))
    if snr_gamma:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(noise_scheduler, timesteps)
        weights = torch.stack([snr, snr_gamma * torch.ones_like(snr)], dim=1).min(dim=1)[0]
        if noise_scheduler.config.prediction_type == "epsilon":
            weights = weights / snr
        elif noise_scheduler.config.prediction_type == "v_prediction":
            weights = weights / (snr + 1)
        per_sample = per_sample * weights
    return per_sample.mean() if reduce else per_sample
