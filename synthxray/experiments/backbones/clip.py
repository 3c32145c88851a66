"""transformers CLIP vision encoder, fine-tuned, with a head that can start as zero-shot CLIP."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from torch import nn

from .base import CLIP_MEAN, CLIP_STD, Built, PooledHead, hf_config_dict, hf_model, register_backbone, short_error

logger = logging.getLogger("synthxray.experiments")

CLIP_ID = "openai/clip-vit-base-patch32"
CLIP_DEFAULT = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "patch_size": 32, "image_size": 224, "projection_dim": 512}
CLIP_TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 4, "image_size": 32, "projection_dim": 8}


class _VisionTower(nn.Module):
    """CLIP's vision tower; the projection is kept separately so the head sits on it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.vision_model = model.vision_model

    def forward(self, pixel_values, **kw):
        return self.vision_model(pixel_values=pixel_values, **kw)


@register_backbone("clip", tiny={"tiny": True})
def build_clip(
    num_classes: int, in_channels: int, image_size: int, weights: Any = CLIP_ID,
    class_names: Sequence[str] | None = None, prompt_init: bool = True, prompt: str = "a chest x-ray showing {}",
    tiny: bool = False, hf_config: dict | None = None,
) -> Built:
    """CLIP vision encoder with a linear head on the projected image embedding.

    With pretrained weights and ``prompt_init`` the head starts as the normalised text embeddings of
    ``prompt.format(class name)`` (zero-shot CLIP); the text encoder itself is not kept.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    default_cfg = CLIP_TINY if tiny else CLIP_DEFAULT
    weights = None if tiny else weights
    model, pretrained, note = hf_model("clip", CLIPVisionModelWithProjection, CLIPVisionConfig, weights, CLIP_ID, hf_config, default_cfg)
    if hf_config is not None:
        pretrained = False
    net = PooledHead(_VisionTower(model), model.config.projection_dim, num_classes, projection=model.visual_projection, interpolate=True)
    if pretrained and prompt_init and class_names:
        try:
            net.head.weight.data.copy_(_clip_text_head(weights if weights not in ("default", "auto", True) else CLIP_ID, class_names, prompt))
            net.head.bias.data.zero_()
            note += f"; head initialised from prompts {prompt!r}"
        except Exception as exc:
            logger.warning("clip: could not initialise the head from class-name prompts (%s); using a random head", short_error(exc))
    return Built(net, 3, CLIP_MEAN, CLIP_STD, pretrained, note, {"hf_config": hf_config_dict(model.config, False)})


def _clip_text_head(model_id: str, class_names: Sequence[str], prompt: str) -> torch.Tensor:
    from transformers import AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(model_id)
    tok = AutoTokenizer.from_pretrained(model_id)
    with torch.no_grad():
        tokens = tok([prompt.format(n.lower()) for n in class_names], padding=True, return_tensors="pt")
        text = clip.get_text_features(**tokens)
        text = text / text.norm(dim=-1, keepdim=True)
    return text * clip.logit_scale.exp().item() / 10.0
