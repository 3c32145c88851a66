"""`synthxray generate` on 2 CPU processes (torchrun + accelerate's CPU flag, gloo): same images as 1 process, resumable.

What "same" means: the labels, seeds and provenance are always equal, and the pixels are equal when each of the
2 processes runs with the torch thread count of the 1-process run (torchrun gives each 1 thread). With another thread
count the convolutions sum in another order, so float rounding may move a pixel by 1 grey level after quantisation.
"""

from __future__ import annotations

import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from tinydata import Interrupt, fail_at_batch
from twoprocs import torchrun

from synthxray import generate_dataset, load_dataset, load_generator

pytestmark = pytest.mark.slow
ARGS = dict(per_class=3, seed=5, batch_size=2, num_inference_steps=2)


def generate_on_two_processes(model: Path, output_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return torchrun(["-m", "synthxray.cli", "generate", "--model", model, "--output_dir", output_dir,
                     "--per_class", ARGS["per_class"], "--seed", ARGS["seed"], "--batch_size", ARGS["batch_size"],
                     "--num_inference_steps", ARGS["num_inference_steps"], "--device", "cpu", *flags], check=False)


@contextmanager
def torch_threads(n: int):
    """Run the 1-process reference with the intra-op thread count each torchrun process has (``OMP_NUM_THREADS=1``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate_on_one_process(model: Path, threads: int = 1, **kwargs):
    with torch_threads(threads):
        return generate_dataset(load_generator(model), progress=False, **ARGS, **kwargs)


def assert_same_dataset(a, b, grey_levels: int = 0) -> None:
    """Equal labels, seeds and provenance; pixels equal up to ``grey_levels`` (0: identical)."""
    for column in ("label", "class_name", "seed", "generator", "num_inference_steps", "scheduler"):
        assert a[column] == b[column], column
    for x, y in zip(a["image"], b["image"]):
        x, y = np.asarray(x, dtype=np.int16), np.asarray(y, dtype=np.int16)
        assert x.shape == y.shape and np.abs(x - y).max() <= grey_levels


def test_two_processes_make_the_one_process_images(tiny_ddpm_dir, tmp_path):
    one = generate_on_one_process(tiny_ddpm_dir, output_dir=tmp_path / "one")
    run = generate_on_two_processes(tiny_ddpm_dir, tmp_path / "two")
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(re.findall(r"generate:\s+0%", run.stderr)) == 1  # one progress bar, the main process's
    two = load_dataset(tmp_path / "two")
    assert len(two) == 6 and two["label"] == [0, 0, 0, 1, 1, 1]
    assert_same_dataset(two, one)  # same thread count per process: pixel-identical
    # this process's default thread count (all cores): the same images up to float rounding, at most 1 grey level
    assert_same_dataset(two, generate_on_one_process(tiny_ddpm_dir, threads=max(os.cpu_count() or 1, 2)), grey_levels=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no .partial or .old-* left behind
    run = generate_on_two_processes(tiny_ddpm_dir, tmp_path / "two")  # the overwrite guard holds on every process
    assert run.returncode != 0 and "already exists (a synthxray dataset)" in run.stderr


def test_two_processes_resume_a_killed_run_without_redoing_finished_images(tiny_ddpm_dir, tmp_path):
    gen = load_generator(tiny_ddpm_dir)
    fail_at_batch(gen, 2)
    with pytest.raises(Interrupt):
        generate_dataset(gen, output_dir=tmp_path / "syn", progress=False, **ARGS)
    partial = tmp_path / "syn.partial"
    os.replace(partial / "records.jsonl", partial / "records.rank1.jsonl")  # the log a killed rank 1 leaves
    kept = {p.relative_to(partial / "images").as_posix(): p.stat().st_ino for p in (partial / "images").rglob("*.png")}
    assert sorted(kept) == ["0/0_000000.png", "0/0_000001.png"]
    run = generate_on_two_processes(tiny_ddpm_dir, tmp_path / "syn", "--image_folder")
    assert run.returncode == 0, run.stderr[-3000:]
    folder = tmp_path / "syn" / "image_folder"
    for rel, inode in kept.items():
        assert (folder / rel).stat().st_ino == inode  # the finished images were kept, not made again
    assert len(list(folder.rglob("*.png"))) == 6
    assert_same_dataset(load_dataset(tmp_path / "syn"), generate_on_one_process(tiny_ddpm_dir))
