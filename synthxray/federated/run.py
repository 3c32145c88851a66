"""Run a federation on Flower's simulation engine (one machine: tests, CI, a laptop, one GPU server)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .config import FederatedConfig

logger = logging.getLogger("synthxray.federated")


def prepare(cfg: FederatedConfig) -> tuple[list[str], int, dict]:
    """Everything checked before any training: data, classes, partition feasibility. Returns
    (class names, channels, data info with each site's class counts); writes and prints the counts."""
    from ..data import class_names, is_grayscale
    from ..training.common import prepare_output_dir, write_config
    from .backends import get_backend
    from .partition import check_partition, class_counts, format_counts, load_training_set, partition_dataset, write_partitions
    from .server_app import check_resumable, load_latest_checkpoint

    get_backend(cfg)  # an unknown backend or a bad backend_args fails here, before any data is read
    if cfg.partition == "supernode":
        raise ValueError("partition: supernode is for the deployment engine (flwr run); simulation needs iid, dirichlet, majority or large-site")
    ds = load_training_set(cfg)
    names = list(cfg.class_names or class_names(ds))
    channels = int(cfg.channels or (1 if is_grayscale(ds) else 3))
    check_partition(cfg, ds, names)
    out = Path(cfg.output_dir)
    if cfg.resume_from_checkpoint and out.is_dir() and load_latest_checkpoint(out):
        check_resumable(cfg, out)
    else:
        prepare_output_dir(cfg)
        write_config(cfg, out)
    parts = partition_dataset(cfg, ds)
    counts = class_counts(parts, names)
    unused = len(ds) - sum(len(p) for p in parts)
    write_partitions(out, cfg, counts, unused)
    print(f"{cfg.num_clients} sites, {cfg.partition} partition of {cfg.dataset} ({len(ds)} images"
          + (f", {unused} unused" if unused else "") + "):\n" + format_counts(counts), flush=True)
    if any(sum(c.values()) == 0 for c in counts):
        raise ValueError(f"a site got no images under the {cfg.partition} partition; use fewer num_clients")
    data = {"source": str(cfg.dataset), "split": cfg.dataset_split, "num_images": len(ds) - unused, "site_class_counts": counts,
            "engine": "simulation"}
    return names, channels, data


def run_federated(cfg: FederatedConfig) -> Path:
    """Validate, partition, and run ``cfg.num_rounds`` rounds with ``cfg.num_clients`` simulated sites; returns the
    generator folder. A re-run with the same ``output_dir`` continues after the last completed round."""
    from flwr.simulation import run_simulation

    from .client_app import app as client_app
    from .client_app import dp_app
    from .server_app import make_server_app

    names, channels, data = prepare(cfg)
    backend = {
        "client_resources": {"num_cpus": cfg.client_num_cpus, "num_gpus": cfg.client_num_gpus},
        "init_args": {"num_cpus": max(os.cpu_count() or 1, int(cfg.client_num_cpus)), "include_dashboard": False,
                      "log_to_driver": True},
    }
    run_simulation(
        server_app=make_server_app(cfg, names, channels, data),
        client_app=dp_app if cfg.dp_noise_multiplier is not None else client_app,
        num_supernodes=cfg.num_clients, backend_config=backend,
    )
    out = Path(cfg.output_dir)
    if not (out / "synthxray.json").is_file():
        raise RuntimeError(f"the federation ended without saving a generator in {out}; see the log above")
    return out
