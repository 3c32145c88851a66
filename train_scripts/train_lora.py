#!/usr/bin/env python
"""LoRA fine-tuning of Stable Diffusion, with diffusers' flag names.

Labelled data, one model with a prompt per class, latents and text embeddings cached:
    accelerate launch train_scripts/train_lora.py --pretrained_model_name_or_path stabilityai/stable-diffusion-2-1-base \
        --dataset_name ../shared/data/chest_xray_pneumonia/train --class_prompt_template "a chest x-ray showing {label}" \
        --rank 16 --lora_alpha 16 --lora_dropout 0.0 --cache_latents --learning_rate 1e-4 \
        --train_batch_size 8 --mixed_precision fp16 --num_train_epochs 4 --output_dir runs/cxr-lora

Same data flags as train_dreambooth.py (--instance_data_dir/--instance_prompt for one concept,
--one_model_per_class, --with_prior_preservation, --train_text_encoder for text-encoder LoRA). The
output holds pytorch_lora_weights.safetensors, which plain diffusers loads with
pipe.load_lora_weights(folder), and loads with synthxray.load_generator. Every flag: --help.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.lora import LoRAConfig, train


def main(argv=None) -> int:
    return run_script(LoRAConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
