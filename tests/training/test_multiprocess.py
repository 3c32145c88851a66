"""Training on 2 CPU processes (gloo), launched as docs/multi-process.md says: step and epoch accounting, checkpoint
layout, resume, and the time budget stopping every rank at the same step."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import twoprocs

from synthxray.training.common import list_checkpoints
from synthxray.training.ddpm import train

pytestmark = pytest.mark.slow
ROOT = twoprocs.ROOT
SCRIPT = ROOT / "train_scripts" / "train_ddpm.py"


def torchrun(args: list[str], cwd: Path, timeout: int = 600, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    """``ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 <script> ...`` (a free port each time)."""
    return twoprocs.torchrun([script, *args], cwd=cwd, timeout=timeout)


def tiny_flags(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", str(data), "--output_dir", str(out), "--resolution", "16", "--block_out_channels", "8", "16",
        "--train_batch_size", "4", "--num_train_timesteps", "50", "--sample_steps", "2", "--num_validation_images", "1",
        "--seed", "0", *extra,
    ]


def test_two_processes_count_epochs_in_total_checkpoint_once_and_resume(tiny_npz, tiny_ddpm_config, tmp_path):
    # 24 images in batches of 4: 6 batches an epoch, 3 per process on 2 processes
    single = train(tiny_ddpm_config(output_dir=str(tmp_path / "one"), train_batch_size=4, max_train_steps=None, num_epochs=2))
    assert json.loads((single / "train_summary.json").read_text())["steps"] == 12

    out = tmp_path / "two"
    torchrun(tiny_flags(tiny_npz, out, "--num_epochs", "2", "--checkpointing_steps", "2", "--save_images_steps", "3"), tmp_path)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6, "2 epochs on 2 processes are 6 steps of 2 x 4 images, not 12"
    assert summary["epochs"] == 2.0 and summary["num_processes"] == 2 and summary["total_batch_size"] == 8
    info = json.loads((out / "synthxray.json").read_text())
    assert info["extra"]["train_steps"] == 6 and info["extra"]["num_processes"] == 2
    assert "2 process(es)" in info["extra"]["hardware"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    checkpoints = list_checkpoints(out)
    assert [p.name for p in checkpoints] == ["checkpoint_0", "checkpoint_1", "checkpoint_2"]
    for ckpt in checkpoints:  # the weights once, one RNG state per rank
        names = sorted(p.name for p in ckpt.iterdir())
        assert names.count("model.safetensors") == 1 and "optimizer.bin" in names
        assert "random_states_0.pkl" in names and "random_states_1.pkl" in names
    state = torch.load(checkpoints[-1] / "custom_checkpoint_1.pkl", weights_only=False)
    assert state["step"] == 6 and state["epoch"] == 2

    # resume on 2 processes: one more epoch continues the count from 6
    torchrun(tiny_flags(tiny_npz, out, "--num_epochs", "3", "--checkpointing_steps", "2", "--save_images_steps", "0",
                        "--resume_from_checkpoint", "latest"), tmp_path)
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 9
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 9
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint_0", "checkpoint_1", "checkpoint_2", "checkpoint_3"]


def test_two_processes_stop_together_at_the_time_budget(tiny_npz, tmp_path):
    """Each rank would stop on its own clock; they follow the main process's, so none waits forever."""
    out = tmp_path / "budget"
    torchrun(tiny_flags(tiny_npz, out, "--max_train_steps", "100000", "--max_train_minutes", "0.1", "--lr_scheduler", "cosine",
                        "--checkpointing_steps", "100000", "--save_images_steps", "0"), tmp_path, timeout=300)
    summary = json.loads((out / "train_summary.json").read_text())
    assert 1 <= summary["steps"] < 100000
    [ckpt] = list_checkpoints(out)  # the budget's stop saves a checkpoint
    assert torch.load(ckpt / "custom_checkpoint_1.pkl", weights_only=False)["step"] == summary["steps"]


def test_lora_on_two_processes_counts_epochs_in_total_and_checkpoints_adapters_once(tmp_path):
    """The Stable Diffusion trainers share the loop: 6 images, batch 1, 2 epochs on 2 processes = 6 steps."""
    from tiny_sd import build_tiny_sd
    from tinydata import make_image_folder

    base = build_tiny_sd(tmp_path / "tiny_sd")
    data = make_image_folder(tmp_path / "xrays", classes=("normal", "pneumonia"), per_class=3)
    out = tmp_path / "lora"
    flags = [
        "--pretrained_model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(out),
        "--class_prompt_template", "a chest x-ray showing {label}", "--resolution", "32", "--train_batch_size", "1",
        "--sample_steps", "2", "--report_to", "none", "--learning_rate", "1e-3", "--checkpointing_steps", "3", "--rank", "2",
    ]
    lora_script = ROOT / "train_scripts" / "train_lora.py"
    torchrun([*flags, "--num_train_epochs", "2"], tmp_path, script=lora_script)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["num_processes"] == 2 and summary["total_batch_size"] == 2
    checkpoints = list_checkpoints(out)
    assert [p.name for p in checkpoints] == ["checkpoint_0", "checkpoint_1"]
    for ckpt in checkpoints:  # the adapters once (LoRA's save hook), one RNG state per rank, no base weights
        names = sorted(p.name for p in ckpt.iterdir())
        assert "pytorch_lora_weights.safetensors" in names and "model.safetensors" not in names
        assert "random_states_0.pkl" in names and "random_states_1.pkl" in names
    assert json.loads((out / "synthxray.json").read_text())["extra"]["train_steps"] == 6
    assert (out / "pytorch_lora_weights.safetensors").is_file()  # resume on 2 processes: the DDPM test (same loop)
