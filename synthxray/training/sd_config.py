"""The flags DreamBooth and LoRA fine-tuning of Stable Diffusion share, checked when parsed."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..samplers import SCHEDULERS
from ..generators.stable_diffusion import SD_DEFAULTS
from .common import TrainingConfig, help_field

REPORT_TO = ("none", "tensorboard", "wandb", "all")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class StableDiffusionTrainingConfig(TrainingConfig):
    """Flags shared by ``train_dreambooth.py`` and ``train_lora.py`` (diffusers' names where it has one)."""

    pretrained_model_name_or_path: str = help_field("", "Base Stable Diffusion: a diffusers folder or Hub id (seed 004: stabilityai/stable-diffusion-2-1-base).")
    revision: str | None = help_field(None, "Hub revision of the base model.")
    variant: str | None = help_field(None, "Weight file variant of the base model, e.g. fp16.")
    # ---- data: one concept, or labelled data
    instance_data_dir: str | None = help_field(None, "A folder of images of one concept (no labels), trained with --instance_prompt.")
    instance_prompt: str | None = help_field(None, "Prompt of the instance images. With --one_model_per_class and no template: every class model's prompt.")
    dataset_name: str | None = help_field(None, "Labelled data: image folder with class sub-folders, MedMNIST .npz or name, save_to_disk folder, or Hub id.")
    dataset_split: str = help_field("train", "Split of --dataset_name to train on.")
    class_prompt_template: str | None = help_field(None, 'Prompt per class of labelled data, with {label}: "a chest x-ray showing {label}".')
    one_model_per_class: bool = help_field(False, "Labelled data: one model per class (seed 004) instead of one model with a prompt per class.")
    # ---- prior preservation
    with_prior_preservation: bool = help_field(False, "Add the prior-preservation loss on class images.")
    prior_loss_weight: float = help_field(1.0, "Weight of the prior-preservation loss (seed 004: 0.5).")
    class_data_dir: str | None = help_field(None, "Class images for prior preservation (default: OUTPUT_DIR/class_images).")
    class_prompt: str | None = help_field(None, "Prompt of the class images, e.g. 'a chest x-ray'.")
    num_class_images: int = help_field(100, "Class images wanted; the base model generates the missing ones.")
    sample_batch_size: int = help_field(4, "Batch size for generating class images.")
    prior_generation_precision: str | None = help_field(None, "fp32 | fp16 | bf16 for class-image generation (default: fp16 on GPU, fp32 on CPU).")
    # ---- training
    train_text_encoder: bool = help_field(False, "Train the text encoder too (seed 004 did).")
    resolution: int = help_field(512, "Square training resolution; images are resized then cropped.")
    center_crop: bool = help_field(False, "Centre-crop instead of random-crop after resizing.")
    num_train_epochs: int = help_field(1, "Epochs, used when --max_train_steps is not set.")
    train_batch_size: int = help_field(4, "Instance images per device and step (class images come on top).")
    learning_rate: float = help_field(5e-6, "Peak learning rate (seed 004: 1e-6).")
    lr_scheduler: str = help_field("constant", "constant | constant_with_warmup | linear | cosine | onecycle.")
    adam_beta1: float = help_field(0.9, "Adam beta1.")
    adam_beta2: float = help_field(0.999, "Adam beta2.")
    adam_epsilon: float = help_field(1e-8, "Adam epsilon.")
    use_8bit_adam: bool = help_field(False, "8-bit AdamW from bitsandbytes (GPU, needs bitsandbytes installed).")
    gradient_checkpointing: bool = help_field(False, "Recompute activations in backward: less memory, slower steps.")
    allow_tf32: bool = help_field(False, "Allow TF32 matmuls on Ampere+ GPUs.")
    cache_latents: bool = help_field(False, "Encode every image with the VAE once before training instead of at every step.")
    snr_gamma: float | None = help_field(None, "Min-SNR loss weighting gamma (5.0 is typical); off when unset.")
    # ---- validation and the generator's saved defaults
    validation_prompt: str | None = help_field(None, "Prompt of validation grids ({label} makes one row per class); none: no validation.")
    num_validation_images: int = help_field(4, "Images per validation prompt.")
    validation_steps: int = help_field(100, "Validate every N steps (and at the end).")
    sample_scheduler: str = help_field(SD_DEFAULTS["scheduler"], "Sampler for validation, class images and the saved default: dpm | dpm-sde | ddim | ddpm | unipc.")
    sample_steps: int = help_field(SD_DEFAULTS["num_inference_steps"], "Sampling steps (seed 004: 50).")
    guidance_scale: float = help_field(SD_DEFAULTS["guidance_scale"], "Classifier-free guidance scale (seed 004: 4.0).")
    negative_prompt: str | None = help_field(None, "Negative prompt for validation, class images and the saved default.")
    report_to: str = help_field("tensorboard", "none | tensorboard | wandb | all.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.pretrained_model_name_or_path:
            raise ValueError("--pretrained_model_name_or_path is required (a Stable Diffusion folder or Hub id)")
        if bool(self.instance_data_dir) == bool(self.dataset_name):
            raise ValueError("give exactly one of --instance_data_dir (one concept) or --dataset_name (labelled data)")
        if self.class_prompt_template is not None:
            check_prompt_template(self.class_prompt_template)
        if self.instance_data_dir:
            if not self.instance_prompt:
                raise ValueError("--instance_data_dir needs --instance_prompt")
            if self.class_prompt_template or self.one_model_per_class:
                raise ValueError("--class_prompt_template and --one_model_per_class are for labelled data (--dataset_name)")
        else:
            if self.class_prompt_template and self.instance_prompt:
                raise ValueError("give --class_prompt_template or --instance_prompt for labelled data, not both")
            if not self.class_prompt_template and not (self.one_model_per_class and self.instance_prompt):
                raise ValueError(
                    "labelled data needs a prompt per class: --class_prompt_template 'a chest x-ray showing {label}', "
                    "or --one_model_per_class with --instance_prompt (or a template)"
                )
        if self.with_prior_preservation:
            if not self.class_prompt:
                raise ValueError("--with_prior_preservation needs --class_prompt (the prompt of the class images)")
            if self.num_class_images < 1 or self.sample_batch_size < 1:
                raise ValueError("--num_class_images and --sample_batch_size must be >= 1")
            if self.prior_loss_weight < 0:
                raise ValueError("--prior_loss_weight must be >= 0")
            if not self.class_data_dir:
                self.class_data_dir = os.path.join(self.output_dir, "class_images")
        if self.prior_generation_precision not in (None, *PRECISIONS):
            raise ValueError(f"--prior_generation_precision must be one of {sorted(PRECISIONS)}")
        if self.resolution < 8 or self.resolution % 8:
            raise ValueError(f"--resolution must be a positive multiple of 8, got {self.resolution}")
        if self.num_train_epochs < 1:
            raise ValueError("--num_train_epochs must be >= 1")
        if self.sample_scheduler not in SCHEDULERS:
            raise ValueError(f"--sample_scheduler must be one of {SCHEDULERS}")
        if self.sample_steps < 1 or self.num_validation_images < 1 or self.validation_steps < 1:
            raise ValueError("--sample_steps, --num_validation_images and --validation_steps must be >= 1")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"--report_to must be one of {REPORT_TO}")


def check_prompt_template(template: str) -> None:
    """A class prompt template must contain ``{label}`` and no other field."""
    if "{label}" not in template:
        raise ValueError(f"--class_prompt_template {template!r} has no {{label}}; e.g. 'a chest x-ray showing {{label}}'")
    try:
        template.format(label="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"--class_prompt_template {template!r} is not a valid template ({exc!r}); use only {{label}}") from None
