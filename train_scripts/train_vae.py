#!/usr/bin/env python
"""Train the VAE baseline (seed 000: latent 64, MSE + KL, Adam 1e-3), class-conditional by default.

    accelerate launch train_scripts/train_vae.py \
        --dataset ../shared/data/medmnist/pneumoniamnist.npz --resolution 32 \
        --output_dir runs/vae --train_batch_size 64 --max_train_minutes 24 --seed 0

All flags: ``--help``. A single ``.yaml``/``.json`` argument is read as the config file.
Re-run with ``--resume_from_checkpoint latest`` to continue an interrupted run.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.vae import VAETrainingConfig, train


def main(argv=None) -> int:
    return run_script(VAETrainingConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
