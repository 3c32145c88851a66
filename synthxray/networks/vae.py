"""Seed 000's convolutional VAE as a diffusers ``ModelMixin`` + ``ConfigMixin``, optionally class-conditional."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .common import resolution_plan


class ConvVAE(ModelMixin, ConfigMixin):
    """Encoder: strided 4x4 convs + ReLU down to ``(C, s, s)``, then linear ``mu`` and ``log var`` (latent 64).
    Decoder: the mirror, transposed convs up to the image, tanh. At 28 px with ``base_channels=32`` this is
    seed 000's network (28 -> 14x32 -> 7x64 -> z; z -> 7x64 -> 14x32 -> 28).

    A class-conditional VAE (``num_classes > 0``) gives the encoder one-hot label planes and the decoder
    the one-hot label next to ``z`` (Sohn et al. 2015).
    """

    @register_to_config
    def __init__(
        self,
        image_channels: int = 1,
        resolution: int = 28,
        latent_dim: int = 64,
        num_classes: int = 0,
        base_channels: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        start, blocks = resolution_plan(resolution, "the VAE")
        chans = [min(max_channels, base_channels * 2**i) for i in range(blocks)]  # high resolution -> low
        self.start = start
        layers: list[nn.Module] = []
        cin = image_channels + num_classes
        for cout in chans:
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(True)]
            cin = cout
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = chans[-1] * start * start
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)
        self.fc_dec = nn.Linear(latent_dim + num_classes, flat)
        up: list[nn.Module] = []
        rev = list(reversed(chans))
        for a, b in zip(rev[:-1], rev[1:]):
            up += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU(True)]
        up += [nn.ConvTranspose2d(rev[-1], image_channels, 4, 2, 1), nn.Tanh()]
        self.decoder = nn.Sequential(*up)

    def _onehot(self, class_labels: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        k = self.config.num_classes
        if not k:
            return None
        if class_labels is None:
            raise ValueError("this VAE is class-conditional: pass class_labels")
        return F.one_hot(class_labels, k).to(dtype)

    def encode(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = self._onehot(class_labels, x.dtype)
        if onehot is not None:
            x = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        onehot = self._onehot(class_labels, z.dtype)
        if onehot is not None:
            z = torch.cat([z, onehot], 1)
        h = F.relu(self.fc_dec(z)).view(z.shape[0], -1, self.start, self.start)
        return self.decoder(h)

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """``(reconstruction, mu, logvar)`` with the reparameterisation trick."""
        mu, logvar = self.encode(x, class_labels)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        recon = self.decode(mu + eps * torch.exp(0.5 * logvar), class_labels)
        return recon, mu, logvar
