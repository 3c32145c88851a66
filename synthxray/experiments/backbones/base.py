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
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...registry import Registry

logger = logging.getLogger("synthxray.experiments")

BACKBONES: Registry[Callable[..., "Built"]] = Registry("backbone")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
RANDOM_WEIGHTS = ("none", "random", None, False)
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


# ---- pretrained weights ----------------------------------------------------------------------
_FAILED: dict[str, str] = {}  # weight sources that could not be loaded in this process: tried once


def announce_random(backbone: str, source: str, reason: str) -> str:
    note = f"RANDOM WEIGHTS: pretrained weights {source!r} for {backbone} could not be loaded ({reason}); training starts from random initialisation"
    if source not in _FAILED:
        banner = "!" * 100
        logger.warning("\n%s\n%s\n%s", banner, note, banner)
    _FAILED[source] = reason
    return note


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text[:160]}"


def torchvision_weights(backbone: str, builder: Callable, weights: Any, default: str, **kwargs: Any):
    """Build a torchvision model with weights: an enum name, 'default', a local file, or none.

    Returns ``(model, pretrained, weights_note)``; unreachable weights give random ones, announced.
    """
    if weights in RANDOM_WEIGHTS:
        return builder(weights=None, **kwargs), False, "random initialisation (weights: none requested)"
    source = default if weights in ("default", "auto", True) else str(weights)
    if source in _FAILED:
        return builder(weights=None, **kwargs), False, announce_random(backbone, source, _FAILED[source])
    try:
        if Path(source).expanduser().is_file():
            model = builder(weights=None, **kwargs)
            model.load_state_dict(read_state(Path(source).expanduser()))
            return model, True, f"pretrained weights from {source}"
        return builder(weights=source, **kwargs), True, f"pretrained torchvision weights {source}"
    except Exception as exc:  # no network, no cache, bad file
        return builder(weights=None, **kwargs), False, announce_random(backbone, source, short_error(exc))


def torchvision_state(backbone: str, model_name: str, weights: Any, default: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict of torchvision weights (an enum name, 'default', a local file) without building the model.

    Returns ``(state, note)``; ``state`` is None, announced, when the weights cannot be had.
    """
    if weights in RANDOM_WEIGHTS:
        return None, "random initialisation (weights: none requested)"
    source = default if weights in ("default", "auto", True) else str(weights)
    if source in _FAILED:
        return None, announce_random(backbone, source, _FAILED[source])
    try:
        if Path(source).expanduser().is_file():
            return read_state(Path(source).expanduser()), f"pretrained weights from {source}"
        from torchvision.models import get_model_weights

        return get_model_weights(model_name)[source].get_state_dict(progress=False, check_hash=True), f"pretrained torchvision weights {source}"
    except Exception as exc:  # no network, no cache, bad file, unknown name
        return None, announce_random(backbone, source, short_error(exc))


def read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), map_location="cpu", weights_only=True)


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
