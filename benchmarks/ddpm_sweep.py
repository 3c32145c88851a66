#!/usr/bin/env python
"""Which DDPM settings give the best FID for a fixed CPU budget? Measured in two steps.

1. On the CPU machine the budget is for, time each variant's training step (a short real run of
   ``train_ddpm.py``; the machine should be otherwise idle):

       python benchmarks/ddpm_sweep.py measure --data ../shared/data/medmnist/pneumoniamnist.npz \
           --output runs/sweep

2. Anywhere (a GPU makes it minutes): train every variant for the number of steps it would reach in
   ``--budget_minutes`` on that CPU, with its learning-rate schedule planned over exactly those steps,
   sample the test set's class mix with each sampler, and score Inception FID against the test images:

       python benchmarks/ddpm_sweep.py train --data ... --output runs/sweep --budget_minutes 24 --parallel 6

Variants differ only in the flags listed in ``VARIANTS`` (the rest are ``train_ddpm.py``'s defaults
at the time of the run, recorded in the output). Results: OUT/sweep.json, OUT/sweep.md, and
OUT/samples_<variant>.npz (uint8 images and labels) for re-scoring elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from quality import SAMPLERS  # label: (scheduler, steps, guidance), shared with the quality benchmark

ROOT = Path(__file__).resolve().parents[1]
ARCH_SMALL = ["--block_out_channels", "32", "64", "64"]
ARCH_4LEVEL = ["--block_out_channels", "16", "32", "64", "64"]
VARIANTS: dict[str, list[str]] = {
    # the defaults before this sweep: 3 levels, attention at 8x8 with 8 heads of 8 channels
    "3lvl-8heads": [*ARCH_SMALL, "--attention_head_dim", "8"],
    "3lvl": [*ARCH_SMALL],
    "4lvl": [*ARCH_4LEVEL],
    "4lvl-midattn": [*ARCH_4LEVEL, "--attention", "False"],
    "4lvl-lr5e-4": [*ARCH_4LEVEL, "--learning_rate", "5e-4"],
    "4lvl-lr1e-3": [*ARCH_4LEVEL, "--learning_rate", "1e-3"],
    "4lvl-eps": [*ARCH_4LEVEL, "--prediction_type", "epsilon"],
    "4lvl-cosbeta": [*ARCH_4LEVEL, "--beta_schedule", "squaredcos_cap_v2"],
    "4lvl-bs32": [*ARCH_4LEVEL, "--train_batch_size", "32"],
    "4lvl-wide": ["--block_out_channels", "16", "32", "64", "128"],
    "4lvl-2layers": [*ARCH_4LEVEL, "--layers_per_block", "2"],
    "4lvl-nosnr": [*ARCH_4LEVEL, "--snr_gamma", "0"],
    "4lvl-nosnr-lr1e-3": [*ARCH_4LEVEL, "--snr_gamma", "0", "--learning_rate", "1e-3"],
    "4lvl-eps-nosnr-lr1e-3": [*ARCH_4LEVEL, "--prediction_type", "epsilon", "--snr_gamma", "0", "--learning_rate", "1e-3"],
    "4lvl-cosbeta-lr1e-3": [*ARCH_4LEVEL, "--beta_schedule", "squaredcos_cap_v2", "--learning_rate", "1e-3"],
    "4lvl-cosbeta-nosnr-lr1e-3": [*ARCH_4LEVEL, "--beta_schedule", "squaredcos_cap_v2", "--snr_gamma", "0", "--learning_rate", "1e-3"],
}
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["measure", "train"])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/medmnist/pneumoniamnist.npz"))
    p.add_argument("--output", default="runs/sweep")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--measure_steps", type=int, default=40, help="measure: steps timed per variant (after 5 warm-up steps)")
    p.add_argument("--cpu_seconds", default=None, help="train: the measure stage's cpu_seconds.json (default OUT/cpu_seconds.json)")
    p.add_argument("--budget_minutes", type=float, default=24.0, help="train: the CPU budget the step counts are planned for")
    p.add_argument("--parallel", type=int, default=4, help="train: variants trained at once")
    p.add_argument("--samplers", nargs="+", default=["DPM-Solver++-20", "UniPC-10", "DDIM-50"], choices=list(SAMPLERS))
    p.add_argument("--extractor", default="inception")
    p.add_argument("--num_workers", type=int, default=2, help="train: DataLoader workers per variant")
    return p.parse_args(argv)


SPEED_NEUTRAL = ("--learning_rate", "--prediction_type", "--beta_schedule", "--snr_gamma")


def pooled_seconds(measured: dict[str, float]) -> dict[str, float]:
    """Variants that differ only in flags that do not change the cost of a step share one figure
    (the median of their measurements), so they train for the same number of steps. Variants not
    measured take their group's figure."""
    import statistics

    def key(name: str) -> tuple:
        flags, out, skip = VARIANTS[name], [], False
        for f in flags:
            if skip:
                skip = False
            elif f in SPEED_NEUTRAL:
                skip = True
            else:
                out.append(f)
        return tuple(out)

    groups: dict[tuple, list[float]] = {}
    for name, sec in measured.items():
        groups.setdefault(key(name), []).append(sec)
    return {name: statistics.median(groups[key(name)]) for name in VARIANTS if key(name) in groups}


def run_train(args, name: str, out: Path, extra: list[str], env: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    folder = out / name
    cmd = [sys.executable, str(ROOT / "train_scripts/train_ddpm.py"), "--dataset", args.data, "--output_dir", str(folder),
           "--overwrite_output_dir", "--checkpointing_steps", "0", *VARIANTS[name], *extra]
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if proc.returncode:
        raise RuntimeError(f"{name} failed ({proc.returncode}): see {out / f'{name}.log'}")
    return folder


def measure(args, out: Path) -> None:
    """Seconds per training step of each variant on this machine (a real run of train_ddpm.py)."""
    import torch

    results = {}
    for name in args.variants:
        folder = run_train(args, name, out / "measure", ["--max_train_steps", str(args.measure_steps),
                                                          "--save_images_steps", "0", "--lr_scheduler", "constant"],
                           dict(os.environ))
        summary = json.loads((folder / "train_summary.json").read_text())
        results[name] = summary["seconds_per_step_this_run"]
        print(f"{name}: {results[name]:.3f} s/step", flush=True)
    info = {"machine": f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds_per_step": results}
    (out / "cpu_seconds.json").write_text(json.dumps(info, indent=2) + "\n")


def train_all(args, out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cpu = json.loads(Path(args.cpu_seconds or out / "cpu_seconds.json").read_text())
    per_step = pooled_seconds(cpu["seconds_per_step"])
    steps = {n: int(60 * args.budget_minutes / per_step[n]) for n in args.variants}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    report = {"cpu": cpu, "pooled_seconds_per_step": per_step, "budget_minutes": args.budget_minutes, "variants": {}}

    def one(name: str) -> tuple[str, Path, float]:
        t0 = time.time()
        folder = run_train(args, name, out, ["--max_train_steps", str(steps[name]), "--dataloader_num_workers", str(args.num_workers)], env)
        return name, folder, time.time() - t0

    evaluate = evaluator(args, out, steps, report)
    with ThreadPoolExecutor(args.parallel) as pool:  # each finished variant is scored while the others train
        for job in as_completed([pool.submit(one, name) for name in args.variants]):
            name, folder, seconds = job.result()
            print(f"trained {name}: {steps[name]} steps in {seconds:.0f} s", flush=True)
            evaluate(name, folder, seconds)
    print(markdown(report))


def evaluator(args, out: Path, steps: dict, report: dict):
    """A function that samples one trained variant with each sampler and records its FIDs in ``report``."""
    import torch

    from synthxray import evaluate, load_dataset, load_generator
    from synthxray.evaluation import get_extractor
    from synthxray.evaluation.core import proportional_counts
    from synthxray.synthesis import generate_dataset

    test = load_dataset(args.data, split="test")
    counts = {n: int(c) for n, c in zip(test.features["label"].names, np.bincount(test["label"]))}
    ext = get_extractor(args.extractor)
    report["extractor"] = ext.description
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def run(name: str, folder: Path, seconds: float) -> None:
        gen = load_generator(folder, device=device)
        entry = {"flags": VARIANTS[name], "steps": steps[name], "train_seconds_here": round(seconds, 1),
                 "unet_parameters": sum(p.numel() for p in gen.pipeline.unet.parameters()), "fid": {}}
        for label in args.samplers:
            scheduler, n_steps, guidance = SAMPLERS[label]
            ds = generate_dataset(gen, images_per_class=proportional_counts(counts, len(test)), seed=0, batch_size=256,
                                  scheduler=scheduler, num_inference_steps=n_steps, guidance_scale=guidance, progress=False)
            res = evaluate(test, ds, metrics=("fid",), extractor=ext, per_class=True, real_split="test", progress=False, device=device)
            entry["fid"][label] = {r["class"]: round(r["fid"]["mean"], 2) for r in res.rows}
            if label == args.samplers[0]:
                imgs = np.stack([np.asarray(im) for im in ds["image"]])
                np.savez_compressed(out / f"samples_{name}.npz", images=imgs, labels=np.asarray(ds["label"]))
            print(f"{name} {label}: FID {entry['fid'][label]['overall']:.1f}", flush=True)
        report["variants"][name] = entry
        (out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "sweep.md").write_text(markdown(report))

    return run


def markdown(r: dict) -> str:
    samplers = list(next(iter(r["variants"].values()))["fid"]) if r["variants"] else []
    lines = [f"Features: {r.get('extractor')}. Steps = what each variant reaches in {r['budget_minutes']} min on "
             f"the CPU measured ({r['cpu']['machine']}, {r['cpu']['date']}).", "",
             "| variant | flags | CPU s/step (pooled) | steps | UNet params | " + " | ".join(f"FID {s}" for s in samplers) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(samplers)]
    for name, e in r["variants"].items():
        fids = " | ".join(f"{e['fid'][s]['overall']:.1f}" for s in samplers)
        lines.append(f"| {name} | `{' '.join(e['flags'])}` | {r['pooled_seconds_per_step'][name]:.3f} | {e['steps']} | "
                     f"{e['unet_parameters'] / 1e6:.2f}M | {fids} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    measure(args, out) if args.stage == "measure" else train_all(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
