"""``synthxray export``: a generator folder from one checkpoint of a DDPM training run."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="make a generator folder from a checkpoint of `synthxray train ddpm` (its EMA weights at that step)",
        description="Checkpoints span a run's quality; each exported one loads, generates and evaluates like a "
                    "finished run (synthxray.json records the step and the checkpoint it came from).",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoints/checkpoint_N")
    p.add_argument("--output_dir", required=True, help="the generator folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing generator folder (never other files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.ddpm import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.output_dir, overwrite=args.overwrite)
    from ..generators import load_generator

    info = load_generator(out).info
    print(f"exported step {info.extra['train_steps']} of {args.checkpoint} to {out}")
    return 0
