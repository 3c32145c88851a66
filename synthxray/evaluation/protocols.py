"""FID protocols: how an image becomes the network's input, as each FID library does it.

The network (e.g. TF-Inception) is the same under every protocol; what differs is how an image of
any size reaches its input size ``S`` (299 px for Inception). Every protocol starts from the same
8-bit pixels (``to_uint8_rgb(image, None)``: 16-bit / float images rescaled, grayscale repeated to
RGB) and hands the extractor float values in 0..255, shape ``(N, 3, S, S)``:

- ``torch-fidelity`` (the default): the whole image, resized in float with torch-fidelity's own
  ``interpolate_bilinear_2d_like_tensorflow1x`` (TF1 bilinear, ``align_corners=False``), as its
  ``inception-v3-compat`` extractor does inside the network.
- ``clean``: clean-fid's ``mode="clean"`` resize: PIL bicubic on float32, one channel at a time,
  clipped to 0..255 (clean-fid's own ``make_resizer``), whole image.
- ``pytorch-fid``: ``torch.nn.functional.interpolate`` bilinear, ``align_corners=False``, no
  antialiasing (what pytorch-fid's ``InceptionV3(resize_input=True)`` does), whole image.
- ``legacy``: synthxray < 0.3: short side resized with PIL bicubic, centre crop, rounded to uint8.
  Kept only to reproduce old figures; no library computes FID this way.

Numbers from different protocols are not comparable: small images upscaled to 299 px differ most.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..registry import Registry

PROTOCOLS: Registry[type["FIDProtocol"]] = Registry("FID protocol")
DEFAULT_PROTOCOL = "torch-fidelity"


class FIDProtocol:
    """Turns PIL images into the float ``(N, 3, S, S)`` batch (values 0..255) an extractor takes."""

    name = ""
    VERSION = 1  # part of the feature-cache key: bump when the pixels change
    description = ""

    @property
    def identity(self) -> str:
        return f"{self.name}-v{self.VERSION}"

    def resize(self, pixels: np.ndarray, size: int) -> torch.Tensor:
        """uint8 ``(3, H, W)`` at native size -> float ``(3, size, size)`` in 0..255."""
        raise NotImplementedError

    def batch(self, pixels: Sequence[np.ndarray], size: int) -> torch.Tensor:
        """Several uint8 ``(3, H, W)`` images (any sizes) -> float ``(N, 3, size, size)``."""
        return torch.stack([self.resize(p, int(size)) for p in pixels])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@PROTOCOLS.register("torch-fidelity")
class TorchFidelityProtocol(FIDProtocol):
    name = "torch-fidelity"
    description = ("torch-fidelity (inception-v3-compat): whole image, TF1-style bilinear resize in float "
                   "(torch_fidelity.interpolate_compat_tensorflow)")

    def resize(self, pixels: np.ndarray, size: int) -> torch.Tensor:
        return tf1_bilinear(torch.from_numpy(np.ascontiguousarray(pixels))[None], size)[0]


def tf1_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` to ``size`` x ``size``, on float32."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = x.to(torch.float32)
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)


@PROTOCOLS.register("clean")
class CleanProtocol(FIDProtocol):
    name = "clean"
    description = "clean-fid (mode=clean): whole image, PIL bicubic on float32 per channel, clipped to 0..255"

    def __init__(self) -> None:
        self._resizers: dict[int, Any] = {}

    def _resizer(self, size: int):
        if size not in self._resizers:
            self._resizers[size] = _clean_resizer(size)
        return self._resizers[size]

    def resize(self, pixels: np.ndarray, size: int) -> torch.Tensor:
        out = self._resizer(size)(np.ascontiguousarray(pixels.transpose(1, 2, 0)))  # (S, S, 3) float32
        return torch.from_numpy(np.ascontiguousarray(np.asarray(out, dtype=np.float32).transpose(2, 0, 1)))


def _clean_resizer(size: int):
    """clean-fid's own resize function (``make_resizer("PIL", False, "bicubic", (S, S))``, what
    ``build_resizer("clean")`` builds at 299 px); the same operation in PIL when clean-fid is absent."""
    try:
        from cleanfid.resize import make_resizer
    except ImportError:
        def func(x: np.ndarray) -> np.ndarray:  # clean-fid's resize_single_channel, for each channel
            chans = [np.asarray(Image.fromarray(x[:, :, c].astype(np.float32), mode="F")
                                .resize((size, size), resample=Image.Resampling.BICUBIC)).clip(0, 255)
                     for c in range(x.shape[2])]
            return np.stack(chans, axis=2).astype(np.float32)

        return func
    return make_resizer("PIL", False, "bicubic", (size, size))


@PROTOCOLS.register("pytorch-fid")
class PytorchFidProtocol(FIDProtocol):
    name = "pytorch-fid"
    description = "pytorch-fid: whole image, torch bilinear resize (align_corners=False, no antialiasing) in float"

    def resize(self, pixels: np.ndarray, size: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(pixels))[None].to(torch.float32)
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x[0]


@PROTOCOLS.register("legacy")
class LegacyProtocol(FIDProtocol):
    name = "legacy"
    description = ("synthxray legacy (< 0.3): short side PIL bicubic (antialiased), centre crop, rounded to uint8; "
                   "matches no FID library")

    def resize(self, pixels: np.ndarray, size: int) -> torch.Tensor:
        from ..data import resize_center_crop

        image = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")
        arr = np.asarray(resize_center_crop(image, size), dtype=np.uint8)  # PIL resizes each channel alike
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)


def list_protocols() -> list[str]:
    return PROTOCOLS.names()


def get_protocol(spec: str | FIDProtocol | None = None) -> FIDProtocol:
    """A protocol by name (``torch-fidelity`` when ``None``), or the instance given."""
    if isinstance(spec, FIDProtocol):
        return spec
    name = DEFAULT_PROTOCOL if spec is None else str(spec).lower().replace("_", "-")
    aliases = {"torch_fidelity": "torch-fidelity", "torchfidelity": "torch-fidelity", "clean-fid": "clean",
               "cleanfid": "clean", "pytorch_fid": "pytorch-fid", "pytorchfid": "pytorch-fid"}
    name = aliases.get(name, name)
    if name not in PROTOCOLS:
        raise ValueError(f"unknown FID protocol {spec!r}; choose from {list_protocols()}")
    return PROTOCOLS.get(name)()


class CleanFidFeatureModel(torch.nn.Module):
    """An extractor as clean-fid's ``custom_feat_extractor``: float batches (N, 3, S, S) in 0..255 -> (N, D)."""

    def __init__(self, extractor: torch.nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)[0]
