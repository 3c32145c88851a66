#!/usr/bin/env python
"""Seed 004's seven-recipe augmentation table on the chest X-ray pneumonia data, next to seed 004's numbers.

    python benchmarks/experiment_pneumonia.py --generator /tmp/sx_models/ddpm_pneumoniamnist

Real data: ``../shared/data/chest_xray_pneumonia`` (train: the real training set, 10% of each class
held out for validation; test: the 624-image test set seed 004 used). Synthetic data: sampled once
from a synthxray generator (train one with ``accelerate launch train_scripts/train_ddpm.py --dataset
../shared/data/medmnist/pneumoniamnist.npz --output_dir runs/ddpm``) into ``OUTPUT/synthetic`` and
reused. As in seed 004, Synth-N adds N% of a 2,400-image balanced synthetic pool (600 / 1,200 / 2,400
images), and Limited-N / Synth-Only use the whole pool (``ratio_of: synthetic``).

Defaults fit the shared 2-core CPU: seed 001's small CNN from random weights at 32 px. ``--gpu``
(automatic when CUDA is available) runs seed 004's setting: DenseNet-121, 224 px, 20 epochs, lr 1e-4
(pretrained ImageNet weights when they can be loaded, random weights otherwise, as the table says).
Finished runs are kept in OUTPUT, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["baseline", "synth-25", "synth-50", "synth-100", "limited-10", "limited-25", "synth-only"]
# seed 004 (DenseNet-121 pretrained, 224 px, 20 epochs, one run each): accuracy %, F1, AUC
SEED_004 = {
    "baseline": (88.0, 0.912, 0.967), "synth-25": (89.4, 0.922, 0.975), "synth-50": (90.2, 0.927, 0.973),
    "synth-100": (89.7, 0.924, 0.976), "limited-10": (88.6, 0.915, 0.961), "limited-25": (87.7, 0.910, 0.965),
    "synth-only": (70.7, 0.809, 0.904),
}


def default_data() -> Path:
    for candidate in (ROOT.parent / "shared" / "data" / "chest_xray_pneumonia", ROOT / ".." / "shared" / "data" / "chest_xray_pneumonia"):
        if candidate.is_dir():
            return candidate.resolve()
    return ROOT.parent / "shared" / "data" / "chest_xray_pneumonia"


def comparison_table(results, seconds: float, settings: dict) -> str:
    """Our mean ± std next to seed 004's single-run numbers, one row per recipe and backbone."""
    from synthxray.experiments.recipes import display_name

    lines = [
        "| Backbone | Experiment | Real | Synthetic | Ours: accuracy | 95% CI | F1 | AUC | Δ vs Baseline | Seed 004: accuracy | F1 | AUC | Δ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.rows:
        acc, f1, auc = r["accuracy"], r["f1"], r["auc"]
        std = f" ± {100 * acc['std']:.1f}" if acc["std"] is not None else ""
        ci = f"{100 * acc['ci95_low']:.1f}–{100 * acc['ci95_high']:.1f}%" if acc["ci95_low"] is not None else "–"
        d = r["delta"]["accuracy"]
        delta = "" if r["recipe"] == "baseline" or d is None else f"{100 * d:+.1f}"
        s_acc, s_f1, s_auc = SEED_004[r["recipe"]]
        s_delta = "" if r["recipe"] == "baseline" else f"{s_acc - SEED_004['baseline'][0]:+.1f}"
        name = r["backbone"] + ("" if r["pretrained"] else " (random init)")
        lines.append(
            f"| {name} | {display_name(r['recipe'])} | {r['n_real']} | {r['n_synthetic']} | {100 * acc['mean']:.1f}%{std} | {ci} | "
            f"{f1['mean']:.3f} | {auc['mean']:.3f} | {delta} | {s_acc:.1f}% | {s_f1:.3f} | {s_auc:.3f} | {s_delta} |"
        )
    lines += [
        "",
        f"Settings: {json.dumps(settings)}",
        f"Wall time of the classifier runs in this invocation: {seconds / 60:.1f} min on {platform.processor() or platform.machine()}"
        f" ({__import__('os').cpu_count()} cores).",
    ]
    return "\n".join(lines) + "\n"


def sample_pool(args) -> Path:
    """Sample the balanced synthetic pool once (resumable; reused by later invocations)."""
    from synthxray import generate_dataset, load_generator

    folder = Path(args.output_dir) / "synthetic"
    if folder.is_dir():
        print(f"reusing the synthetic pool in {folder}")
        return folder
    gen = load_generator(args.generator)
    started = time.time()
    generate_dataset(gen, per_class=args.pool_per_class, seed=0, output_dir=folder, batch_size=128,
                     num_inference_steps=args.sample_steps, scheduler="dpm")
    minutes = (time.time() - started) / 60
    (Path(args.output_dir) / "sampling.json").write_text(json.dumps({"generator": args.generator, "per_class": args.pool_per_class,
                                                                      "scheduler": "dpm", "steps": args.sample_steps, "minutes": round(minutes, 1)}) + "\n")
    print(f"sampled {len(gen.class_names) * args.pool_per_class} synthetic images in {minutes:.1f} min")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(default_data()), help="chest_xray_pneumonia folder with train/ and test/")
    p.add_argument("--generator", default="/tmp/sx_models/ddpm_pneumoniamnist", help="synthxray generator folder (or Hub id)")
    p.add_argument("--synthetic_dataset", default=None, help="use this synthetic dataset instead of sampling the generator")
    p.add_argument("--pool_per_class", type=int, default=1200, help="synthetic images per class (seed 004: 1,200)")
    p.add_argument("--sample_steps", type=int, default=10, help="DPM-Solver steps per synthetic image")
    p.add_argument("--output_dir", default=str(ROOT / "runs" / "experiment_pneumonia"))
    p.add_argument("--backbones", nargs="+", default=None, help="default: cnn (CPU) or densenet121 (--gpu)")
    p.add_argument("--image_size", type=int, default=None, help="default: 32 (CPU) or 224 (--gpu)")
    p.add_argument("--epochs", type=int, default=None, help="default: 5 (CPU) or 20 (--gpu)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch_size", type=int, default=None, help="default: 64 (CPU) or 64 (--gpu)")
    p.add_argument("--learning_rate", type=float, default=None, help="default: 1e-3 for the cnn (seed 001), 1e-4 otherwise (seed 004)")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under noise / FGSM / BIM at 8/255")
    p.add_argument("--gpu", action="store_true", default=None, help="seed 004's setting (default when CUDA is available)")
    p.add_argument("--report", default=None, help="also write the comparison table to this markdown file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU, where the machine is shared)")
    args = p.parse_args()

    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads or 1)

    from synthxray import run_experiment

    gpu = torch.cuda.is_available() if args.gpu is None else args.gpu
    backbones = args.backbones or (["densenet121"] if gpu else ["cnn"])
    lr = args.learning_rate
    entries = []
    for b in backbones:
        entry = {"name": b}
        if lr is None and b == "cnn":
            entry["learning_rate"] = 1e-3
        entries.append(entry)
    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "test").is_dir():
        raise SystemExit(f"{data} has no train/ and test/ folders; pass --data")
    if args.synthetic_dataset:
        synthetic = {"dataset": args.synthetic_dataset}
    else:
        if not (Path(args.generator) / "synthxray.json").is_file() and not Path(args.output_dir, "synthetic").is_dir():
            raise SystemExit(
                f"no generator at {args.generator}; train one first:\n  accelerate launch train_scripts/train_ddpm.py "
                "--dataset ../shared/data/medmnist/pneumoniamnist.npz --output_dir runs/ddpm --max_train_steps 600\n"
                "and pass --generator runs/ddpm"
            )
        synthetic = {"dataset": str(sample_pool(args))}
    settings = {
        "backbones": backbones, "image_size": args.image_size or (224 if gpu else 32), "epochs": args.epochs or (20 if gpu else 5),
        "seeds": args.seeds, "batch_size": args.batch_size or 64, "learning_rate": lr or 1e-4,
    }
    spec = dict(
        real_train=str(data / "train"), test=str(data / "test"), synthetic=synthetic, output_dir=args.output_dir,
        backbones=entries, recipes=RECIPES, ratio_of="synthetic", balance="balanced",
        robustness={"max_images": 256} if args.robustness else None, num_threads=torch.get_num_threads(),
        **{k: v for k, v in settings.items() if k != "backbones"},
    )
    started = time.time()
    # the folder also holds this script's synthetic/ and sampling.json
    results = run_experiment(spec, overwrite_output_dir=True)
    seconds = time.time() - started
    settings["learning_rate"] = {e["name"]: e.get("learning_rate", settings["learning_rate"]) for e in entries}
    settings["synthetic"] = synthetic
    table = comparison_table(results, seconds, settings)
    print(table)
    if args.report:
        Path(args.report).write_text(table)
    print(f"full results: {results.output_dir}/results.md, results.csv, results.json, plots/")


if __name__ == "__main__":
    main()
