#!/usr/bin/env python
"""Sampling speed and peak memory of one trained generator under each sampler, measured in one run.

    python benchmarks/sampling.py --model runs/ddpm --num_images 64 --batch_size 64
    python benchmarks/sampling.py --random 256 --device cuda    # speed only: train_ddpm's default UNet, random weights

Each sampler runs in its own subprocess so that peak memory (max RSS on CPU, max allocated on
CUDA) belongs to that sampler alone. Prints a markdown table and speed ratios against DDPM-1000.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

SAMPLERS = [("ddpm", None), ("ddim", 50), ("dpm", 20), ("unipc", 10)]


def measure(model: str, scheduler: str, steps: int | None, num_images: int, batch_size: int, device: str | None) -> dict:
    import torch

    from synthxray import load_generator

    kwargs = {"device": device} if device else {}
    gen = load_generator(model, **kwargs)
    classes = gen.class_names
    gen.generate(1, class_label=0, seed=0, scheduler=scheduler, num_inference_steps=2 if scheduler != "ddpm" else None)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    made = 0
    for i, name in enumerate(classes):
        n = num_images // len(classes) + (1 if i < num_images % len(classes) else 0)
        made += len(gen.generate(n, class_label=name, seed=1000 * i, batch_size=batch_size, scheduler=scheduler, num_inference_steps=steps))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    settings = gen.resolve_settings(steps, None, scheduler)
    nfe = gen.info.extra.get("train_config", {}).get("num_train_timesteps", 1000) if scheduler == "ddpm" else settings["num_inference_steps"]
    return {
        "scheduler": scheduler, "steps": nfe, "images": made, "seconds": round(seconds, 2),
        "images_per_s": round(made / seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "device": str(gen.device),
    }


def random_model(folder: str, resolution: int, block_out_channels: list[int] | None) -> str:
    """A 2-class, 1-channel generator with ``train_ddpm.py``'s default UNet at ``resolution`` and random
    weights: sampling speed does not depend on training."""
    from synthxray.generators.base import GeneratorInfo
    from synthxray.generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator
    from synthxray.training.ddpm import DDPMTrainingConfig, build_model

    cfg = DDPMTrainingConfig(dataset="none", output_dir=folder, resolution=resolution,
                             **({"block_out_channels": block_out_channels} if block_out_channels else {}))
    unet, scheduler = build_model(cfg, num_classes=2, channels=1)
    info = GeneratorInfo(backend="ddpm", class_names=["a", "b"], channels=1, resolution=resolution,
                         extra={"random_weights": True, "unet_parameters": sum(p.numel() for p in unet.parameters())})
    DDPMGenerator(ClassConditionalDDPMPipeline(unet=unet, scheduler=scheduler), info).save_pretrained(folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="generator folder or Hub id")
    p.add_argument("--random", type=int, default=None, metavar="RES",
                   help="instead of --model: train_ddpm's default UNet at RES px with random weights")
    p.add_argument("--block_out_channels", type=int, nargs="+", default=None, help="with --random: another UNet width")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", default=None)
    p.add_argument("--samplers", default=",".join(f"{s}:{n or ''}" for s, n in SAMPLERS), help="name:steps,... (ddpm uses all T steps)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._one:
        name, steps = args._one.split(":")
        print(json.dumps(measure(args.model, name, int(steps) if steps else None, args.num_images, args.batch_size, args.device)))
        return
    if args.random:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="sx-sampling-")
        atexit.register(shutil.rmtree, folder, True)  # a throwaway random model: removed when the benchmark ends
        args.model = random_model(folder, args.random, args.block_out_channels)
    if not args.model:
        p.error("give --model or --random")
    rows = []
    for item in args.samplers.split(","):
        cmd = [sys.executable, __file__, "--model", args.model, "--num_images", str(args.num_images), "--batch_size", str(args.batch_size), "--_one", item]
        if args.device:
            cmd += ["--device", args.device]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        print(f"measured {item}: {rows[-1]['images_per_s']} img/s", file=sys.stderr, flush=True)
    base = next((r for r in rows if r["scheduler"] == "ddpm"), rows[0])
    print(f"machine: {platform.processor() or platform.machine()}, {rows[0]['device']}, python {platform.python_version()}")
    what = f"train_ddpm's default UNet at {args.random} px, random weights" if args.random else args.model
    print(f"model: {what}; {args.num_images} images, batch {args.batch_size}\n")
    print("| sampler | network evals | images/s | seconds | peak RSS MB | peak CUDA MB | speed-up vs DDPM |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scheduler']} | {r['steps']} | {r['images_per_s']} | {r['seconds']} | {r['peak_rss_mb']} | {r['peak_cuda_mb'] or '-'} | {r['images_per_s'] / base['images_per_s']:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
