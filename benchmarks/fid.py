#!/usr/bin/env python
"""Time and peak memory of FID for N real vs N "synthetic" images, cold vs cached real statistics.

    nice -n 10 python benchmarks/fid.py --data ../shared/data/chest_xray_pneumonia --sizes 1000 2000

Both sides are disjoint, class-stratified subsets of the real train split (what the images are does
not change the cost), so each FID is also a real-vs-real floor at that N. When the split has fewer than
2N images (chest_xray_pneumonia's train split has 5,216), the second side repeats the images left over:
the network still processes N images, but that FID is not a floor (the output says so). Each measurement runs in
its own process so its peak RSS is its own: "cold" starts from an empty feature cache (both sides
go through the network), "cached" reruns with the real side's features on disk. The last lines
extrapolate linearly (network time is per image; the statistics are a constant) to 5k and 10k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(args) -> None:
    """Child process: one FID measurement; prints a JSON line."""
    import numpy as np

    from synthxray import load_dataset
    from synthxray.evaluation import evaluate
    from synthxray.classes import stratified_indices

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ds = load_dataset(args.data, split="train", verify=False)
    labels = np.asarray(ds["label"])
    n = args.one
    real_idx = stratified_indices(labels, n, seed=0)
    rest = np.setdiff1d(np.arange(len(ds)), real_idx)
    if len(rest) >= n:
        synth_idx = rest[stratified_indices(labels[rest], n, seed=1)]
    else:  # too few images for two disjoint sides: repeat the rest (same network cost; the FID is no floor)
        synth_idx = np.resize(np.random.default_rng(1).permutation(rest), n)
    real, synth = ds.select(real_idx.tolist()), ds.select(synth_idx.tolist())
    t0 = time.time()
    res = evaluate(real, synth, metrics=("fid",), extractor=args.extractor, by_class=args.by_class, cache_dir=args.cache_dir,
                   batch_size=args.batch_size, protocol=args.protocol, progress=False)
    seconds = time.time() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "synthetic_distinct": int(len(np.unique(synth_idx))), "seconds": round(seconds, 1),
                      "peak_rss_mb": round(peak_mb), "fid": res.value("fid"),
                      "real_cached": res.real["features_cached"], "timings": {k: round(v, 1) for k, v in res.timings.items()},
                      "extractor": res.extractor, "protocol": res.protocol, "compared_size": res.compared_size}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/chest_xray_pneumonia"))
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    p.add_argument("--extractor", default="inception")
    p.add_argument("--protocol", default="torch-fidelity", help="FID protocol (torch-fidelity, clean, pytorch-fid, legacy)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--by_class", action="store_true")
    p.add_argument("--cache_dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the measurements here")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is much faster on an oversubscribed shared CPU)")
    args = p.parse_args(argv)
    if args.one is not None:
        one(args)
        return 0

    results = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="sx-fid-bench-") as cache:
            for mode in ("cold", "cached"):
                cmd = [sys.executable, __file__, "--data", args.data, "--extractor", args.extractor, "--one", str(n),
                       "--protocol", args.protocol,
                       "--cache_dir", cache, "--batch_size", str(args.batch_size)] + (["--by_class"] if args.by_class else []) \
                    + (["--threads", str(args.threads)] if args.threads else [])
                out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return out.returncode
                r = json.loads(out.stdout.strip().splitlines()[-1])
                r["mode"] = mode
                results.append(r)
                repeated = "" if r["synthetic_distinct"] == n else f" (other side: {r['synthetic_distinct']} distinct images repeated; not a floor)"
                print(f"N={n:>5} {mode:>6}: {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:5d} MB  "
                      f"FID {r['fid']:.2f}{repeated}  (real cached: {r['real_cached']}; {r['timings']})", flush=True)
    print(f"extractor: {results[0]['extractor']}; FID protocol {results[0]['protocol']}; "
          f"compared at {results[0]['compared_size']} px")
    # linear fit seconds = a + b * N per mode, extrapolated
    for mode in ("cold", "cached"):
        pts = [(r["n"], r["seconds"]) for r in results if r["mode"] == mode]
        if len(pts) >= 2:
            (n1, s1), (n2, s2) = pts[0], pts[-1]
            b = (s2 - s1) / (n2 - n1)
            a = s1 - b * n1
        else:
            (n1, s1), a, b = pts[0], 0.0, pts[0][1] / pts[0][0]
        ext = ", ".join(f"N={n}: {a + b * n:.0f} s" for n in (1000, 5000, 10000))
        rate = f"{1 / b:.2f}" if b > 0 else "n/a"
        print(f"{mode}: {rate} N per second (slope {b:.3f} s per N, intercept {a:.0f} s); extrapolated {ext}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
