"""Fine-tuning in-process (the scripts are only parse_config + train): the routes not launched in test_sd_scripts."""

from __future__ import annotations

import json

import pytest
import torch
from sd_testing import CLASSES, RESOLUTION, base_args, same_images

from synthxray import load_generator
from synthxray.training.common import parse_config
from synthxray.training import dreambooth, lora


def train(module, args):
    config_cls = dreambooth.DreamBoothConfig if module is dreambooth else lora.LoRAConfig
    return module.train(parse_config(config_cls, args))


def test_dreambooth_single_concept_without_prior_or_text_encoder(tiny_sd, concept_folder, tmp_path):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    out = train(dreambooth, base_args(tiny_sd, tmp_path / "db", steps=2) + [
        "--instance_data_dir", str(concept_folder), "--instance_prompt", "a photo of sks x-ray", "--center_crop",
        "--cache_latents", "--checkpointing_steps", "0",
    ])
    pipe = StableDiffusionPipeline.from_pretrained(out)  # the output folder is a plain diffusers pipeline
    base_te = CLIPTextModel.from_pretrained(tiny_sd, subfolder="text_encoder").state_dict()
    key = next(k for k in base_te if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert torch.equal(pipe.text_encoder.state_dict()[key], base_te[key])  # not trained
    gen = load_generator(out, device="cpu")
    assert gen.class_names == ["sks_xray"] and gen.info.prompts == {"sks_xray": "a photo of sks x-ray"}
    images = gen.generate(2, seed=3, num_inference_steps=2)  # one class: no class_label needed
    assert len(images) == 2 and images[0].mode == "L" and images[0].size == (RESOLUTION, RESOLUTION)  # gray stored as RGB -> gray
    gen.save_pretrained(tmp_path / "copy")
    assert same_images(images, load_generator(tmp_path / "copy", device="cpu").generate(2, seed=3, num_inference_steps=2))
    # the seed of an image fixes it, whatever the batch
    assert same_images(images[1:], gen.generate(1, seed=[4], num_inference_steps=2))


def test_lora_resume_continues_step_count(tiny_sd, concept_folder, tmp_path):
    from safetensors.torch import load_file

    args = base_args(tiny_sd, tmp_path / "lora", steps=2) + ["--instance_data_dir", str(concept_folder), "--instance_prompt", "a photo of sks x-ray"]
    out = train(lora, args)
    first = load_file(out / "pytorch_lora_weights.safetensors")
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["checkpoint_0", "checkpoint_1"]
    with pytest.raises(FileExistsError, match="resume_from_checkpoint"):
        train(lora, args)  # an earlier run's checkpoints are not silently mixed with a new run
    train(lora, [a if a != "2" else "3" for a in args] + ["--resume_from_checkpoint", "latest"])
    s = json.loads((out / "train_summary.json").read_text())
    assert (s["steps"], s["steps_this_run"]) == (3, 1)
    assert (out / "checkpoints" / "checkpoint_2").is_dir()
    again = load_file(out / "pytorch_lora_weights.safetensors")
    assert first.keys() == again.keys() and any(not torch.equal(first[k], again[k]) for k in first)


def test_lora_one_model_per_class(tiny_sd, xray_folder, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = train(lora, base_args(tiny_sd, tmp_path / "lora", steps=2) + [
        "--dataset_name", str(xray_folder), "--one_model_per_class", "--instance_prompt", "a chest x-ray", "--checkpointing_steps", "0",
    ])
    info = json.loads((out / "synthxray.json").read_text())
    assert info["extra"]["models"] == {c: c for c in CLASSES} and info["prompts"] == {c: "a chest x-ray" for c in CLASSES}
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.load_lora_weights(out / "normal")  # each class's adapter is a plain diffusers LoRA file
    gen = load_generator(out, device="cpu")
    normal = gen.generate(2, class_label="normal", seed=1, num_inference_steps=2)
    pneumonia = gen.generate(3, class_label=1, seed=1, num_inference_steps=2)
    assert (len(normal), len(pneumonia)) == (2, 3)
    assert not same_images(normal, pneumonia[:2])  # same prompt and seeds: only the adapter differs
    assert same_images(normal, gen.generate(2, class_label="normal", seed=1, num_inference_steps=2))  # switching back is exact
    copy = tmp_path / "copy"
    gen.save_pretrained(copy)
    assert same_images(pneumonia, load_generator(copy, device="cpu").generate(3, class_label=1, seed=1, num_inference_steps=2))
