#!/usr/bin/env python
"""Peak resident memory and time of each main command, and of the demo as one process, measured in one run.

    python benchmarks/memory.py --data ../shared/data/medmnist/pneumoniamnist.npz --workdir /tmp/memory

Runs, each as its own process (``synthxray.resources.run_measured``: wall and CPU seconds, and the child's
own peak resident memory from ``os.wait4``), the demo's four stages at the demo's settings:
``synthxray train ddpm`` (``--max_train_steps``), ``synthxray generate`` (``--per_class`` images per class,
batch 64), ``synthxray evaluate`` (FID/KID, by class, against the test split), ``synthxray experiment``
(the demo's own spec, ``synthxray.experiments.runner.demo_spec``), then ``synthxray demo`` with the same
settings. It prints a table, the demo's peak over its largest stage run alone (the regression figure: issue
35 asked for at most 1.2), and the demo's own per-stage peaks from its ``summary.json``. Run it on an idle
machine: the times, not the memory, depend on the load, which is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from synthxray.experiments.runner import demo_spec
from synthxray.resources import format_mb, machine_line, run_measured


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="PneumoniaMNIST .npz (train and test splits)")
    p.add_argument("--workdir", required=True, help="scratch folder; emptied first if it holds an earlier run of this script")
    p.add_argument("--max_train_steps", type=int, default=1000, help="the demo's default")
    p.add_argument("--per_class", type=int, default=100, help="the demo's default")
    p.add_argument("--experiment_epochs", type=int, default=3, help="the demo's default")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for flag in ("max_train_steps", "per_class", "experiment_epochs"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if not Path(args.data).is_file():
        p.error(f"--data {args.data}: no such file")
    return args


MARK = ".synthxray-memory-benchmark"


def prepare_workdir(path: Path) -> None:
    """Create ``path``; an earlier run of this script (its marker file) is removed, anything else refused."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARK).is_file():
            sys.exit(f"--workdir {path} is not empty and was not written by this script; choose another folder")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARK).write_text("scratch folder of benchmarks/memory.py\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.workdir).resolve()
    prepare_workdir(work)
    data = str(Path(args.data).resolve())
    cli = [sys.executable, "-m", "synthxray.cli"]
    spec = demo_spec(str(work / "synthetic"), str(work / "experiment"), real=data, epochs=args.experiment_epochs,
                     seeds=(args.seed,))
    (work / "experiment.yaml").write_text(yaml.safe_dump(spec))
    steps = args.max_train_steps
    commands = {  # the demo's stages at the demo's settings (synthxray/commands/demo.py)
        "train": [*cli, "train", "ddpm", "--dataset", data, "--output_dir", str(work / "generator"), "--resolution", "32",
                  "--max_train_steps", str(steps), "--checkpointing_steps", str(max(1, steps // 2)),
                  "--checkpoints_total_limit", "1", "--save_images_steps", "0", "--seed", str(args.seed)],
        "generate": [*cli, "generate", "--model", str(work / "generator"), "--per_class", str(args.per_class),
                     "--seed", str(args.seed), "--output_dir", str(work / "synthetic"), "--batch_size", "64"],
        "evaluate": [*cli, "evaluate", "--real", data, "--real_split", "test", "--synthetic", str(work / "synthetic"),
                     "--metrics", "fid", "kid", "--by_class", "--output_dir", str(work / "evaluation")],
        "experiment": [*cli, "experiment", "--config", str(work / "experiment.yaml")],
        "demo (one process)": [*cli, "demo", "--data", data, "--output_dir", str(work / "demo"), "--max_train_steps",
                               str(steps), "--per_class", str(args.per_class), "--seed", str(args.seed),
                               "--experiment_epochs", str(args.experiment_epochs)],
    }
    print("start:", machine_line(), flush=True)
    usage = {}
    env = {**os.environ, "TQDM_DISABLE": "1"}
    for name, command in commands.items():
        usage[name] = result = run_measured(command, env=env)
        if result.returncode:
            sys.exit(f"{name} failed (exit {result.returncode}): {' '.join(command)}")
    print("end:  ", machine_line())
    print(f"\n{steps} training steps, {args.per_class} images per class, experiment {args.experiment_epochs} epochs\n")
    print("| command | wall s | CPU s | peak resident memory (os.wait4; the demo's: its last stage only) |")
    print("|---|---:|---:|---:|")
    for name, u in usage.items():
        print(f"| {name} | {u.seconds:.0f} | {u.cpu_seconds:.0f} | {format_mb(u.peak_mb)} |")
    stages = {k: v for k, v in usage.items() if not k.startswith("demo")}
    largest = max(stages, key=lambda k: stages[k].peak_mb)
    demo = usage["demo (one process)"]
    summary = json.loads((work / "demo" / "summary.json").read_text())
    per_stage = summary["peak_memory_mb"]
    # the demo resets the kernel's peak at each stage (PeakMemory), so the wait4 figure above covers only its last
    # stage; its whole-process peak is the largest stage peak it measured itself
    demo_peak = per_stage["process"] if summary["peak_memory_method"] == "VmHWM reset" else demo.peak_mb
    print("the demo's own per-stage peaks (summary.json, " + summary["peak_memory_method"] + "): "
          + ", ".join(f"{k} {format_mb(v)}" for k, v in per_stage.items()))
    print(f"\ndemo peak {format_mb(demo_peak)} / largest stage alone ({largest}, {format_mb(stages[largest].peak_mb)}): "
          f"{demo_peak / stages[largest].peak_mb:.2f} (issue 35's bound: 1.20)")
    print(f"demo time / sum of stages alone: {demo.seconds / sum(u.seconds for u in stages.values()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
