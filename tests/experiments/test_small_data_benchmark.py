"""benchmarks/small_data.py: the coverage helpers, and the study end to end on a tiny npz and an untrained tiny generator
(no quality stage: no Inception here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from script_loader import load_script
from test_downstream_benchmark import _tiny_npz

def test_coverage_and_greedy_selection():
    script = load_script("benchmarks/small_data.py")
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (40, 3))
    b = rng.normal(10, 1, (40, 3))
    real = np.concatenate([a, b])
    assert script.coverage(real, real) == 1.0
    assert script.coverage(real, a + 0.01) == pytest.approx(0.5)  # the second cluster is not covered
    assert script.coverage(real, real + 100) == 0.0
    # a pool crowded in cluster a with a few images near b: the greedy cover takes from both clusters
    pool = np.concatenate([a[:30] + 0.01, b[:3] + 0.01])
    rows = script.greedy_coverage(real, pool, 6)
    assert len(rows) == 6 and len(set(rows.tolist())) == 6 and (rows >= 30).any() and (rows < 30).any()
    assert script.coverage(real, pool[rows]) > script.coverage(real, pool[:6])
    assert len(script.greedy_coverage(real, pool, 33)) == 33  # past full cover: k-center on the rest


@pytest.mark.slow
def test_small_data_study_runs_and_reports(tmp_path, tiny_generator, capsys):
    script = load_script("benchmarks/small_data.py")
    data = _tiny_npz(tmp_path)
    out = tmp_path / "out"
    argv = ["--data", str(data), "--model", str(tiny_generator), "--output_dir", str(out), "--per_class", "10", "--scheduler", "ddim",
            "--steps", "2", "--fractions", "0.5", "1.0", "--kinds", "real", "balanced-real", "limited", "pretrain-synth", "--seeds", "0", "1",
            "--epochs", "1", "--image_size", "8", "--knob_per_class", "4", "--guidance", "2", "--samplers", "ddim", "--select_fraction", "0.5",
            "--select_seeds", "0", "1", "--confirm_fractions", "0.5", "--stages", "pool", "regimes", "knobs", "select", "confirm", "report"]
    assert script.main(argv) == 0
    regimes = json.loads((out / "regimes" / "regimes.json").read_text())["rows"]
    assert {(r["fraction"], r["kind"]) for r in regimes} == {(f, k) for f in (0.5, 1.0) for k in ("real", "balanced-real", "limited", "pretrain-synth")}
    for knob in ("g1", "g2", "ddim", "confident", "hard", "coverage"):
        import datasets

        pool = datasets.load_from_disk(str(out / "knobs" / knob))
        assert len(pool) <= 8 and len(pool) >= 2, knob
    assert len(datasets.load_from_disk(str(out / "knobs" / "g1"))) == 8
    choice = json.loads((out / "select" / "choice.json").read_text())
    assert choice["knob"] in ("g1", "g2", "ddim", "confident", "hard", "coverage") and len(choice["table"]) >= 2 * 6 - 6
    # select scores the validation split, never test
    spec = json.loads((out / "select" / "g1" / "spec.json").read_text())
    assert spec["test_split"] == "val" and spec["val"] is None
    assert (out / "confirm" / choice["knob"] / "regimes.md").is_file()
    text = (out / "report.md").read_text()
    assert "Knob choice on the validation split" in text and "| 50% | Limited |" in text and "on the test set" in text
    capsys.readouterr()
