"""benchmarks/small_sites.py end to end on a tiny npz: sites, three kinds of tiny generators (a subprocess each,
federated on Flower's simulation engine), push to and pull from the loopback hub by repo id, classifiers, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

pytestmark = pytest.mark.xdist_group("flower-simulation")  # one Ray cluster at a time under -n

def _tiny_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (n0, n1) in {"train": (30, 50), "val": (6, 6), "test": (8, 10)}.items():
        labels = np.array([0] * n0 + [1] * n1)
        images = np.where(labels[:, None, None] == 0, 60, 180) + rng.normal(0, 20, (len(labels), 16, 16))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    out = path / "pneumoniamnist.npz"  # the MedMNIST name gives the class names normal / pneumonia
    np.savez(out, **arrays)
    return out


@pytest.mark.slow
def test_small_sites_runs_end_to_end_and_resumes(tmp_path, capsys):
    script = load_script("benchmarks/small_sites.py")
    out = tmp_path / "out"
    argv = ["--data", str(_tiny_npz(tmp_path)), "--output_dir", str(out), "--sites", "3", "--large_fraction", "0.6",
            "--large_minutes", "0.05", "--local_minutes", "0.05", "--local_sites", "1", "--rounds", "1", "--local_steps", "1", "--extra_large_steps", "2",
            "--generator_args=--resolution 16 --block_out_channels 8 16 --train_batch_size 8 --num_train_timesteps 50 "
            "--sample_steps 2 --checkpointing_steps 0 --save_images_steps 0",
            "--per_class", "4", "--gen_batch_size", "8", "--seeds", "0", "1", "--epochs", "1", "--image_size", "16",
            "--batch_size", "8"]
    assert script.main(argv) == 0
    text = capsys.readouterr().out
    sites = json.loads((out / "data" / "sites.json").read_text())["sites"]
    assert [s["num_images"] for s in sites] == [48, 10, 10]
    fed = json.loads((out / "gen" / "federated" / "partitions.json").read_text())
    assert fed["class_counts"] == [s["class_counts"] for s in sites]  # the federation trained on the same sites
    for name in ("a", "b", "c1", "a+"):
        pool = json.loads((out / "pools" / name / "synthxray_dataset.json").read_text())
        assert "sites/pneumonia-ddpm-" in json.dumps(pool)  # sampled from the generator pulled by repo id
    report = json.loads((out / "report.json").read_text())
    steps = {n: g["train_steps"] for n, g in report["generators"].items()}
    assert steps["b"] == 1 * 1 * 3 and steps["a+"] == 2  # rounds x local steps x sites; a+ trained by steps
    rows = {(r["site"], r["recipe"]): r for r in report["rows"]}
    assert rows[("site 1", "own + pool(c)")]["paired"]["balanced control"]["accuracy"]["n"] == 2
    assert ("site 2", "own + pool(c)") not in rows and ("site 2", "own + pool(b)") in rows
    assert rows[("mean", "own + pool(a)")]["paired"]["own-only"]["shared_init"] is True
    assert "| mean | own + pool(b) | 2 |" in text
    mtimes = {p: p.stat().st_mtime for p in out.rglob("result.json")}
    assert ("mean", "own + pool(a+)") in rows
    assert len(mtimes) == 2 * (7 + 6)
    assert script.main(argv) == 0  # resumed: nothing retrained, same report
    assert {p: p.stat().st_mtime for p in out.rglob("result.json")} == mtimes
