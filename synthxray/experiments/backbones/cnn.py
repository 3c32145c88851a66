"""Seed 001's small CNN, trained from scratch (the one backbone with no pretrained weights)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .base import RANDOM_WEIGHTS, Built, register_backbone


class SmallCNN(nn.Module):
    """Two conv blocks (conv, batch norm, ReLU, max-pool, dropout), then a linear layer."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, widths: Sequence[int] = (32, 64), dropout: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(dropout)]
            prev = w
        self.features = nn.Sequential(*layers)
        side = image_size // (2 ** len(widths))
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(widths)} pooling steps")
        self.classifier = nn.Linear(prev * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_backbone("cnn", tiny={"widths": [4, 8]})
def build_cnn(num_classes: int, in_channels: int, image_size: int, widths: Sequence[int] = (32, 64), dropout: float = 0.25, weights: Any = None) -> Built:
    """Small CNN from scratch; takes 1-channel input directly. ``widths=[4, 8]`` is the tiny config."""
    if weights not in RANDOM_WEIGHTS:
        raise ValueError("the cnn backbone has no pretrained weights; drop the weights option")
    net = SmallCNN(num_classes, in_channels, image_size, tuple(widths), dropout)
    return Built(net, in_channels, [0.5] * in_channels, [0.5] * in_channels, False, "trained from scratch (no pretrained weights exist)",
                 {"widths": list(widths), "dropout": dropout})
