"""Classifier backbones: one registry, one module per family (as timm keeps its models).

``create_backbone(name, num_classes, in_channels, image_size, **options)`` builds one;
``list_backbones()`` names them; a new family registers itself with ``@register_backbone(name)``.
The wrapper that feeds a backbone ``[0, 1]`` pixels and saves/loads it is
:mod:`synthxray.experiments.classifier`.
"""

from . import clip, cnn, densenet, dinov2, resnet, vit  # noqa: F401  (each registers its backbones)
from .base import BACKBONES, RANDOM_WEIGHTS, TINY_OPTIONS, Built, create_backbone, list_backbones, register_backbone

__all__ = ["BACKBONES", "RANDOM_WEIGHTS", "TINY_OPTIONS", "Built", "create_backbone", "list_backbones", "register_backbone"]
