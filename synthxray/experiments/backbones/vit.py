"""torchvision Vision Transformers ViT-B/16 and ViT-L/16 (seed 002's transformer classifiers).

A ViT takes a fixed input size that is a multiple of its patch size. The network runs at
``image_size`` rounded up to a multiple of the patch (28 px -> 32 px with 16 px patches: the input
is resized bilinearly inside ``forward``); pretrained position embeddings (learnt at 224 px) are
interpolated to that size with torchvision's ``interpolate_embeddings``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import IMAGENET_MEAN, IMAGENET_STD, RANDOM_WEIGHTS, Built, freeze, register_backbone, resolve_freeze, torchvision_state

# torchvision's architectures: patch_size, num_layers, num_heads, hidden_dim, mlp_dim
_VITS = {"vit_b_16": (16, 12, 12, 768, 3072), "vit_l_16": (16, 24, 16, 1024, 4096)}
_TINY = {"patch_size": 4, "num_layers": 1, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 16, "weights": None}
PRETRAINED_SIZE = 224


class ResizedViT(nn.Module):
    """A VisionTransformer fed at its own input size (bilinear resize when the data's size differs)."""

    def __init__(self, vit: nn.Module, size: int):
        super().__init__()
        self.vit = vit
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > self.size)
        return self.vit(x)


def _build(name: str, num_classes: int, image_size: int, weights: Any, freeze_option: Any, arch: dict[str, int]) -> Built:
    from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

    patch = arch["patch_size"]
    size = int(math.ceil(image_size / patch) * patch)
    standard = tuple(arch[k] for k in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")) == _VITS[name]
    if not standard and weights not in RANDOM_WEIGHTS and weights != "auto":
        raise ValueError(f"pretrained weights exist only for the standard {name} architecture")
    model = VisionTransformer(image_size=size, **arch)
    pretrained, note = False, "random initialisation" + ("" if standard else f" (custom {name} size)")
    if standard and weights not in RANDOM_WEIGHTS:
        state, note = torchvision_state(name, name, weights, "IMAGENET1K_V1")
        if state is not None:
            if size != PRETRAINED_SIZE:
                state = interpolate_embeddings(size, patch, state)
                note += f" (position embeddings interpolated {PRETRAINED_SIZE} -> {size} px)"
            state = {k: v for k, v in state.items() if not k.startswith("heads.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("heads.") for k in missing):
                raise ValueError(f"{name}: the weights {weights!r} do not fit the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
            pretrained = True
    model.heads = nn.Sequential(nn.Linear(arch["hidden_dim"], num_classes))
    frozen = resolve_freeze(freeze_option, pretrained, name)
    if frozen:  # linear probe plus the last encoder block and the final norm
        last = f"encoder.layers.encoder_layer_{arch['num_layers'] - 1}."
        freeze(model, lambda n: n.startswith(("heads.", "encoder.ln.", last)))
    cfg = {**{k: v for k, v in arch.items()}, "freeze": frozen, "net_size": size}
    return Built(ResizedViT(model, size), 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, cfg, "last block + head" if frozen else "all")


def _arch(name: str, patch_size, num_layers, num_heads, hidden_dim, mlp_dim) -> dict[str, int]:
    default = dict(zip(("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim"), _VITS[name]))
    given = {"patch_size": patch_size, "num_layers": num_layers, "num_heads": num_heads, "hidden_dim": hidden_dim, "mlp_dim": mlp_dim}
    return {k: int(v if v is not None else default[k]) for k, v in given.items()}


@register_backbone("vit_b_16", tiny=_TINY)
def build_vit_b_16(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", freeze: Any = False, patch_size: int | None = None,
    num_layers: int | None = None, num_heads: int | None = None, hidden_dim: int | None = None, mlp_dim: int | None = None, net_size: int | None = None,
) -> Built:
    """torchvision ViT-B/16 (86M parameters; ImageNet ``IMAGENET1K_V1`` weights when reachable), fine-tuned whole.

    ``freeze: true`` trains only the last encoder block and the head. The architecture options make
    a smaller ViT with random weights (tiny: ``patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16``).
    """
    return _build("vit_b_16", num_classes, image_size, weights, freeze, _arch("vit_b_16", patch_size, num_layers, num_heads, hidden_dim, mlp_dim))


@register_backbone("vit_l_16", tiny=_TINY)
def build_vit_l_16(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "auto", freeze: Any = False, patch_size: int | None = None,
    num_layers: int | None = None, num_heads: int | None = None, hidden_dim: int | None = None, mlp_dim: int | None = None, net_size: int | None = None,
) -> Built:
    """torchvision ViT-L/16 (304M parameters; ImageNet ``IMAGENET1K_V1`` weights when reachable), fine-tuned whole.

    Options as for ``vit_b_16``.
    """
    return _build("vit_l_16", num_classes, image_size, weights, freeze, _arch("vit_l_16", patch_size, num_layers, num_heads, hidden_dim, mlp_dim))
