#!/usr/bin/env python
"""Seconds per step and peak memory of DreamBooth (with / without the text encoder) and LoRA (with /
without latent caching) on the same model and data, measured in one run; ratios printed.

    python benchmarks/finetune.py                      # the tests' tiny Stable Diffusion, 64 px, CPU
    python benchmarks/finetune.py --model PATH --resolution 512 --mixed_precision fp16   # a real SD on a GPU
    python benchmarks/finetune.py --model sd15-random --resolution 512 --mixed_precision fp16   # SD 1.5's size, offline

``--model sd15-random`` builds Stable Diffusion 1.5's architecture (UNet 860M, VAE 84M, CLIP ViT-L/14
text encoder 123M) from configs with random weights and the tests' offline tokenizer: the speed and
memory of real-scale fine-tuning where no SD checkpoint can be downloaded (not its quality).
Without ``--model`` the tiny Stable Diffusion of ``tests/stable_diffusion`` (random weights) is built
in a temporary folder. Data: ``--images_per_class`` images of each class of the shared chest X-rays
(``../shared/data/chest_xray_pneumonia/train``) when present, else the tests' synthetic X-ray-like
images. Every configuration trains in its own subprocess (so the peak memory is its own), configurations
alternate over ``--repeats`` rounds, and the median of the rounds is reported. Timing excludes model
loading, caching and the first step (``train_summary.json``'s ``seconds_per_step``); memory is CUDA's
peak allocation on a GPU and the process's peak resident memory (reset before the first step) on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # name -> (method, extra flags)
    "dreambooth": ("dreambooth", []),
    "dreambooth+text_encoder": ("dreambooth", ["--train_text_encoder"]),
    "lora": ("lora", []),
    "lora+cache_latents": ("lora", ["--cache_latents"]),
}
RATIOS = [
    ("DreamBooth + text encoder / DreamBooth", "dreambooth+text_encoder", "dreambooth"),
    ("LoRA / DreamBooth", "lora", "dreambooth"),
    ("LoRA + cached latents / LoRA", "lora+cache_latents", "lora"),
    ("LoRA + cached latents / DreamBooth", "lora+cache_latents", "dreambooth"),
]


def prepare_data(folder: Path, per_class: int) -> str:
    """``per_class`` images of each class in class sub-folders; returns a description of the source."""
    shared = ROOT.parent / "shared" / "data" / "chest_xray_pneumonia" / "train"
    if shared.is_dir():
        for cls in sorted(p.name for p in shared.iterdir() if p.is_dir()):
            (folder / cls).mkdir(parents=True)
            for f in sorted((shared / cls).iterdir())[:per_class]:
                shutil.copy(f, folder / cls / f.name)
        return f"{per_class} images per class of ../shared/data/chest_xray_pneumonia/train (224 px JPEG, grayscale)"
    sys.path.insert(0, str(ROOT / "tests" / "stable_diffusion"))
    from sd_testing import CLASSES, write_images

    for k, cls in enumerate(CLASSES):
        write_images(folder / cls, per_class, seed=k)
    return f"{per_class} synthetic 40 px X-ray-like images per class (tests/stable_diffusion/sd_testing.py)"


def build_sd15_random(folder: Path) -> Path:
    """Stable Diffusion 1.5's architecture with random weights (configs as in runwayml/stable-diffusion-v1-5)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_sd import build_tokenizer

    torch.manual_seed(0)
    build_tokenizer(folder.parent / "tokenizer_src")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder.parent / "tokenizer_src"), model_max_length=77)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # diffusers' defaults = SD 1.x
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, clip_sample=False, steps_offset=1,
    )
    StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(folder)
    return folder


def worker(args: argparse.Namespace) -> None:
    """One training run; prints its summary as the last line of stdout."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from synthxray.training import dreambooth, lora
    from synthxray.training.common import parse_config

    method, extra = CONFIGS[args.worker]
    module = dreambooth if method == "dreambooth" else lora
    config_cls = module.DreamBoothConfig if method == "dreambooth" else module.LoRAConfig
    out = Path(args.work) / f"{args.worker}-{args.round}"
    cfg = parse_config(config_cls, [
        "--pretrained_model_name_or_path", args.model, "--dataset_name", args.data, "--class_prompt_template", "a chest x-ray showing {label}",
        "--output_dir", str(out), "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
        "--max_train_steps", str(args.steps), "--checkpointing_steps", "0", "--report_to", "none", "--center_crop",
        "--mixed_precision", args.mixed_precision, "--seed", "0", *extra,
    ])
    module.train(cfg)
    summary = json.loads((out / "train_summary.json").read_text())
    summary["saved_mb"] = round(sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin") and "checkpoints" not in p.parts
    ) / 2**20, 3)
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(summary))


def run_config(name: str, round_: int, args: argparse.Namespace, model: str, data: str, work: Path) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", name, "--round", str(round_), "--model", model, "--data", data, "--work", str(work),
        "--resolution", str(args.resolution), "--batch_size", str(args.batch_size), "--steps", str(args.steps),
        "--mixed_precision", args.mixed_precision, "--threads", str(args.threads),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Stable Diffusion folder (default: build the tests' tiny SD)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per run (the first is not timed)")
    parser.add_argument("--images_per_class", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all configurations; medians are reported")
    parser.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0: torch's default)")
    parser.add_argument("--json", default=None, help="also write the results here")
    # internal: one measured run
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sx-finetune-bench-") as tmp:
        work = Path(tmp)
        model = args.model
        if model == "sd15-random":
            model = str(build_sd15_random(work / "sd15_random"))
            model_text = "Stable Diffusion 1.5's architecture (UNet 860M, VAE, CLIP ViT-L/14 text encoder), random weights"
        elif model is None:
            sys.path.insert(0, str(ROOT / "tests" / "stable_diffusion"))
            from sd_testing import build_tiny_sd

            model = str(build_tiny_sd(work / "tiny_sd"))
            model_text = "the tests' tiny Stable Diffusion (UNet 8/16 channels, VAE 8/16, CLIP 16-wide 2 layers; random weights)"
        else:
            model_text = model
        source = prepare_data(work / "data", args.images_per_class)
        runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
        for r in range(args.repeats):
            for name in CONFIGS:
                runs[name].append(run_config(name, r, args, model, str(work / "data"), work))
                s = runs[name][-1]
                print(f"round {r + 1}/{args.repeats} {name:26s} {s['seconds_per_step']:.4f} s/step  peak {s['peak_memory_mb']} MB", flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in runs[name])

    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    kind = runs["lora"][0]["peak_memory_kind"]
    print()
    print(f"model: {model_text}")
    print(f"data: {source}; {args.resolution} px, batch {args.batch_size}, {args.steps} steps per run, median of {args.repeats} rounds")
    print(f"device: {device}; mixed precision {args.mixed_precision}; torch threads {args.threads or torch.get_num_threads()}; "
          f"torch {torch.__version__}; peak memory = {kind}")
    print()
    for s in (s for rs in runs.values() for s in rs):
        s["loop_memory_mb"] = round(s["peak_memory_mb"] - (s["memory_before_loop_mb"] or 0), 1)
    print("| configuration | s/step (median) | s/step (min-max) | peak memory MB | of which added by the training loop MB "
          "| trainable params | saved model MB |")
    print("|---|---|---|---|---|---|---|")
    for name in CONFIGS:
        times = [s["seconds_per_step"] for s in runs[name]]
        print(f"| {name} | {med(name, 'seconds_per_step'):.4f} | {min(times):.4f}-{max(times):.4f} | {med(name, 'peak_memory_mb'):.0f} "
              f"| {med(name, 'loop_memory_mb'):.1f} | {runs[name][0]['trainable_parameters']:,} | {runs[name][0]['saved_mb']:.2f} |")
    print()
    print("| ratio | time per step | peak memory | memory added by the loop |")
    print("|---|---|---|---|")
    for label, a, b in RATIOS:
        loop = med(a, "loop_memory_mb") / med(b, "loop_memory_mb") if med(b, "loop_memory_mb") > 0 else float("nan")
        print(f"| {label} | {med(a, 'seconds_per_step') / med(b, 'seconds_per_step'):.2f}x "
              f"| {med(a, 'peak_memory_mb') / med(b, 'peak_memory_mb'):.2f}x | {loop:.2f}x |")
    print(f"\nbenchmark wall time: {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "args": vars(args), "device": device}, indent=2) + "\n")


if __name__ == "__main__":
    main()
