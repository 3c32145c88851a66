"""GAN baselines (seeds 000, 002, 003): ``dcgan``, ``wgan-gp``, ``cgan`` and ``acgan`` generators.

They differ in how they were trained (``synthxray.training.gan``); sampling is the same for all: one
``ConvGenerator`` pass per image, its latent drawn from the image's seed. The folder holds
``generator/`` (the weights that make images: the EMA copy when EMA was on) and ``discriminator/``.
"""

from __future__ import annotations

import torch

from ..networks.gan import ConvGenerator
from .base import GENERATORS
from .oneshot import OneShotGenerator

GAN_ARCHITECTURES = ("dcgan", "wgan-gp", "cgan", "acgan")


class GANGenerator(OneShotGenerator):
    """A trained GAN generator; the backend name records the training objective."""

    network_class = ConvGenerator
    network_folder = "generator"

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.network(z, labels)


@GENERATORS.register("dcgan")
class DCGANGenerator(GANGenerator):
    """Seed 000's DCGAN (BCE, Radford et al. 2016), class-conditional by default."""

    backend = "dcgan"


@GENERATORS.register("wgan-gp")
class WGANGPGenerator(GANGenerator):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017; seeds 002, 003)."""

    backend = "wgan-gp"


@GENERATORS.register("cgan")
class CGANGenerator(GANGenerator):
    """Conditional GAN (Mirza & Osindero 2014; seed 002): labels given to both networks."""

    backend = "cgan"


@GENERATORS.register("acgan")
class ACGANGenerator(GANGenerator):
    """Auxiliary-classifier GAN (Odena et al. 2017; seed 002): the discriminator also predicts the class."""

    backend = "acgan"


def gan_generator_class(architecture: str) -> type[GANGenerator]:
    if architecture not in GAN_ARCHITECTURES:
        raise ValueError(f"unknown GAN architecture {architecture!r}; choose one of {', '.join(GAN_ARCHITECTURES)}")
    return GENERATORS.get(architecture)
