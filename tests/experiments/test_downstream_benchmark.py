"""benchmarks/downstream.py end to end on a tiny npz and an untrained tiny generator (no quality stage: no Inception here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

def _tiny_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (n0, n1) in {"train": (12, 28), "val": (6, 6), "test": (8, 10)}.items():
        labels = np.array([0] * n0 + [1] * n1)
        yy = np.arange(16)[None, :, None]
        images = np.where(labels[:, None, None] == 0, 60, 180) + 0 * yy + rng.normal(0, 20, (len(labels), 16, 16))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    out = path / "pneumoniamnist.npz"  # the MedMNIST name gives the class names normal / pneumonia
    np.savez(out, **arrays)
    return out


@pytest.mark.slow
def test_downstream_study_runs_and_resumes(tmp_path, tiny_generator, capsys):
    script = load_script("benchmarks/downstream.py")
    data = _tiny_npz(tmp_path)
    argv = ["--data", str(data), "--model", str(tiny_generator), "--output_dir", str(tmp_path / "out"), "--per_class", "10",
            "--scheduler", "ddim", "--steps", "2", "--backbones", "cnn", "--seeds", "0", "1", "--epochs", "1", "--image_size", "8",
            "--stages", "pool", "classifiers", "report"]
    assert script.main(argv) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    for name in ("Balanced-Real", "Reweighted-Real", "Pretrain-Synth", "Mixed-50", "Synth-100", "NORMAL share in training", "Seed 004"):
        assert name in text, name
    runs = list((tmp_path / "out" / "cnn" / "runs" / "cnn").glob("*/seed_*/result.json"))
    assert len(runs) == 2 * len(script.RECIPES)
    synth50 = json.loads((tmp_path / "out" / "cnn" / "runs" / "cnn" / "synth-50" / "seed_0" / "result.json").read_text())
    assert synth50["counts"]["synthetic_per_class"] == {"normal": 5, "pneumonia": 5}  # 50% of the 20-image pool
    for plot in ("paired_deltas_cnn.png", "class_balance_cnn.png"):
        assert (tmp_path / "out" / "plots" / plot).stat().st_size > 1000
    capsys.readouterr()
    # a rerun trains nothing and reports from the finished runs
    mtimes = {p: p.stat().st_mtime for p in runs}
    assert script.main(argv[:-4] + ["--stages", "report"]) == 0
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())
    assert "Balanced-Real" in capsys.readouterr().out
