"""Tiny offline data and models for the experiment tests (built once per session)."""

from __future__ import annotations

import os

import pytest
from expdata import make_dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_train():
    return make_dataset({"NORMAL": 30, "PNEUMONIA": 50}, seed=0)


@pytest.fixture(scope="session")
def real_test():
    return make_dataset({"NORMAL": 12, "PNEUMONIA": 12}, seed=1)


@pytest.fixture(scope="session")
def synthetic():
    """Lower-case class names, like a generator trained on MedMNIST: matched to the real ones by name."""
    return make_dataset({"normal": 40, "pneumonia": 40}, seed=2, provenance=True)


@pytest.fixture(scope="session")
def data_folders(tmp_path_factory, real_train, real_test, synthetic):
    """The same data as save_to_disk folders, for YAML specs."""
    root = tmp_path_factory.mktemp("data")
    real_train.save_to_disk(str(root / "train"))
    real_test.save_to_disk(str(root / "test"))
    synthetic.save_to_disk(str(root / "synthetic"))
    return root


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A tiny untrained class-conditional DDPM saved as a synthxray generator folder."""
    from diffusers import DDPMScheduler

    from synthxray.generators.base import GeneratorInfo
    from synthxray.generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator, build_unet

    import torch

    torch.manual_seed(0)
    unet = build_unet(2, 8, 1, (8, 16), 1, attention_levels=[False, False], norm_num_groups=8)
    pipe = ClassConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50))
    info = GeneratorInfo(backend="ddpm", class_names=["normal", "pneumonia"], channels=1, resolution=8,
                         defaults={"scheduler": "ddim", "num_inference_steps": 2, "guidance_scale": 1.0})
    folder = tmp_path_factory.mktemp("gen") / "ddpm"
    DDPMGenerator(pipe, info).save_pretrained(folder)
    return folder



@pytest.fixture(scope="session")
def pool200():
    """A balanced 200-image synthetic pool: larger than the 80-image real set."""
    return make_dataset({"normal": 100, "pneumonia": 100}, seed=5, provenance=True)


@pytest.fixture(scope="session")
def pool_unequal():
    """A 120-image synthetic pool in a skewed class mix (30 normal / 90 pneumonia), like one made in the real mix."""
    return make_dataset({"normal": 30, "pneumonia": 90}, seed=6, provenance=True)
