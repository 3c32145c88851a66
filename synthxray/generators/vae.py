"""The ``vae`` baseline (seed 000): a convolutional VAE whose decoder makes an image from ``z ~ N(0, I)``."""

from __future__ import annotations

import torch

from ..networks.vae import ConvVAE
from .base import GENERATORS
from .oneshot import OneShotGenerator


@GENERATORS.register("vae")
class VAEGenerator(OneShotGenerator):
    """Decodes a prior sample per image (one decoder pass); class-conditional when trained with labels."""

    backend = "vae"
    network_class = ConvVAE
    network_folder = "vae"

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.network.decode(z, labels)
