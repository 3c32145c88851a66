#!/usr/bin/env python
"""DreamBooth fine-tuning of Stable Diffusion, with diffusers' flag names.

One concept:
    accelerate launch train_scripts/train_dreambooth.py --pretrained_model_name_or_path stabilityai/stable-diffusion-2-1-base \
        --instance_data_dir ../shared/data/chest_xray_pneumonia/train/NORMAL --instance_prompt "a chest x-ray" \
        --output_dir runs/normal --max_train_steps 400

Labelled data, one model per class (seed 004's recipe):
    accelerate launch train_scripts/train_dreambooth.py --pretrained_model_name_or_path stabilityai/stable-diffusion-2-1-base \
        --dataset_name ../shared/data/chest_xray_pneumonia/train --one_model_per_class \
        --class_prompt_template "a chest x-ray showing {label}" --train_text_encoder \
        --with_prior_preservation --class_prompt "a chest x-ray" --prior_loss_weight 0.5 --num_class_images 200 \
        --learning_rate 1e-6 --train_batch_size 8 --gradient_accumulation_steps 2 --mixed_precision fp16 \
        --num_train_epochs 8 --output_dir runs/cxr-dreambooth

Drop --one_model_per_class for one model with a prompt per class. Every flag: --help. A single .yaml or
.json argument is read as the config. The output folder loads with synthxray.load_generator.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.dreambooth import DreamBoothConfig, train


def main(argv=None) -> int:
    return run_script(DreamBoothConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
