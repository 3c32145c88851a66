#!/usr/bin/env python
"""Train a generator with Flower over simulated sites (the same config as ``synthxray federated``): the
class-conditional DDPM by default, or ``--backend vae|dcgan|wgan-gp|cgan|acgan`` with that trainer's flags as
JSON in ``--backend_args``.

    python train_scripts/train_federated.py \
        --dataset ../shared/data/medmnist/pneumoniamnist.npz --output_dir runs/fed \
        --num_clients 4 --partition majority --majority_fraction 0.8 --num_rounds 10 --local_steps 50
    python train_scripts/train_federated.py --dataset ../shared/data/medmnist/pneumoniamnist.npz --output_dir runs/fed-vae \
        --backend vae --backend_args '{"latent_dim": 64}' --num_clients 4 --num_rounds 10 --local_steps 50

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
