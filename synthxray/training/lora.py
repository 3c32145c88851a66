"""LoRA: train low-rank adapters on Stable Diffusion's attention layers (and optionally its text encoder).

Adapters are a few MB, train faster and in less memory than DreamBooth, and suit thousands of
images (seed 004's suspicion). The output is the standard diffusers LoRA file
(``pytorch_lora_weights.safetensors``) that plain ``pipe.load_lora_weights(folder)`` loads, plus
``synthxray.json`` with the base model id and revision: an ``sd-lora`` generator.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .common import help_field
from .stable_diffusion import BaseModel, FineTuneMethod, Parts, StableDiffusionTrainingConfig, train_stable_diffusion

logger = logging.getLogger("synthxray.training")

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class LoRAConfig(StableDiffusionTrainingConfig):
    """Flags of ``train_scripts/train_lora.py`` (diffusers' train_dreambooth_lora.py names)."""

    rank: int = help_field(4, "LoRA rank (dimension of the low-rank update).")
    lora_alpha: int | None = help_field(None, "LoRA alpha; the update is scaled by alpha / rank (default: rank).")
    lora_dropout: float = help_field(0.0, "Dropout on the LoRA layers' input.")
    learning_rate: float = help_field(1e-4, "Peak learning rate.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError("--rank must be >= 1")
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise ValueError("--lora_alpha must be > 0")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("--lora_dropout must be in [0, 1)")


def save_lora(folder: str | Path, unet, text_encoder=None) -> None:
    """Write the adapters as diffusers' standard LoRA file (with their LoRA config, so alpha survives)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = {"unet": unet, **({"text_encoder": text_encoder} if text_encoder is not None else {})}
    kwargs = {f"{k}_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(m, save_embedding_layers=False)) for k, m in layers.items()}
    if "unet_lora_adapter_metadata" in inspect.signature(StableDiffusionPipeline.save_lora_weights).parameters:
        # dropout is for training: kept in the file, diffusers would apply it at inference (its dropout
        # modules load in training mode), so one seed would give different images each call
        kwargs.update({f"{k}_lora_adapter_metadata": {**m.peft_config["default"].to_dict(), "lora_dropout": 0.0} for k, m in layers.items()})
    StableDiffusionPipeline.save_lora_weights(folder, **kwargs)


class LoRA(FineTuneMethod):
    backend = "sd-lora"

    def part_dtypes(self, cfg: LoRAConfig, weight_dtype: torch.dtype) -> dict[str, torch.dtype]:
        return {"unet": weight_dtype, "text_encoder": weight_dtype}  # the frozen base runs at weight_dtype

    def trainable_parameters(self, cfg: LoRAConfig, parts: Parts) -> list[torch.nn.Parameter]:
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        unet, text_encoder = parts.unet, parts.text_encoder
        for m in (unet, text_encoder):
            m.requires_grad_(False)
        common = {"r": cfg.rank, "lora_alpha": cfg.lora_alpha or cfg.rank, "lora_dropout": cfg.lora_dropout, "init_lora_weights": "gaussian"}
        unet.add_adapter(LoraConfig(target_modules=UNET_TARGETS, **common))
        trained = [unet]
        if cfg.train_text_encoder:
            text_encoder.add_adapter(LoraConfig(target_modules=TEXT_ENCODER_TARGETS, **common))
            trained.append(text_encoder)
        cast_training_params(trained, dtype=torch.float32)  # adapters train in fp32
        return [p for m in trained for p in m.parameters() if p.requires_grad]

    def register_checkpoint_hooks(self, accelerator, cfg: LoRAConfig, unet, text_encoder) -> None:
        """Checkpoints hold the adapters only (a few MB), not the frozen base weights."""
        from diffusers import StableDiffusionPipeline
        from diffusers.training_utils import cast_training_params
        from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft, convert_unet_state_dict_to_peft
        from peft.utils import set_peft_model_state_dict

        unet_cls = type(accelerator.unwrap_model(unet))

        def split(models: list) -> tuple:
            found_unet = found_text = None
            for m in models:
                m = accelerator.unwrap_model(m)
                if isinstance(m, unet_cls):
                    found_unet = m
                else:
                    found_text = m
            return found_unet, found_text

        def save_hook(models: list, weights: list, output_dir: str) -> None:
            if accelerator.is_main_process:
                save_lora(output_dir, *split(models))
            weights.clear()  # nothing else of the models is written

        def load_hook(models: list, input_dir: str) -> None:
            found_unet, found_text = split(models)
            models.clear()  # accelerate loads nothing more of them
            state, _ = StableDiffusionPipeline.lora_state_dict(input_dir)
            unet_state = convert_unet_state_dict_to_peft({k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")})
            result = set_peft_model_state_dict(found_unet, unet_state, adapter_name="default")
            unexpected = getattr(result, "unexpected_keys", None)
            if unexpected:
                logger.warning("unexpected keys loading the UNet adapter from %s: %s", input_dir, unexpected)
            if found_text is not None:  # the file's text-encoder keys, in peft's naming
                text_state = {k[len("text_encoder."):]: v for k, v in state.items() if k.startswith("text_encoder.")}
                text_state = convert_state_dict_to_peft(convert_state_dict_to_diffusers(text_state))
                set_peft_model_state_dict(found_text, text_state, adapter_name="default")
            cast_training_params([m for m in (found_unet, found_text) if m is not None], dtype=torch.float32)

        accelerator.register_save_state_pre_hook(save_hook)
        accelerator.register_load_state_pre_hook(load_hook)

    def save(self, cfg: LoRAConfig, base: BaseModel, unet, text_encoder, out: Path) -> None:
        save_lora(out, unet, text_encoder if cfg.train_text_encoder else None)


def train(cfg: LoRAConfig) -> Path:
    """Train and save an ``sd-lora`` generator to ``cfg.output_dir``; returns that folder."""
    return train_stable_diffusion(cfg, LoRA())
