#!/usr/bin/env python
"""One vs N processes, measured in one run: DDPM training steps/s, generation images/s, FID feature
extraction images/s, and the peak memory of a 10,000-image generation.

    python benchmarks/scaling.py --dataset ../shared/data/medmnist/pneumoniamnist.npz --workdir /tmp/scaling
    python benchmarks/scaling.py --dataset DATA --workdir /tmp/scaling --launcher accelerate  # GPUs: accelerate launch
    python benchmarks/scaling.py --dataset DATA --workdir /tmp/scaling --parts fid memory   # only those rows

On CPU, N processes are launched with ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N`` (gloo).
Training runs ``train_scripts/train_ddpm.py --max_train_steps S`` and reads ``seconds_per_step_this_run``
from ``train_summary.json`` (the loop alone, not start-up); each process takes ``--train_batch_size``
images a step, so images/s is the fair comparison. Generation runs ``synthxray generate`` from the
1-process model and reads the generation seconds from the dataset manifest; the N-process set is
compared pixel for pixel with the 1-process one. Peak RSS is the largest single process of each run.

FID (``--parts fid``): ``synthxray evaluate --real DATA (test split) --synthetic DATA --synthetic_split
val --no_cache`` on 1 and N processes; images/s is both sides' images over the feature-extraction
seconds in ``evaluation.json`` (``real_features_s + synthetic_features_s``), and the two FIDs are
compared. Memory (``--parts memory``): ``synthxray generate`` of ``--memory_counts`` images (default
2,000 and 10,000) at ``--memory_resolution`` px on 1 and N processes from a cheap generator: a tiny
class-conditional DDPM UNet trained for one step (effectively its random initialisation), sampled
with one DDIM step, so the figures are the generation/writing/merging path's, not a real model's;
each process reports its own peak RSS and the progress bars shown are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# runs a command and prints the peak RSS (MiB) of its largest process, workers of torchrun included
WRAP = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
        "print('peak_rss_mib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, file=sys.stderr); sys.exit(rc)")
RANK_RSS = "--rank_rss"  # scaling.py --rank_rss -m MODULE ...: run MODULE, then print this process's rank and peak RSS
PARTS = ("train", "generate", "fid", "memory")


def rank_rss(argv: list[str]) -> None:
    """Run ``-m MODULE ARGS`` in this process and print ``rank R peak_rss_mib X`` at exit (each torchrun worker)."""
    import atexit
    import resource
    import runpy

    atexit.register(lambda: print(f"rank {os.environ.get('RANK', '0')} peak_rss_mib "
                                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", file=sys.stderr))
    if argv[:1] != ["-m"]:
        sys.exit(f"{RANK_RSS} takes -m MODULE ARGS")
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


def launch(n: int, launcher: str, module_or_script: list[str]) -> list[str]:
    if n == 1:
        return [sys.executable, *module_or_script]
    if launcher == "accelerate":
        return ["accelerate", "launch", "--num_processes", str(n), *module_or_script]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), *module_or_script]


def timed(cmd: list[str], env: dict, stderr: list | None = None) -> tuple[float, float]:
    start = time.time()
    run = subprocess.run([sys.executable, "-c", WRAP, *cmd], env=env, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-4000:]}")
    rss = float(run.stderr.rsplit("peak_rss_mib", 1)[1].split()[0])
    if stderr is not None:
        stderr.append(run.stderr)
    return time.time() - start, rss


def fid_rows(args, env: dict, work: Path, counts: tuple[int, ...]) -> dict:
    """``synthxray evaluate`` test vs val split on 1 and N processes: extraction images/s and the FIDs."""
    rows = {}
    for n in counts:
        out = work / f"fid-{n}p"
        cmd = launch(n, args.launcher, ["-m", "synthxray.cli", "evaluate", "--real", args.fid_dataset, "--synthetic", args.fid_dataset,
                                        "--synthetic_split", "val", "--extractor", args.fid_extractor, "--metrics", "fid",
                                        "--batch_size", str(args.fid_batch_size), "--no_cache", "--no_progress", "--output_dir", str(out)])
        if args.launcher == "torchrun":
            cmd += ["--device", "cpu"]
        wall, rss = timed(cmd, env)
        report = json.loads((out / "evaluation.json").read_text())
        images = report["real"]["num_images"] + sum(report["synthetic"]["num_images"])
        seconds = report["timings"]["real_features_s"] + report["timings"]["synthetic_features_s"]
        rows[n] = {"images": images, "images_per_s": images / seconds, "fid": report["rows"][0]["fid"]["mean"],
                   "extractor": report["extractor"], "n": (report["real"]["num_images"], report["synthetic"]["num_images"][0]),
                   "wall_s": wall, "peak_rss_mib": rss}
    return rows


def memory_rows(args, env: dict, work: Path, counts: tuple[int, ...]) -> dict:
    """Generation of 2,000 and 10,000 images at 64 px on 1 and N processes: seconds, each process's peak RSS, bars."""
    import re

    model = work / "tiny-ddpm-64"
    # a 1-step DDPM: the generation and writing path at 64 px for about the price of the writing alone
    train = [sys.executable, str(ROOT / "train_scripts" / "train_ddpm.py"), "--dataset", args.dataset, "--output_dir", str(model),
             "--resolution", str(args.memory_resolution), "--block_out_channels", "8", "16", "--layers_per_block", "1",
             "--train_batch_size", "4", "--max_train_steps", "1", "--save_images_steps", "0", "--checkpointing_steps", "0",
             "--no_use_ema", "--seed", "0"]
    timed(train, env)
    rows = {}
    for images in args.memory_counts:
        for n in counts:
            out = work / f"memory-{images}-{n}p"
            per_class = images // 2
            module = ["-m", "synthxray.cli", "generate", "--model", str(model), "--output_dir", str(out), "--per_class", str(per_class),
                      "--num_inference_steps", "1", "--scheduler", "ddim", "--batch_size", str(args.memory_batch_size), "--seed", "0"]
            cmd = launch(n, args.launcher, [__file__, RANK_RSS, *module])
            if args.launcher == "torchrun":
                cmd += ["--device", "cpu"]
            logs: list[str] = []
            wall, _ = timed(cmd, env, logs)
            ranks = {int(r): float(v) for r, v in re.findall(r"rank (\d+) peak_rss_mib ([\d.]+)", logs[0])}
            manifest = json.loads((out / "synthxray_dataset.json").read_text())
            rows[(images, n)] = {"images": manifest["num_images"], "images_per_s": manifest["num_images"] / manifest["seconds"],
                                 "wall_s": wall, "rss_by_rank": [ranks[k] for k in sorted(ranks)],
                                 "bars": len(re.findall(r"generate:\s+0%", logs[0]))}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="training data (any --dataset form), e.g. pneumoniamnist.npz")
    p.add_argument("--workdir", required=True, help="a new or empty folder for the runs")
    p.add_argument("--num_processes", type=int, default=2)
    p.add_argument("--launcher", choices=("torchrun", "accelerate"), default="torchrun",
                   help="torchrun with ACCELERATE_USE_CPU=1 (CPU, gloo) or accelerate launch (GPUs)")
    p.add_argument("--max_train_steps", type=int, default=30)
    p.add_argument("--train_batch_size", type=int, default=16, help="per process")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--block_out_channels", default="32,64")
    p.add_argument("--per_class", type=int, default=32, help="generated images per class")
    p.add_argument("--num_inference_steps", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=8, help="generation batch size")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which rows to measure")
    p.add_argument("--fid_dataset", default=None, help="FID rows: a source with test and val splits (default --dataset)")
    p.add_argument("--fid_extractor", default="random",
                   help="FID rows' extractor: random (a 64 px random CNN, CPU-cheap: its FID is not comparable with "
                        "published ones) or inception (the FID network; ~1 image/s on one CPU thread)")
    p.add_argument("--fid_batch_size", type=int, default=32)
    p.add_argument("--memory_counts", type=int, nargs="+", default=[2000, 10000], help="images generated (two classes)")
    p.add_argument("--memory_resolution", type=int, default=64)
    p.add_argument("--memory_batch_size", type=int, default=64)
    args = p.parse_args()
    args.fid_dataset = args.fid_dataset or args.dataset

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        sys.exit(f"--workdir {work} is not empty; give a new folder")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.launcher == "torchrun":
        env["ACCELERATE_USE_CPU"] = "1"
    counts = (1, args.num_processes)
    rows = {}
    for n in counts if "train" in args.parts or "generate" in args.parts else ():
        out = work / f"ddpm-{n}p"
        cmd = launch(n, args.launcher, [str(ROOT / "train_scripts" / "train_ddpm.py"), "--dataset", args.dataset, "--output_dir", str(out),
                                        "--resolution", str(args.resolution), "--block_out_channels", *args.block_out_channels.split(","),
                                        "--layers_per_block", "1", "--train_batch_size", str(args.train_batch_size),
                                        "--max_train_steps", str(args.max_train_steps), "--save_images_steps", "0",
                                        "--checkpointing_steps", "0", "--no_use_ema", "--seed", "0"])
        wall, rss = timed(cmd, env)
        summary = json.loads((out / "train_summary.json").read_text())
        sps = 1 / summary["seconds_per_step_this_run"]
        rows[("train", n)] = {"steps": summary["steps"], "steps_per_s": sps, "images_per_s": sps * args.train_batch_size * n,
                              "wall_s": wall, "peak_rss_mib": rss}
    model = work / "ddpm-1p"
    for n in counts if "generate" in args.parts else ():
        out = work / f"synthetic-{n}p"
        cmd = launch(n, args.launcher, ["-m", "synthxray.cli", "generate", "--model", str(model), "--output_dir", str(out),
                                        "--per_class", str(args.per_class), "--num_inference_steps", str(args.num_inference_steps),
                                        "--batch_size", str(args.batch_size), "--seed", "0", "--scheduler", "ddim"])
        if args.launcher == "torchrun":
            cmd += ["--device", "cpu"]
        wall, rss = timed(cmd, env)
        manifest = json.loads((out / "synthxray_dataset.json").read_text())
        rows[("generate", n)] = {"images": manifest["num_images"], "images_per_s": manifest["num_images"] / manifest["seconds"],
                                 "wall_s": wall, "peak_rss_mib": rss}

    fid = fid_rows(args, env, work, counts) if "fid" in args.parts else {}
    memory = memory_rows(args, env, work, counts) if "memory" in args.parts else {}

    n = args.num_processes
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; launcher {args.launcher}")
    if rows:
        print("| work | processes | throughput | images/s | wall s (with start-up) | peak RSS MiB (largest process) |")
        print("|---|---|---|---|---|---|")
        for (kind, k), r in rows.items():
            thr = f"{r['steps_per_s']:.2f} steps/s" if kind == "train" else f"{r['images']} images"
            print(f"| {kind} | {k} | {thr} | {r['images_per_s']:.2f} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    if ("train", n) in rows:
        print(f"training images/s ratio {n}p/1p: {rows[('train', n)]['images_per_s'] / rows[('train', 1)]['images_per_s']:.2f}")
    if ("generate", n) in rows:
        import numpy as np

        from synthxray import load_dataset

        a, b = load_dataset(work / "synthetic-1p"), load_dataset(work / f"synthetic-{n}p")
        same = (a["label"] == b["label"] and a["seed"] == b["seed"]
                and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"])))
        print(f"generation images/s ratio {n}p/1p: {rows[('generate', n)]['images_per_s'] / rows[('generate', 1)]['images_per_s']:.2f}")
        print(f"{n}-process synthetic set pixel-identical to the 1-process set (labels, seeds, pixels): {same}")
    if fid:
        print(f"\nFID feature extraction ({fid[1]['extractor']}; n = {fid[1]['n'][0]} real test / {fid[1]['n'][1]} val images)")
        print("| processes | images | extraction images/s | FID | wall s (with start-up) | peak RSS MiB (largest process) |")
        print("|---|---|---|---|---|---|")
        for k, r in fid.items():
            print(f"| {k} | {r['images']} | {r['images_per_s']:.1f} | {r['fid']:.6f} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} |")
        print(f"extraction images/s ratio {n}p/1p: {fid[n]['images_per_s'] / fid[1]['images_per_s']:.2f}; "
              f"FID {n}p - 1p: {fid[n]['fid'] - fid[1]['fid']:.2e} (relative {abs(fid[n]['fid'] - fid[1]['fid']) / fid[1]['fid']:.1e})")
    if memory:
        print(f"\nGeneration memory ({args.memory_resolution} px, 1-step tiny DDPM, DDIM 1 step, batch {args.memory_batch_size})")
        print("| images | processes | images/s (loop) | wall s (with start-up) | peak RSS MiB per process (rank 0, 1, ...) | progress bars |")
        print("|---|---|---|---|---|---|")
        for (images, k), r in memory.items():
            rss = ", ".join(f"{v:.0f}" for v in r["rss_by_rank"])
            print(f"| {r['images']} | {k} | {r['images_per_s']:.1f} | {r['wall_s']:.1f} | {rss} | {r['bars']} |")


if __name__ == "__main__":
    if sys.argv[1:2] == [RANK_RSS]:
        rank_rss(sys.argv[2:])
    else:
        main()
