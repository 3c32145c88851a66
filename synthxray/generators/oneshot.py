"""What the one-pass backends (GANs, the VAE) share: a latent per image from its own seed, one network
evaluation per image, sampler settings refused, networks saved as ``<folder>/<name>/`` diffusers folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from diffusers import ModelMixin
from PIL import Image

from .base import Generator, GeneratorInfo, resolve_pretrained_dir

UNCONDITIONAL_CLASS = "all"  # the one class of a generator trained without labels


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) in [-1, 1] to PIL images (mode "L" for one channel)."""
    from .ddpm import numpy_to_pil

    arr = (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return numpy_to_pil(arr)


class OneShotGenerator(Generator):
    """A generator that maps a latent ``z`` (drawn on the CPU from the image's seed) to an image in one pass.

    Subclasses set ``backend``, ``network_class`` and ``network_folder`` and implement ``_decode``.
    """

    network_class: type[ModelMixin]
    network_folder: str = ""

    def __init__(self, network: ModelMixin, info: GeneratorInfo, extra_networks: dict[str, ModelMixin] | None = None, **kwargs: Any) -> None:
        super().__init__(info, **kwargs)
        self.network = network.eval()
        self.extra_networks = dict(extra_networks or {})  # saved next to the generator (a GAN's discriminator)

    @property
    def conditional(self) -> bool:
        return bool(self.network.config.num_classes)

    @property
    def latent_dim(self) -> int:
        return int(self.network.config.latent_dim)

    @property
    def device(self) -> torch.device:
        return self.network.device

    def to(self, device: Any) -> "OneShotGenerator":
        self.network.to(device)
        return self

    def resolve_settings(self, num_inference_steps: int | None, guidance_scale: float | None, scheduler: str | None) -> dict[str, Any]:
        """One network evaluation per image: there is no sampler to set. ``num_inference_steps=1`` (what is
        recorded in generated datasets) is accepted; any other sampler setting is an error."""
        bad = [f"{name}={value!r}" for name, value, ok in (
            ("num_inference_steps", num_inference_steps, num_inference_steps in (None, 1)),
            ("scheduler", scheduler, scheduler is None),
            ("guidance_scale", guidance_scale, guidance_scale is None),
        ) if not ok]
        if bad:
            raise ValueError(
                f"the {self.backend} generator makes each image in one network evaluation; {', '.join(bad)} does not apply "
                "(drop --num_inference_steps/--scheduler/--guidance_scale for this generator)"
            )
        return {"num_inference_steps": 1, "guidance_scale": None, "scheduler": None}

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """One standard-normal latent per seed, drawn on the CPU so every machine makes the same images."""
        return torch.stack([torch.randn(self.latent_dim, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds])

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def _generate_batch(self, class_index: int, seeds: Sequence[int], num_inference_steps: int, guidance_scale: float | None,
                        scheduler: str | None, **kwargs: Any) -> list[Image.Image]:
        if kwargs:
            raise TypeError(f"the {self.backend} generator takes no {sorted(kwargs)}")
        param = next(self.network.parameters())
        z = self.latents(seeds).to(param.device, param.dtype)
        labels = torch.full((len(seeds),), class_index, dtype=torch.long, device=param.device) if self.conditional else None
        self.network.eval()
        return tensor_to_pil(self._decode(z, labels))

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """``<directory>/<network_folder>/`` (config.json + safetensors) per network, plus ``synthxray.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.network.save_pretrained(directory / self.network_folder)
        for name, net in self.extra_networks.items():
            net.save_pretrained(directory / name)
        self.info.save(directory)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None,
                        torch_dtype: torch.dtype | None = None, **kwargs: Any) -> "OneShotGenerator":
        local = resolve_pretrained_dir(path_or_repo_id, revision=revision)
        info = GeneratorInfo.load(local)
        if info.backend != cls.backend:
            raise ValueError(f"{path_or_repo_id} holds a {info.backend!r} generator, not {cls.backend!r}; use load_generator")
        net = cls.network_class.from_pretrained(local / cls.network_folder, torch_dtype=torch_dtype, **kwargs)
        gen = cls(net, info, source=str(path_or_repo_id), revision=revision)
        return gen.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
