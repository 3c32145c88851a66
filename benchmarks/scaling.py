#!/usr/bin/env python
"""One vs N processes, measured in one run: DDPM training steps/s and generation images/s.

    python benchmarks/scaling.py --dataset ../shared/data/medmnist/pneumoniamnist.npz --workdir /tmp/scaling
    python benchmarks/scaling.py --dataset DATA --workdir /tmp/scaling --launcher accelerate  # GPUs: accelerate launch

On CPU, N processes are launched with ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N`` (gloo).
Training runs ``train_scripts/train_ddpm.py --max_train_steps S`` and reads ``seconds_per_step_this_run``
from ``train_summary.json`` (the loop alone, not start-up); each process takes ``--train_batch_size``
images a step, so images/s is the fair comparison. Generation runs ``synthxray generate`` from the
1-process model and reads the generation seconds from the dataset manifest; the N-process set is
compared pixel for pixel with the 1-process one. Peak RSS is the largest single process of each run.
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


def launch(n: int, launcher: str, module_or_script: list[str]) -> list[str]:
    if n == 1:
        return [sys.executable, *module_or_script]
    if launcher == "accelerate":
        return ["accelerate", "launch", "--num_processes", str(n), *module_or_script]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), *module_or_script]


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    start = time.time()
    run = subprocess.run([sys.executable, "-c", WRAP, *cmd], env=env, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-4000:]}")
    rss = float(run.stderr.rsplit("peak_rss_mib", 1)[1].split()[0])
    return time.time() - start, rss


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
    args = p.parse_args()

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
    for n in counts:
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
    for n in counts:
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

    import numpy as np

    from synthxray import load_dataset

    a, b = load_dataset(work / "synthetic-1p"), load_dataset(work / f"synthetic-{args.num_processes}p")
    same = (a["label"] == b["label"] and a["seed"] == b["seed"]
            and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"])))

    n = args.num_processes
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; launcher {args.launcher}")
    print("| work | processes | throughput | images/s | wall s (with start-up) | peak RSS MiB (largest process) |")
    print("|---|---|---|---|---|---|")
    for (kind, k), r in rows.items():
        thr = f"{r['steps_per_s']:.2f} steps/s" if kind == "train" else f"{r['images']} images"
        print(f"| {kind} | {k} | {thr} | {r['images_per_s']:.2f} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    print(f"training images/s ratio {n}p/1p: {rows[('train', n)]['images_per_s'] / rows[('train', 1)]['images_per_s']:.2f}")
    print(f"generation images/s ratio {n}p/1p: {rows[('generate', n)]['images_per_s'] / rows[('generate', 1)]['images_per_s']:.2f}")
    print(f"{n}-process synthetic set pixel-identical to the 1-process set (labels, seeds, pixels): {same}")


if __name__ == "__main__":
    main()
