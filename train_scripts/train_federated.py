#!/usr/bin/env python
"""Train a class-conditional DDPM with Flower over simulated sites (the same config as ``synthxray federated``).

    python train_scripts/train_federated.py \
        --dataset ../shared/data/medmnist/pneumoniamnist.npz --output_dir runs/fed \
        --num_clients 4 --partition majority --majority_fraction 0.8 --num_rounds 10 --local_steps 50

All flags: ``--help``. A single ``.yaml``/``.json`` argument is read as the config file.
Re-running with the same ``--output_dir`` continues after the last completed round.
"""

import sys

from synthxray.federated import FederatedConfig, run_federated
from synthxray.training.common import run_script


def main(argv=None) -> int:
    return run_script(FederatedConfig, run_federated, argv)


if __name__ == "__main__":
    sys.exit(main())
