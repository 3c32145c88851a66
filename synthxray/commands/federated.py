"""``synthxray federated``: train one generator across sites with Flower (simulation engine on this machine)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "federated",
        help="train a generator (DDPM, or a GAN/VAE with backend) with Flower over simulated sites (FedAvg/FedProx, non-IID partitions)",
        description="Run a federation from a YAML/JSON config (the fields of synthxray.federated.FederatedConfig, i.e. "
        "train_ddpm.py's flags, or backend: vae|dcgan|wgan-gp|cgan|acgan with that trainer's flags under backend_args, "
        "plus num_clients, partition, num_rounds, local_steps, fraction_train, strategy, ...). "
        "A re-run with the same output_dir continues after the last completed round. "
        "For real sites (one SuperNode per hospital) see the README's Federated training section.",
    )
    p.add_argument("--config", required=True, help="federation config (.yaml or .json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..federated import FederatedConfig, run_federated
    from ..training.common import parse_config

    if not str(args.config).endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"--config must be a .yaml, .yml or .json file, got {args.config}")
    cfg = parse_config(FederatedConfig, [args.config])
    out = run_federated(cfg)
    print(f"saved to {out} (rounds.json, rounds.png, partitions.json)")
    return 0
