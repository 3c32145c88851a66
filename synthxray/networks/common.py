"""Shared network helpers: how many 2x up/down blocks a resolution needs, and layer factories."""

from __future__ import annotations

from torch import nn

MIN_RESOLUTION, MAX_RESOLUTION = 16, 512
EXAMPLE_RESOLUTIONS = (28, 32, 48, 56, 64, 96, 112, 128, 224, 256)


def resolution_plan(resolution: int, what: str = "this network") -> tuple[int, int]:
    """``(start, blocks)``: the image is ``start * 2**blocks`` px, ``start`` in 3..7, ``blocks >= 2``.

    28 px (MedMNIST) is 7 * 2**2, 32 px 4 * 2**3, 256 px 4 * 2**6. Other sizes (30, 100, ...) cannot be made
    by 2x transposed-convolution blocks and are refused with the sizes that can.
    """
    resolution = int(resolution)
    start, blocks = resolution, 0
    while start % 2 == 0 and start > 7:
        start //= 2
        blocks += 1
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION or not 3 <= start <= 7 or blocks < 2:
        raise ValueError(
            f"resolution {resolution} cannot be made by {what}: it needs a size of 3..7 times a power of two "
            f"between {MIN_RESOLUTION} and {MAX_RESOLUTION} px (e.g. {', '.join(map(str, EXAMPLE_RESOLUTIONS))})"
        )
    return start, blocks


def channel_plan(blocks: int, lowest: int, minimum: int) -> list[int]:
    """Channels from the lowest resolution upwards: ``lowest`` halved at each 2x block, never below ``minimum``."""
    return [max(minimum, lowest // 2**i) for i in range(blocks)]


def maybe_sn(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    """Wrap a conv/linear layer in spectral normalisation (Miyato et al. 2018) when asked."""
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


def norm_2d(kind: str, channels: int) -> nn.Module:
    """``batch`` | ``layer`` (GroupNorm with one group: per-sample, safe with a gradient penalty) | ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be batch, layer or none, got {kind!r}")
