"""benchmarks/fewstep.py --phase extractor: interleaved rounds, medians and per-round ratios to the current path
(the random extractor here: no Inception weights in tests)."""

from __future__ import annotations

import json

from script_loader import load_script
from test_downstream_benchmark import _tiny_npz

def test_extractor_phase_interleaves_rounds_and_reports_paired_ratios(tmp_path):
    script = load_script("benchmarks/fewstep.py")
    out = tmp_path / "out"
    argv = ["--data", str(_tiny_npz(tmp_path)), "--teacher", str(tmp_path / "unused"), "--output", str(out),
            "--phase", "extractor", "--extractor", "random", "--extractor_images", "8", "--extractor_repeats", "3",
            "--extractor_variants", "batch 8", "--threads", "1"]
    assert script.main(argv) == 0
    report = json.loads((out / "fewstep.json").read_text())["extractor_speed"]
    rows = report["rows"]
    assert report["repeats"] == 3 and report["images"] == 8
    assert list(rows) == ["current (batch 32)", "batch 8"]  # the current path is always kept: it is the reference
    for row in rows.values():
        assert len(row["runs"]) == 3 and row["images_per_s"] == sorted(row["runs"])[1]
        assert row["ratio_range"][0] <= row["ratio_median"] <= row["ratio_range"][1]
        assert row["max_abs_diff"] < 1e-5  # same network, other batch size: same features
    assert rows["current (batch 32)"]["ratio_median"] == 1.0
    text = (out / "fewstep.md").read_text()
    assert "median of 3 interleaved rounds" in text and "| batch 8 | 8 | 1 |" in text
    assert "FID protocol" not in text  # no FID rows in an extractor-only run, so no empty FID table
