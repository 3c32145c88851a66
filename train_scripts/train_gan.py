#!/usr/bin/env python
"""Train a GAN baseline: dcgan (seed 000), wgan-gp (seeds 002/003), cgan or acgan (seed 002).

    accelerate launch train_scripts/train_gan.py --architecture dcgan \
        --dataset ../shared/data/medmnist/pneumoniamnist.npz --resolution 32 \
        --output_dir runs/dcgan --train_batch_size 64 --max_train_minutes 24 --seed 0

    # ACGAN with a ViT-B/16 discriminator (ImageNet weights when reachable, else random weights, announced)
    accelerate launch train_scripts/train_gan.py --architecture acgan --discriminator vit_b_16 ...

All flags: ``--help``. A single ``.yaml``/``.json`` argument is read as the config file.
Re-run with ``--resume_from_checkpoint latest`` to continue an interrupted run.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.gan import GANTrainingConfig, train


def main(argv=None) -> int:
    return run_script(GANTrainingConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
