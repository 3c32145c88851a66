"""Differentiable augmentation for GANs on small data (Zhao et al. 2020, "DiffAugment"): the same random
colour / translation / cutout is applied to real and fake images before the discriminator, so it cannot
memorise the few real images while the generator still gets gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    """``"color,translation,cutout"`` -> its parts, each checked; ``""`` -> no augmentation."""
    parts = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown DiffAugment part(s) {bad}; use a comma-separated subset of {','.join(POLICIES)}")
    return parts


def diff_augment(x: torch.Tensor, policy: list[str]) -> torch.Tensor:
    """Augment a batch in [-1, 1]; every operation is differentiable in ``x``."""
    for part in policy:
        x = {"color": _color, "translation": _translation, "cutout": _cutout}[part](x)
    return x


def _rand(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def _color(x: torch.Tensor) -> torch.Tensor:
    x = x + (_rand(x) - 0.5)  # brightness
    if x.shape[1] > 1:  # saturation (meaningless for one channel)
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (_rand(x) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = (gy + ty + 1).clamp(0, h + 1)
    gx = (gx + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[gb, gy, gx].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the image size at a random place per image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - ch // 2, cx - cw // 2
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).to(x.dtype)[:, None]
