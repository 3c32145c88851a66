"""``synthxray train BACKEND [flags]``: the trainers of ``train_scripts/``, from any directory, named by backend (the
generators' names: ddpm, sd-dreambooth, sd-lora, dcgan, wgan-gp, cgan, acgan, vae, consistency) or by script
(dreambooth, lora, gan).

One process; for several GPUs use ``accelerate launch -m synthxray.training NAME [flags]`` (same flags).
"""

from __future__ import annotations

import argparse

# synthxray.training.TRAINERS names these (imported lazily there: no torch for --help)
from ..training import SCRIPT_NAMES, TRAINERS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a generator, named by backend: ddpm, sd-dreambooth, sd-lora, dcgan, wgan-gp, cgan, acgan, vae, consistency",
        description=(
            "Runs the trainer with the flags of train_scripts/train_NAME.py (see `synthxray train NAME --help`). "
            "One process; for several GPUs: accelerate launch -m synthxray.training NAME [flags]."
        ),
    )
    p.add_argument("trainer", choices=[*TRAINERS, *SCRIPT_NAMES], help="which backend (or script name) to train")
    p.add_argument("flags", nargs=argparse.REMAINDER, help="the trainer's flags, or one .yaml/.json config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import run_trainer

    return run_trainer(args.trainer, args.flags, prog=f"synthxray train {args.trainer}")
