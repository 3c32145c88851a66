"""Networks of the one-pass baselines (GAN generators/discriminators, the VAE): diffusers
``ModelMixin`` + ``ConfigMixin`` classes, so each saves as ``config.json`` + safetensors."""

from .common import resolution_plan
from .gan import ConvDiscriminator, ConvGenerator, TorchvisionDiscriminator
from .vae import ConvVAE

__all__ = ["ConvDiscriminator", "ConvGenerator", "ConvVAE", "TorchvisionDiscriminator", "resolution_plan"]
