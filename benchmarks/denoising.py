#!/usr/bin/env python
"""How well does a trained DDPM estimate the clean image at each noise level?

    python benchmarks/denoising.py --model runs/ddpm --data ../shared/data/medmnist/pneumoniamnist.npz

Noises real test images to timestep t, asks the model for x0, and prints the x0 mean squared error
next to the trivial estimate (the batch mean). A model whose x0 error is above the trivial one at
high noise will make noise under deterministic samplers (DDIM, DPM-Solver): the diagnostic behind
synthxray's v-prediction default.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    import synthxray
    from synthxray.data import load_dataset, with_image_transform

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="real data with a test split (e.g. pneumoniamnist.npz)")
    p.add_argument("--split", default="test")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--timesteps", default="10,50,200,500,800,950")
    args = p.parse_args()

    gen = synthxray.load_generator(args.model, device="cpu")
    unet, sch = gen.pipeline.unet.eval(), gen.pipeline.scheduler
    res, ch = gen.info.resolution, gen.info.channels
    ds = load_dataset(args.data, split=args.split)
    ds = with_image_transform(ds.select(range(min(args.num_images, len(ds)))), res, ch)
    x0 = torch.stack([r["pixel_values"] for r in ds])
    y = torch.tensor([r["label"] for r in ds])
    kind = sch.config.prediction_type
    torch.manual_seed(0)
    print(f"model: {args.model} ({kind}, {gen.info.extra.get('train_steps')} steps)")
    print("| t | x0 MSE (model) | x0 MSE (batch mean) | model better? |")
    print("|---|---|---|---|")
    trivial = float((x0.mean(0, keepdim=True) - x0).pow(2).mean())
    for t in [int(v) for v in args.timesteps.split(",")]:
        tt = torch.full((len(x0),), t)
        noise = torch.randn_like(x0)
        ab = sch.alphas_cumprod[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        with torch.no_grad():
            out = unet(xt, tt, class_labels=y).sample
        if kind == "v_prediction":
            x0hat = ab.sqrt() * xt - (1 - ab).sqrt() * out
        else:
            x0hat = (xt - (1 - ab).sqrt() * out) / ab.sqrt()
        err = float((x0hat.clamp(-1, 1) - x0).pow(2).mean())
        print(f"| {t} | {err:.4f} | {trivial:.4f} | {'yes' if err < trivial else 'NO'} |")


if __name__ == "__main__":
    main()
