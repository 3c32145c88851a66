"""transformers DINOv2, frozen with a linear head on the CLS token (seed 001)."""

from __future__ import annotations

from typing import Any

from .base import IMAGENET_MEAN, IMAGENET_STD, Built, PooledHead, freeze as freeze_params, hf_config_dict, hf_model, register_backbone, resolve_freeze

DINOV2_DEFAULT = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4, "patch_size": 14, "image_size": 518}  # dinov2-small
DINOV2_TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2, "patch_size": 4, "image_size": 32}


@register_backbone("dinov2", tiny={"tiny": True})
def build_dinov2(
    num_classes: int, in_channels: int, image_size: int, weights: Any = "facebook/dinov2-small", freeze: Any = "auto",
    unfreeze_last_block: bool = True, tiny: bool = False, hf_config: dict | None = None,
) -> Built:
    """DINOv2 used frozen with a linear head on the CLS token (seed 001), optionally unfreezing the last block."""
    from transformers import Dinov2Config, Dinov2Model

    default_cfg = DINOV2_TINY if tiny else DINOV2_DEFAULT
    weights = None if tiny else weights
    model, pretrained, note = hf_model("dinov2", Dinov2Model, Dinov2Config, weights, "facebook/dinov2-small", hf_config, default_cfg)
    if hf_config is not None:
        pretrained = False
    frozen = hf_config.get("_synthxray_frozen", False) if hf_config else resolve_freeze(freeze, pretrained, "dinov2")
    last = model.config.num_hidden_layers - 1
    if frozen:
        keep = (f"encoder.layer.{last}.", "layernorm.") if unfreeze_last_block else ("layernorm.",)
        freeze_params(model, lambda n: n.startswith(keep))
    net = PooledHead(model, model.config.hidden_size, num_classes)
    config = {"hf_config": hf_config_dict(model.config, frozen), "unfreeze_last_block": unfreeze_last_block}
    trainable = ("last block + head" if unfreeze_last_block else "head") if frozen else "all"
    return Built(net, 3, IMAGENET_MEAN, IMAGENET_STD, pretrained, note, config, trainable)
