"""Both training scripts through ``accelerate launch``, and what they leave behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from sd_testing import CLASSES, RESOLUTION, same_images

from synthxray import load_generator

pytestmark = pytest.mark.slow


def summary(folder):
    return json.loads((folder / "train_summary.json").read_text())


def test_dreambooth_script_one_model_per_class(dreambooth_run, tiny_sd):
    """Prior preservation (class images made by the base model) and text-encoder training, one model per class."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    info = json.loads((dreambooth_run / "synthxray.json").read_text())
    assert info["backend"] == "sd-dreambooth" and info["class_names"] == list(CLASSES)
    assert info["extra"]["models"] == {c: c for c in CLASSES}
    assert info["prompts"]["pneumonia"] == "a chest x-ray showing pneumonia"
    assert info["channels"] == 1 and info["defaults"]["guidance_scale"] == 4.0
    assert len(list((dreambooth_run / "class_images").glob("class_*.png"))) == 2
    base_te = CLIPTextModel.from_pretrained(tiny_sd, subfolder="text_encoder").state_dict()
    for name in CLASSES:
        sub = dreambooth_run / name
        pipe = StableDiffusionPipeline.from_pretrained(sub)  # plain diffusers, no synthxray
        assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)  # seed 004's sampler is the saved default
        key = next(k for k in base_te if k.endswith("layers.0.self_attn.q_proj.weight"))
        assert not torch.equal(pipe.text_encoder.state_dict()[key], base_te[key])  # the text encoder was trained
        assert summary(sub)["steps"] == 2
        assert [p.name for p in (sub / "checkpoints").iterdir()] == ["checkpoint_1"]  # --checkpoints_total_limit 1


def test_dreambooth_generator_generates_per_class(dreambooth_run):
    gen = load_generator(dreambooth_run, device="cpu")
    assert gen.backend == "sd-dreambooth" and gen.class_names == list(CLASSES)
    for name, n in (("normal", 2), ("pneumonia", 1)):
        images = gen.generate(n, class_label=name, seed=0, num_inference_steps=2)
        assert len(images) == n
        assert all(im.mode == "L" and im.size == (RESOLUTION, RESOLUTION) for im in images)  # grayscale data in, grayscale out
    with pytest.raises(ValueError, match="class_label is required"):
        gen.generate(1)
    # each class sub-folder is a generator of its own
    single = load_generator(dreambooth_run / "pneumonia", device="cpu")
    assert single.class_names == ["pneumonia"]
    assert same_images(single.generate(1, seed=4, num_inference_steps=2), gen.generate(1, class_label="pneumonia", seed=4, num_inference_steps=2))


def test_dreambooth_resume_continues_step_count(dreambooth_run, tmp_path):
    from synthxray.training.dreambooth import DreamBoothConfig, train

    run = tmp_path / "dreambooth"
    shutil.copytree(dreambooth_run, run)
    saved = json.loads((run / "training_config.json").read_text())
    cfg = DreamBoothConfig(**{**saved, "output_dir": str(run), "max_train_steps": 3, "resume_from_checkpoint": "latest"})
    train(cfg)
    for name in CLASSES:
        s = summary(run / name)
        assert (s["steps"], s["steps_this_run"]) == (3, 1)
        assert [p.name for p in (run / name / "checkpoints").iterdir()] == ["checkpoint_2"]
    assert json.loads((run / "synthxray.json").read_text())["extra"]["train_steps"] == {c: 3 for c in CLASSES}


def test_lora_script_writes_the_standard_diffusers_lora_file(lora_run, tiny_sd):
    """A prompt per class, prior preservation, text-encoder LoRA and cached latents; plain diffusers loads the file."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from safetensors import safe_open

    weights = lora_run / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), "pt") as f:
        keys, metadata = list(f.keys()), f.metadata() or {}
    assert any(k.startswith("unet.") for k in keys) and any(k.startswith("text_encoder.") for k in keys)
    if "lora_adapter_metadata" in metadata:  # diffusers >= 0.34 keeps the LoRA config: alpha != rank survives
        assert json.loads(metadata["lora_adapter_metadata"])["unet.lora_alpha"] == 4
    info = json.loads((lora_run / "synthxray.json").read_text())
    assert info["backend"] == "sd-lora" and info["base_model"] == str(tiny_sd.resolve())
    assert info["prompts"] == {c: f"a chest x-ray showing {c}" for c in CLASSES}
    assert info["defaults"]["negative_prompt"] == "blurry, low quality"
    assert (lora_run / "samples" / "step_000002.png").is_file()  # validation grid, one row per class
    assert summary(lora_run)["steps"] == 2
    ckpt = {p.name for p in (lora_run / "checkpoints" / "checkpoint_1").iterdir()}
    assert "pytorch_lora_weights.safetensors" in ckpt and not any(n.startswith("model") for n in ckpt)  # adapters only

    gen = load_generator(lora_run, device="cpu")
    ours = gen.generate(2, class_label="pneumonia", seed=[5, 6], num_inference_steps=2)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def plain(**kw):
        return [im.convert("L") for im in pipe(
            ["a chest x-ray showing pneumonia"] * 2, negative_prompt=["blurry, low quality"] * 2, num_inference_steps=2,
            guidance_scale=4.0, height=RESOLUTION, width=RESOLUTION, generator=[torch.Generator().manual_seed(s) for s in (5, 6)],
        ).images]

    before = plain()
    pipe.load_lora_weights(lora_run)
    after = plain()
    assert same_images(ours, after)
    assert not same_images(before, after)
    assert not np.array_equal(np.asarray(ours[0]), np.asarray(gen.generate(1, class_label="normal", seed=5, num_inference_steps=2)[0]))
