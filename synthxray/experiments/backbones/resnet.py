"""torchvision ResNet-18 (seed 001) and ResNet-50 (seed 002)."""

from __future__ import annotations

from typing import Any

from torch import nn

from .base import IMAGENET_MEAN, IMAGENET_STD, RANDOM_WEIGHTS, Built, freeze, register_backbone, resolve_freeze, torchvision_weights

# name: (torchvision builder, block, layers, default weights)
_RESNETS = {"resnet18": ("resnet18", "BasicBlock", (2, 2, 2, 2), "IMAGENET1K_V1"), "resnet50": ("resnet50", "Bottleneck", (3, 4, 6, 3), "IMAGENET1K_V2")}


def _build(name: str, num_classes: int, weights: Any, freeze_option: Any, width: int) -> Built:
    from torchvision import models
    from torchvision.models import resnet

    fn, block_name, layers, default = _RESNETS[name]
    if width == 64:
        model, pretrained, note = torchvision_weights(name, getattr(models, fn), weights, default)
    else:
        if weights not in RANDOM_WEIGHTS and weights != "auto":
            raise ValueError(f"pretrained weights exist only for the standard {name} (width 64)")
        block = getattr(resnet, block_name)
        model, pretrained, note = resnet.ResNet(block, list(layers)), False, f"random initialisation (custom {name} width)"
        _rescale(model, block, layers, width)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    frozen = resolve_freeze(freeze_option, pretrained, name)
    if frozen:
        freeze(model, lambda n: n.startswith(("layer4.", "fc.")))
    return Built(model, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, {"freeze": frozen, "width": width}, "layer4 + head" if frozen else "all")


def _rescale(model: nn.Module, block, layers, width: int) -> None:
    """Rebuild a torchvision ResNet with stage widths (w, 2w, 4w, 8w)."""
    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.layer1 = model._make_layer(block, width, layers[0])
    model.layer2 = model._make_layer(block, width * 2, layers[1], stride=2)
    model.layer3 = model._make_layer(block, width * 4, layers[2], stride=2)
    model.layer4 = model._make_layer(block, width * 8, layers[3], stride=2)
    model.fc = nn.Linear(width * 8 * block.expansion, 1)


@register_backbone("resnet18", tiny={"width": 8, "weights": None})
def build_resnet18(num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", freeze: Any = "auto", width: int = 64) -> Built:
    """torchvision ResNet-18; with pretrained weights all but ``layer4`` and the head are frozen (seed 001).

    ``width`` (default 64) scales every stage; ``width=8`` is the tiny config (random weights).
    """
    return _build("resnet18", num_classes, weights, freeze, width)


@register_backbone("resnet50", tiny={"width": 4, "weights": None})
def build_resnet50(num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", freeze: Any = False, width: int = 64) -> Built:
    """torchvision ResNet-50 (seed 002's CNN classifier: ImageNet weights ``IMAGENET1K_V2``, fine-tuned whole).

    ``freeze: auto`` freezes all but ``layer4`` and the head when pretrained weights loaded; ``width``
    scales every stage (``width=4`` is the tiny config, random weights).
    """
    return _build("resnet50", num_classes, weights, freeze, width)
