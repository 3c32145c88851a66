"""Evaluation on 2 CPU processes (torchrun + accelerate's CPU flag, gloo): the feature extraction is split
between them and gathered in order, giving the one-process features and FID; one report, one cache file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from features_worker import run
from tinydata import xray_like
from twoprocs import torchrun

from synthxray import load_generator
from synthxray.evaluation import evaluate

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("features_worker.py")
# The shares are the one-process batches, whole, so each image goes through the same batch on either
# side: equal up to kernels choosing another summation order, far below these.
FEATURES = dict(rtol=1e-5, atol=1e-5)
FID = dict(rel=1e-5, abs=1e-6)


def _rows(rows: list[dict]) -> dict:
    return {(r["class"], m): r[m]["mean"] for r in rows for m in ("fid", "kid", "precision", "recall")}


def test_two_processes_give_the_one_process_features_fid_and_one_cache_file(tmp_path):
    # 37 real images in batches of 4: 10 batches, 5 + 5 (rank 1 has 17 images); 3 images: rank 1 gets none
    data = {"real": xray_like(37, seed=0), "synthetic": xray_like(23, seed=4), "tiny": xray_like(3, seed=5)}
    for name, ds in data.items():
        ds.save_to_disk(str(tmp_path / name))
    out = tmp_path / "two"
    out.mkdir()
    run_ = torchrun([WORKER, tmp_path / "real", tmp_path / "synthetic", tmp_path / "tiny", out, tmp_path / "cache-two"])
    assert len(re.findall(r"real \(process 0's 20 of 37\):\s+0%", run_.stderr)) == 1  # one bar, the main process's share

    one = run(tmp_path / "real", tmp_path / "synthetic", tmp_path / "tiny", tmp_path / "one", tmp_path / "cache-one")
    for rank in (0, 1):
        with np.load(out / f"rank{rank}.npz") as two:
            assert int(two["num_processes"]) == 2
            assert two["real"].shape == (37, 64) and np.array_equal(two["real_labels"], one["real_labels"])
            np.testing.assert_allclose(two["real"], one["real"], **FEATURES)  # every process: all of them, in order
            np.testing.assert_allclose(two["synthetic"], one["synthetic"], **FEATURES)
            np.testing.assert_allclose(two["tiny"], one["tiny"], **FEATURES)
            assert np.array_equal(two["synthetic_labels"], one["synthetic_labels"])
            assert not two["first_cached"] and two["again_cached"]  # written once, then read on every process
            np.testing.assert_array_equal(two["again"], two["real"])
            assert float(two["fid"]) == pytest.approx(float(one["fid"]), **FID)
            for key, value in _rows(json.loads(str(two["evaluate"]))).items():
                assert value == pytest.approx(_rows(json.loads(one["evaluate"]))[key], **FID), key
    assert [p.name for p in (tmp_path / "cache-two").iterdir()] == [p.name for p in (tmp_path / "cache-one").iterdir()]
    assert len(list((tmp_path / "cache-two").iterdir())) == 1  # one file, no leftover temporary
    assert sorted(p.name for p in (out / "report").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_cli_evaluate_on_two_processes_writes_one_complete_report(tiny_ddpm_dir, tmp_path):
    """A generator sampled on the fly: sharded generation into a scratch folder, sharded features, one report."""
    real = tmp_path / "real"
    xray_like(16, size=16, seed=0, names=("0", "1")).save_to_disk(str(real))  # the tiny DDPM's classes
    out = tmp_path / "eval"
    flags = ["--real", real, "--synthetic", tiny_ddpm_dir, "--num_samples", "10", "--num_inference_steps", "2",
             "--batch_size", "4", "--extractor", "random", "--by_class", "--metrics", "fid", "kid", "precision", "recall",
             "memorization", "label_fidelity", "--cache_dir", tmp_path / "cache", "--output_dir", out, "--device", "cpu"]
    run_ = torchrun(["-m", "synthxray.cli", "evaluate", *flags])
    assert run_.stdout.count("wrote ") == 1 and run_.stdout.count("| overall |") == 1  # printed by the main process
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.json", "evaluation.md", "memorization_distances.json", "memorization_feature_pairs.png",
        "memorization_hist.png", "memorization_pixel_pairs.png"]  # no scratch sets left behind
    report = json.loads((out / "evaluation.json").read_text())
    assert report["settings"]["num_processes"] == 2 and report["synthetic"]["num_images"] == [10]
    assert report["memorization"]["num_synthetic"] == 10
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the 10-image real subset, the 16 training images

    one = evaluate(real, load_generator(tiny_ddpm_dir, device="cpu"),
                   metrics=("fid", "kid", "precision", "recall", "memorization", "label_fidelity"),
                   extractor="random", by_class=True, num_samples=10, batch_size=4, cache=False, progress=False,
                   generate_kwargs={"num_inference_steps": 2, "batch_size": 4})
    for key, value in _rows(report["rows"]).items():
        assert value == pytest.approx(_rows(one.to_dict()["rows"])[key], **FID), key
    # the main process's nearest neighbours and label classifier: the one-process results
    for space in ("pixel", "feature"):
        two_m, one_m = report["memorization"]["spaces"][space], one.memorization["spaces"][space]
        assert two_m["fraction_below"] == one_m["fraction_below"]
        assert two_m["synthetic_to_train"] == pytest.approx(one_m["synthetic_to_train"], rel=1e-4)
    assert report["label_fidelity"]["synthetic"]["accuracy"] == one.label_fidelity["synthetic"]["accuracy"]
