"""The denoising objective shared by the pixel DDPM and the latent Stable Diffusion trainers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


WEIGHTING_SCHEMES = ("none", "logit_normal", "mode")


def sample_timesteps(
    num_train_timesteps: int,
    n: int,
    device: torch.device | str = "cpu",
    weighting_scheme: str = "none",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    mode_scale: float = 1.29,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` training timesteps in ``[0, T)``: uniform ("none"), or drawn from diffusers' SD3 densities.

    "logit_normal" draws ``t / T = sigmoid(N(logit_mean, logit_std))`` (Esser et al. 2024); "mode" is their
    mode-centred density. Only the sampling density changes; the loss weight per sample does not.
    """
    if weighting_scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"unknown weighting_scheme {weighting_scheme!r}; choose one of {WEIGHTING_SCHEMES}")
    if weighting_scheme == "none":
        return torch.randint(0, num_train_timesteps, (n,), device=device, generator=generator).long()
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(
        weighting_scheme, n, logit_mean=logit_mean, logit_std=logit_std, mode_scale=mode_scale, device=device, generator=generator
    )
    return (u * num_train_timesteps).long().clamp_(0, num_train_timesteps - 1)


def add_noise(noise_scheduler, clean: torch.Tensor, generator: torch.Generator | None = None, **timestep_sampling):
    """Sample noise and timesteps (``timestep_sampling``: the keywords of :func:`sample_timesteps`) and
    return ``(noisy, noise, timesteps)``."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    timesteps = sample_timesteps(
        noise_scheduler.config.num_train_timesteps, clean.shape[0], clean.device, generator=generator, **timestep_sampling
    )
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
