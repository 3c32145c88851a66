#!/usr/bin/env python
"""Train a class-conditional DDPM from scratch.

    accelerate launch train_scripts/train_ddpm.py \
        --dataset ../shared/data/medmnist/pneumoniamnist.npz --resolution 32 \
        --output_dir runs/ddpm --train_batch_size 64 --max_train_steps 3000 --seed 0

All flags: ``--help``. A single ``.yaml``/``.json`` argument is read as the config file.
Re-run with ``--resume_from_checkpoint latest`` to continue an interrupted run.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.ddpm import DDPMTrainingConfig, train


def main(argv=None) -> int:
    return run_script(DDPMTrainingConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
