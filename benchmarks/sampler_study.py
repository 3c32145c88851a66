#!/usr/bin/env python
"""Where a few-step sampler puts its steps, scored by Inception FID on one trained DDPM.

    python benchmarks/sampler_study.py --model runs/quality2/model --variants dpm20-leading dpm20-lu sde-dpm10-lu

Every variant samples the test set's class mix (234 normal / 390 pneumonia for PneumoniaMNIST) from the
same seeds and is scored against the real test split (features cached on disk). Variants are diffusers
schedulers built from the model's training scheduler config with the same [-1, 1] thresholding as
synthxray's samplers, plus ``karras-*``: DPM-Solver++ on discrete timesteps placed at Karras et al.'s
rho=7 sigmas (or log-uniform sigmas, ``lu80``) between a chosen sigma_max and the schedule's smallest
sigma. This is the study behind the ``dpm`` / ``dpm-sde`` samplers' log-SNR spacing (RESULTS.md).
Writes OUT/sampler_study.json and prints one line per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DPM = dict(algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0,
           dynamic_thresholding_ratio=0.995, lower_order_final=True)
SDE = dict(algorithm_type="sde-dpmsolver++")
LU = dict(use_lu_lambdas=True)
VARIANTS = {  # name: (kind, steps, scheduler kwargs)
    "dpm20-leading": ("dpm", 20, {}),
    "dpm20-linspace": ("dpm", 20, dict(timestep_spacing="linspace")),
    "dpm20-order3": ("dpm", 20, dict(solver_order=3)),
    "dpm20-nothreshold": ("dpm", 20, dict(thresholding=False)),
    "dpm20-lu": ("dpm", 20, LU),
    "dpm20-lu-final-sigma-min": ("dpm", 20, dict(**LU, final_sigmas_type="sigma_min")),
    "dpm10-lu": ("dpm", 10, LU),
    "sde-dpm20-leading": ("dpm", 20, SDE),
    "sde-dpm20-lu": ("dpm", 20, dict(**SDE, **LU)),
    "sde-dpm10-lu": ("dpm", 10, dict(**SDE, **LU)),
    "karras20-t940": ("karras", 20, dict(t_max=940)),
    "karras10-t940": ("karras", 10, dict(t_max=940)),
    "karras20-s80": ("karras", 20, dict(sigma_max=80.0)),
    "sde-karras20-t940": ("karras", 20, dict(t_max=940, **SDE)),
    "lu80-dpm20": ("karras", 20, dict(sigma_max=80.0, rho="lu")),
    "euler20-karras": ("euler", 20, dict(use_karras_sigmas=True)),
    "euler10-karras": ("euler", 10, dict(use_karras_sigmas=True)),
    "heun10": ("heun", 10, {}),
}


def karras_timesteps(alphas_cumprod: np.ndarray, n: int, sigma_max: float | None = None, t_max: int | None = None,
                     rho: float | str = 7.0) -> list[int]:
    """Strictly decreasing discrete timesteps at Karras rho-spaced (or log-uniform, rho="lu") sigmas."""
    sig = np.sqrt((1 - alphas_cumprod) / alphas_cumprod)
    smax, smin = (sigma_max or sig[t_max]), sig[0]
    ramp = np.linspace(0, 1, n)
    if rho == "lu":
        sigmas = np.exp(np.log(smax) + ramp * (np.log(smin) - np.log(smax)))
    else:
        sigmas = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    out: list[int] = []
    for t in np.round(np.interp(np.log(sigmas), np.log(sig), np.arange(len(sig)))).astype(int):
        if not out or t < out[-1]:
            out.append(int(t))
    return out


def build(kind: str, extra: dict, config: dict):
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler

    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if kind == "dpm":
        return DPMSolverMultistepScheduler.from_config(config, **{**DPM, **extra})
    if kind == "euler":
        return EulerDiscreteScheduler.from_config(config, **extra)
    if kind == "heun":
        return HeunDiscreteScheduler.from_config(config, **extra)
    placement = {k: extra[k] for k in ("sigma_max", "t_max", "rho") if k in extra}
    solver = {k: v for k, v in extra.items() if k not in placement}

    class PlacedDPM(DPMSolverMultistepScheduler):
        def set_timesteps(self, num_inference_steps=None, device=None, **kw):
            steps = karras_timesteps(self.alphas_cumprod.numpy(), num_inference_steps, **placement)
            return super().set_timesteps(device=device, timesteps=steps)

    return PlacedDPM.from_config(config, **{**DPM, **solver})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/medmnist/pneumoniamnist.npz"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--output", default="runs/sampler_study")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import synthxray.generators.ddpm as ddpm_backend
    from synthxray import load_dataset, load_generator
    from synthxray.evaluation import compute_features, fid_from_features, get_extractor
    from synthxray.synthesis import generate_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    test = load_dataset(args.data, split="test")
    names = list(test.features["label"].names)
    counts = {n: int(c) for n, c in zip(names, np.bincount(test["label"]))}
    ext = get_extractor("inception")
    real = compute_features(test, ext, cache=True, desc="test features")
    gen = load_generator(args.model, device="cpu")
    report = {"model": args.model, "extractor": ext.description, "variants": {}}
    current: dict = {}
    ddpm_backend.make_scheduler = lambda name, config, timestep_spacing=None: build(current["kind"], current["extra"], config)
    for name in args.variants:
        kind, steps, extra = VARIANTS[name]
        current.update(kind=kind, extra=dict(extra))
        t0 = time.time()
        try:
            ds = generate_dataset(gen, images_per_class=counts, seed=0, batch_size=64, scheduler="dpm",
                                  num_inference_steps=steps, progress=False)
        except Exception as e:  # noqa: BLE001 - some diffusers sigma options fail on a cosine schedule
            report["variants"][name] = {"error": repr(e)[:300]}
            print(f"{name}: failed: {e!r}"[:300], flush=True)
            continue
        seconds = time.time() - t0
        feats = compute_features(ds, ext, cache=False, desc=name)
        row = {"overall": fid_from_features(real.features, feats.features)}
        row.update({n: fid_from_features(real.of_class(i), feats.of_class(i)) for i, n in enumerate(names)})
        report["variants"][name] = {"steps": steps, "fid": row, "sampling_seconds": round(seconds, 1)}
        print(f"{name}: FID " + " / ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
        (out / "sampler_study.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
