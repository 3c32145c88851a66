"""Session-wide tiny data and a tiny trained DDPM, built offline from configs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # under ``pytest -n N`` the cores are shared: each worker (and the subprocesses it launches) gets its part, so N
    # workers' torch/OpenMP thread pools do not oversubscribe the machine (set before torch is first imported)
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

from pathlib import Path

import pytest
from tinydata import make_npz


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "tinymnist.npz")


@pytest.fixture(scope="session")
def tiny_ddpm_config(tiny_npz, tmp_path_factory):
    from synthxray.training.ddpm import DDPMTrainingConfig

    def build(**overrides):
        base = dict(
            dataset=str(tiny_npz), output_dir=str(tmp_path_factory.mktemp("ddpm")), resolution=16,
            block_out_channels=[8, 16], layers_per_block=1, train_batch_size=8, max_train_steps=4,
            checkpointing_steps=0, save_images_steps=0, sample_steps=4, seed=0, num_train_timesteps=50,
        )
        base.update(overrides)
        return DDPMTrainingConfig(**base)

    return build


@pytest.fixture(scope="session")
def tiny_ddpm_dir(tiny_ddpm_config) -> Path:
    """A tiny class-conditional DDPM trained for a few steps and saved with save_pretrained."""
    from synthxray.training.ddpm import train

    return train(tiny_ddpm_config(max_train_steps=6))
