"""Tiny GAN / VAE training configs shared by the tests (importable as ``tiny_oneshot``)."""

from __future__ import annotations

from pathlib import Path

GAN_TINY = dict(resolution=16, generator_channels=16, discriminator_channels=16, min_channels=8, latent_dim=8,
                train_batch_size=8, max_train_steps=4, checkpointing_steps=0, save_images_steps=0, seed=0)
VAE_TINY = dict(resolution=16, base_channels=8, max_channels=16, latent_dim=4, train_batch_size=8, max_train_steps=4,
                checkpointing_steps=0, save_images_steps=0, seed=0)


def gan_config(npz: Path, output_dir: Path, **overrides):
    from synthxray.training.gan import GANTrainingConfig

    return GANTrainingConfig(dataset=str(npz), output_dir=str(output_dir), **{**GAN_TINY, **overrides})


def vae_config(npz: Path, output_dir: Path, **overrides):
    from synthxray.training.vae import VAETrainingConfig

    return VAETrainingConfig(dataset=str(npz), output_dir=str(output_dir), **{**VAE_TINY, **overrides})


def train_gan(npz: Path, output_dir: Path, **overrides) -> Path:
    from synthxray.training.gan import train

    return train(gan_config(npz, output_dir, **overrides))


def train_vae(npz: Path, output_dir: Path, **overrides) -> Path:
    from synthxray.training.vae import train

    return train(vae_config(npz, output_dir, **overrides))
