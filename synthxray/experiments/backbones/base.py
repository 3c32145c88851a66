"""The backbone registry and the rules every family follows (weights, freezing, announcing random init).

A backbone builder takes ``num_classes``, ``in_channels``, ``image_size`` and its own options and
returns a :class:`Built` network. Families live in their own modules (``cnn``, ``densenet``,
``resnet``, ``vit``, ``dinov2``, ``clip``) and register themselves with :func:`register_backbone`,
as timm's model modules do; :func:`create_backbone` builds one by name.

Pretrained weights are used when they can be had (torchvision weights, a Hub id, a local path);
when none is reachable the backbone starts from random weights and says so: a warning in the log,
``pretrained: false`` plus a ``weights_note`` in every result, and a mark in the results table.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...networks.weights import (  # noqa: F401  (re-exported: the backbones' weight rules live with the networks)
    _FAILED,
    RANDOM_WEIGHTS,
    announce_random,
    read_state,
    short_error,
    torchvision_state,
    torchvision_weights,
)
from ...registry import Registry

logger = logging.getLogger("synthxray.experiments")

BACKBONES: Registry[Callable[..., "Built"]] = Registry("backbone")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
# options that make each backbone tiny (a few thousand parameters, random weights): for tests and smoke runs
TINY_OPTIONS: dict[str, dict[str, Any]] = {}


@dataclass
class Built:
    """A backbone network plus what the wrapper needs to feed it."""

    net: nn.Module
    in_channels: int  # channels the network takes (3 for pretrained backbones)
    mean: Sequence[float]
    std: Sequence[float]
    pretrained: bool
    weights_note: str
    config: dict[str, Any] = field(default_factory=dict)  # options that rebuild this exact architecture offline
    trainable: str = "all"


def register_backbone(name: str, tiny: dict[str, Any] | None = None) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    """Decorator: register a builder under ``name``; ``tiny`` are the options of its test-sized config."""

    def add(builder: Callable[..., Built]) -> Callable[..., Built]:
        BACKBONES.register(name, builder)
        if tiny is not None:
            TINY_OPTIONS[name] = dict(tiny)
        return builder

    return add


def list_backbones() -> list[str]:
    """Names of the registered classifier backbones."""
    return BACKBONES.names()


def create_backbone(name: str, num_classes: int, in_channels: int, image_size: int, **options: Any) -> Built:
    """Build the backbone registered as ``name`` (a KeyError lists the known ones)."""
    return BACKBONES.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options)


def hf_model(backbone: str, model_cls, config_cls, weights: Any, default_id: str, hf_config: dict | None, default_config: dict):
    """A transformers model from a Hub id / local folder, else from a saved or default config with random weights."""
    if hf_config is not None:  # rebuilding a saved classifier: architecture from its config, weights loaded after
        return model_cls(config_cls(**hf_config)), False, "architecture rebuilt from saved config"
    if weights in RANDOM_WEIGHTS:
        return model_cls(config_cls(**default_config)), False, "random initialisation (weights: none requested)"
    source = default_id if weights in ("default", "auto", True) else str(weights)
    if source in _FAILED:
        return model_cls(config_cls(**default_config)), False, announce_random(backbone, source, _FAILED[source])
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    errors = []
    for local_only in ((True,) if offline else (True, False)):
        try:
            model = model_cls.from_pretrained(source, local_files_only=local_only)
            return model, True, f"pretrained weights {source}"
        except Exception as exc:
            errors.append(short_error(exc))
    return model_cls(config_cls(**default_config)), False, announce_random(backbone, source, errors[-1])


def hf_config_dict(config, frozen: bool) -> dict[str, Any]:
    """The whole transformers config (so a saved classifier rebuilds offline), plus whether it was frozen."""
    drop = {"architectures", "transformers_version", "model_type", "torch_dtype", "dtype", "_name_or_path", "_attn_implementation_autoset"}
    out = {k: v for k, v in config.to_dict().items() if k not in drop and not k.startswith("_")}
    out["_synthxray_frozen"] = frozen
    return json.loads(json.dumps(out, default=str))


class PooledHead(nn.Module):
    """A transformer vision encoder plus a linear head on its pooled (CLS) output."""

    def __init__(self, encoder: nn.Module, dim: int, num_classes: int, projection: nn.Module | None = None, interpolate: bool = False):
        super().__init__()
        self.encoder = encoder
        self.projection = projection
        self.head = nn.Linear(dim, num_classes)
        self.interpolate = interpolate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        pooled = self.encoder(pixel_values=x, **kwargs).pooler_output
        if self.projection is not None:
            pooled = self.projection(pooled)
        return self.head(pooled)


def freeze(module: nn.Module, trainable: Callable[[str], bool]) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(trainable(name))


def resolve_freeze(freeze_option: Any, pretrained: bool, backbone: str) -> bool:
    """``freeze: auto`` freezes only when pretrained weights were loaded: frozen random features teach nothing."""
    if freeze_option == "auto":
        if not pretrained:
            logger.warning("%s: random weights, so the layers that would be frozen are trained too (freeze: auto)", backbone)
        return pretrained
    return bool(freeze_option)
