"""Pretrained weights with an announced fallback: torchvision weights (an enum name, 'default', a local file) or
random ones, with a banner in the log and a note for the results, when none can be had.

Used by the classifier backbones (``synthxray.experiments.backbones``) and the GAN's pretrained discriminator
features (``networks.gan``), so it lives below both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch

logger = logging.getLogger("synthxray.networks")

RANDOM_WEIGHTS = ("none", "random", None, False)
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
