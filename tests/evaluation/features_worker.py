"""Run by test_eval_multiprocess.py under 2 processes: features, the cache and evaluate() on shares of the data.

Each process saves what it got (``rank<k>.npz``) so the test can check every process holds the whole,
ordered result; only the main process writes the evaluation report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from synthxray import load_dataset
from synthxray.evaluation import evaluate
from synthxray.evaluation.fid import compute_features, fid_from_features
from synthxray.processes import distributed_state

ARGS = dict(extractor="random", batch_size=4)


def run(real: Path, synthetic: Path, tiny: Path, out: Path, cache_dir: Path) -> dict:
    """The same calls the test makes in one process; returns arrays to compare."""
    real_ds, synth_ds, tiny_ds = load_dataset(real), load_dataset(synthetic), load_dataset(tiny)
    first = compute_features(real_ds, cache=True, cache_dir=cache_dir, desc="real", **ARGS)
    again = compute_features(real_ds, cache=True, cache_dir=cache_dir, desc="real again", **ARGS)
    synth = compute_features(synth_ds, desc="synthetic", **ARGS)
    few = compute_features(tiny_ds, desc="fewer batches than processes", **ARGS)
    result = evaluate(real_ds, synth_ds, metrics=("fid", "kid", "precision", "recall", "memorization"), by_class=True,
                      cache=False, output_dir=out, progress=False, **ARGS)
    return {"real": first.features, "real_labels": first.labels, "first_cached": first.cached, "again": again.features,
            "again_cached": again.cached, "synthetic": synth.features, "synthetic_labels": synth.labels,
            "tiny": few.features, "fid": fid_from_features(first.features, synth.features),
            "evaluate": json.dumps(result.to_dict()["rows"])}


if __name__ == "__main__":
    real, synthetic, tiny, out, cache_dir = map(Path, sys.argv[1:6])
    state = distributed_state()
    got = run(real, synthetic, tiny, out / "report", cache_dir)
    np.savez(out / f"rank{state.process_index}.npz", num_processes=state.num_processes, **got)
