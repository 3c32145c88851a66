"""A tiny Stable Diffusion built from configs (random weights, offline tokenizer) and tiny X-ray-like data.

Everything is built once per session and saved to a temporary folder as a full diffusers
``StableDiffusionPipeline`` folder, so every test goes through ``from_pretrained``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import pytest
from sd_testing import CLASSES, Launch, base_args, build_tiny_sd, finished, write_images  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "model")


@pytest.fixture(scope="session")
def xray_folder(tmp_path_factory) -> Path:
    """Labelled data: an image folder with one sub-folder per class, grayscale PNGs."""
    root = tmp_path_factory.mktemp("xrays")
    for k, name in enumerate(CLASSES):
        write_images(root / name, 3, seed=k)
    return root


@pytest.fixture(scope="session")
def concept_folder(tmp_path_factory) -> Path:
    """One concept (no labels): grayscale content stored as RGB, like the shared chest X-ray JPEGs."""
    folder = tmp_path_factory.mktemp("concept") / "sks_xray"
    write_images(folder, 3, seed=3, mode="RGB")
    return folder


@pytest.fixture(scope="session", autouse=True)
def launched(tiny_sd, xray_folder, tmp_path_factory):
    """Both scripts start at once in the background (the in-process tests run meanwhile); tests wait for them.

    DreamBooth: one model per class, prior preservation (class images made by the base model), text encoder
    trained, gradient accumulation. LoRA: a prompt per class, prior preservation, text-encoder LoRA, cached
    latents, alpha != rank, dropout, validation grids and a negative prompt.
    """
    root = tmp_path_factory.mktemp("runs")
    dreambooth = root / "dreambooth"
    lora = root / "lora"
    runs = {
        dreambooth: Launch("train_dreambooth.py", base_args(tiny_sd, dreambooth) + [
            "--dataset_name", str(xray_folder), "--one_model_per_class", "--class_prompt_template", "a chest x-ray showing {label}",
            "--with_prior_preservation", "--class_prompt", "a chest x-ray", "--num_class_images", "2", "--prior_loss_weight", "0.5",
            "--train_text_encoder", "--gradient_accumulation_steps", "2", "--checkpoints_total_limit", "1",
        ], root / "dreambooth.log"),
        lora: Launch("train_lora.py", base_args(tiny_sd, lora) + [
            "--dataset_name", str(xray_folder), "--class_prompt_template", "a chest x-ray showing {label}",
            "--with_prior_preservation", "--class_prompt", "a chest x-ray", "--num_class_images", "2",
            "--train_text_encoder", "--cache_latents", "--rank", "2", "--lora_alpha", "4", "--lora_dropout", "0.1",
            "--validation_prompt", "a chest x-ray showing {label}", "--num_validation_images", "2", "--validation_steps", "2",
            "--negative_prompt", "blurry, low quality",
        ], root / "lora.log"),
    }
    yield runs
    for run in runs.values():
        run.stop()


@pytest.fixture(scope="session")
def dreambooth_run(launched) -> Path:
    return finished(launched, "dreambooth")


@pytest.fixture(scope="session")
def lora_run(launched) -> Path:
    return finished(launched, "lora")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; on 2 shared cores, two threads fight (10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
