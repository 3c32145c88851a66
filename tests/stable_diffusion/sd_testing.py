"""Helpers of the Stable Diffusion tests: a tiny SD built from configs, X-ray-like images, script launches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tiny_sd import CLASSES, CORPUS, RESOLUTION, build_tiny_sd, build_tokenizer  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[2]


def write_images(folder: Path, n: int, seed: int, mode: str = "L") -> None:
    """Small X-ray-like images: a bright body with two darker lungs, plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n):
        img = 170 + 20 * rng.standard_normal((40, 40))
        for cx in (13, 27):
            img[(xx - cx) ** 2 / 36 + (yy - 20) ** 2 / 150 < 1] -= 90 + 10 * seed
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
        (im if mode == "L" else im.convert(mode)).save(folder / f"img_{i:03d}.png")


def base_args(tiny_sd: Path, output_dir: Path, steps: int = 2) -> list[str]:
    """Flags every tiny run shares: a few steps, 2 sampling steps, no trackers."""
    return [
        "--pretrained_model_name_or_path", str(tiny_sd), "--output_dir", str(output_dir), "--resolution", str(RESOLUTION),
        "--train_batch_size", "2", "--max_train_steps", str(steps), "--sample_steps", "2", "--report_to", "none",
        "--learning_rate", "1e-3", "--checkpointing_steps", "1",
    ]


class Launch:
    """A training script run through ``accelerate launch`` in a subprocess (one CPU process, one thread)."""

    def __init__(self, script: str, args: list[str], log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_scripts" / script), *args,
        ]
        self.script, self.log = script, log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait(self, timeout: int = 300) -> None:
        code = self.proc.wait(timeout=timeout)
        assert code == 0, f"{self.script} exited with {code}:\n{self.log.read_text()[-8000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def finished(launched, name: str) -> Path:
    out = next(p for p in launched if p.name == name)
    launched[out].wait()
    return out


def same_images(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
