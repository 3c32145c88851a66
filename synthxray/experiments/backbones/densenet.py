"""torchvision DenseNet-121 with seed 004's classifier head."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .base import IMAGENET_MEAN, IMAGENET_STD, RANDOM_WEIGHTS, Built, register_backbone, torchvision_weights


class DenseNetClassifier(nn.Module):
    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.features = features
        self.head = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.features(x))
        f = torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)
        return self.head(f)


@register_backbone("densenet121", tiny={"growth_rate": 4, "block_config": [1, 1], "num_init_features": 8, "hidden": 8, "weights": None})
def build_densenet121(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", hidden: int = 512, dropout: float = 0.5,
    growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16), num_init_features: int = 64,
) -> Built:
    """torchvision DenseNet-121 with seed 004's head (features -> 512, ReLU, dropout 0.5 -> classes), all layers trained.

    Tiny config: ``growth_rate=4, block_config=[1, 1], num_init_features=8, hidden=8`` (random weights).
    """
    from torchvision import models

    factor = 4 * 2 ** (len(block_config) - 1)
    if image_size < factor:
        raise ValueError(f"densenet121 needs image_size >= {factor} (it downsamples {factor}x), got {image_size}")
    standard = (growth_rate, tuple(block_config), num_init_features) == (32, (6, 12, 24, 16), 64)
    if standard:
        model, pretrained, note = torchvision_weights("densenet121", models.densenet121, weights, "IMAGENET1K_V1")
    else:
        if weights not in RANDOM_WEIGHTS and weights != "auto":
            raise ValueError("pretrained weights exist only for the standard DenseNet-121 configuration")
        model, pretrained, note = models.DenseNet(growth_rate, tuple(block_config), num_init_features), False, "random initialisation (custom DenseNet size)"
    net = DenseNetClassifier(model.features, model.classifier.in_features, num_classes, hidden, dropout)
    cfg = {"hidden": hidden, "dropout": dropout, "growth_rate": growth_rate, "block_config": list(block_config), "num_init_features": num_init_features}
    return Built(net, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, cfg)
