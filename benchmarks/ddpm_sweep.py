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
import dataclasses
import functools
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
# Round 2 (2026-11-23): changes against train_ddpm.py's defaults at that date (4 levels 16-32-64-64, cosine
# betas, v-prediction, lr 1e-3, logit-normal(-1.5, 1.5) timesteps, EMA, class dropout 0.1). Round 1's variants
# (architecture, prediction type, betas, min-SNR, lr against the defaults before it) are in git history
# (commit 3587be2) and its table in benchmarks/RESULTS.md.
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "default-seed1": ["--seed", "1"],
    "ln-1.0-1.0": ["--logit_mean", "-1.0", "--logit_std", "1.0"],
    "ln-2.0-1.5": ["--logit_mean", "-2.0", "--logit_std", "1.5"],
    "ln-2.5-1.5": ["--logit_mean", "-2.5", "--logit_std", "1.5"],
    "ln-2.0-2.0": ["--logit_mean", "-2.0", "--logit_std", "2.0"],
    "ln-2.5-1.5-seed1": ["--logit_mean", "-2.5", "--logit_std", "1.5", "--seed", "1"],
    "ln-3.0-1.5": ["--logit_mean", "-3.0", "--logit_std", "1.5"],
    "ln-2.5-2.0": ["--logit_mean", "-2.5", "--logit_std", "2.0"],
    "ln-2.5-1.5-lr2e-3": ["--logit_mean", "-2.5", "--logit_std", "1.5", "--learning_rate", "2e-3"],
    "ln-2.0-1.5-lr2e-3": ["--logit_mean", "-2.0", "--logit_std", "1.5", "--learning_rate", "2e-3"],
    "bs32": ["--train_batch_size", "32"],
    "bs32-lr7e-4": ["--train_batch_size", "32", "--learning_rate", "7e-4"],
    "cd0": ["--class_dropout_prob", "0"],
    "lr2e-3": ["--learning_rate", "2e-3"],
    "ema-power0.67": ["--ema_power", "0.6667"],
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


SPEED_NEUTRAL = ("--learning_rate", "--prediction_type", "--beta_schedule", "--snr_gamma", "--seed", "--logit_mean",
                 "--logit_std", "--weighting_scheme", "--class_dropout_prob", "--ema_power", "--use_ema")


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


@functools.lru_cache(maxsize=None)
def train_size(data: str) -> int:
    from synthxray import load_dataset

    return len(load_dataset(data, split="train"))


def epoch_cap(data: str, flags: list[str]) -> int:
    """The steps ``train_ddpm.py``'s default epoch count allows (full batches only): a budgeted run stops
    there even when time is left, so a step-matched variant must too."""
    from synthxray.training.ddpm import DDPMTrainingConfig

    default = {f.name: f.default for f in dataclasses.fields(DDPMTrainingConfig)}
    batch = int(flags[flags.index("--train_batch_size") + 1]) if "--train_batch_size" in flags else default["train_batch_size"]
    epochs = int(flags[flags.index("--num_epochs") + 1]) if "--num_epochs" in flags else default["num_epochs"]
    return epochs * (train_size(data) // batch)


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
    steps = {n: min(int(60 * args.budget_minutes / per_step[n]), epoch_cap(args.data, VARIANTS[n])) for n in args.variants}
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
    from synthxray.classes import proportional_counts
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
            res = evaluate(test, ds, metrics=("fid",), extractor=ext, by_class=True, real_split="test", progress=False, device=device)
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
