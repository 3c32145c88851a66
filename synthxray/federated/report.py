"""The federated run's outputs: the generator folder (with the federation in ``synthxray.json`` and its card) and a plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from .config import FederatedConfig

logger = logging.getLogger("synthxray.federated")
PLOT_FILE = "rounds.png"


def build_generator(cfg: FederatedConfig, state: dict[str, torch.Tensor], names: Sequence[str], channels: int,
                    federation: dict[str, Any], data: dict[str, Any] | None = None):
    """The backend's generator from the global weights (the EMA weights where the run keeps EMA)."""
    from .backends import get_backend

    return get_backend(cfg).build_generator(state, names, channels, federation, data)


def federation_summary(cfg: FederatedConfig, history: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What the card and ``synthxray.json`` record about the federation."""
    rounds = history.get("rounds", [])
    return {
        "framework": "Flower", "engine": data.get("engine"), "backend": cfg.backend, "sites": cfg.num_clients, "partition": cfg.partition,
        "dirichlet_alpha": cfg.dirichlet_alpha if cfg.partition == "dirichlet" else None,
        "majority_fraction": cfg.majority_fraction if cfg.partition in ("majority", "large-site") else None,
        "large_site_fraction": cfg.large_site_fraction if cfg.partition == "large-site" else None,
        "site_class_counts": data.get("site_class_counts"), "rounds": len(rounds), "num_rounds": cfg.num_rounds,
        "local_steps": cfg.local_steps, "strategy": history.get("strategy"),
        "secure_aggregation": secagg_summary(history.get("strategy") or {}),
        "failed_site_rounds": sum(len(r.get("failures", [])) for r in rounds),
        "bytes_per_round": (sum(r.get("bytes_down", 0) + r.get("bytes_up", 0) for r in rounds) // len(rounds)) if rounds else 0,
        "rounds_done": [r["round"] for r in rounds],
    }


def secagg_summary(strategy: dict[str, Any]) -> str | None:
    """The card's one line on SecAgg+ (None when the run did not use it)."""
    sa = strategy.get("secure_aggregation")
    if not sa:
        return None
    return (f"SecAgg+ (Flower SecAggPlusWorkflow): {sa['num_shares']} shares per site, reconstruction threshold "
            f"{sa['reconstruction_threshold']}, weights clipped to +-{sa['clipping_range']:g} and quantised to "
            f"{sa['quantization_range']} levels; the server saw only the sum of the sites' masked updates")


def save_generator(cfg: FederatedConfig, out: Path, state: dict[str, torch.Tensor], names: Sequence[str], channels: int,
                   history: dict[str, Any], data: dict[str, Any]) -> Path:
    """Save the global model as an ordinary generator folder, its card (with a Federated training section) and the plot."""
    from ..images import class_grid
    from ..training.common import finish_model_folder

    federation = federation_summary(cfg, history, data)
    info_data = {k: v for k, v in data.items() if k not in ("site_class_counts", "engine")} or None
    gen = build_generator(cfg, state, names, channels, federation, info_data)
    rounds = history.get("rounds", [])
    gen.info.extra["train_seconds"] = round(sum(r.get("seconds", 0.0) for r in rounds), 1)
    gen.save_pretrained(out)
    summary = {"steps_per_site": cfg.local_steps * len(rounds), "rounds": len(rounds), "classes": list(names),
               "channels": channels, "train_seconds": gen.info.extra["train_seconds"]}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    try:
        (out / "samples").mkdir(exist_ok=True)
        class_grid(gen, per_class=min(cfg.num_validation_images, 8), seed=cfg.seed).save(out / "samples" / "final.png")
    except Exception as exc:  # the model is saved; a sample grid must not lose the run
        logger.warning("sample grid not written: %s", exc)
    plot_rounds(history, out / PLOT_FILE)
    finish_model_folder(cfg, out)  # the card's Federated training section comes from synthxray.json's federation
    logger.info("saved the federated generator to %s", out)
    return out


def plot_rounds(history: dict[str, Any], path: Path) -> Path | None:
    """Loss per site and aggregated per round (and FID when measured)."""
    rounds = history.get("rounds", [])
    if not rounds:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_fid = any("fid" in r for r in rounds)
    fig, axes = plt.subplots(1, 2 if has_fid else 1, figsize=(10 if has_fid else 6, 4), squeeze=False)
    ax = axes[0][0]
    sites = sorted({c.get("partition_id", c["node_id"]) for r in rounds for c in r.get("clients", [])})
    for s in sites:
        pts = [(r["round"], c["train_loss"]) for r in rounds for c in r.get("clients", []) if c.get("partition_id", c["node_id"]) == s]
        ax.plot(*zip(*pts), marker=".", alpha=0.5, label=f"site {s}")
    agg = [(r["round"], r["aggregated"]["train_loss"]) for r in rounds if r.get("aggregated", {}).get("train_loss") is not None]
    if agg:
        ax.plot(*zip(*agg), color="black", linewidth=2, label="aggregated")
    ax.set_xlabel("round"), ax.set_ylabel("mean local training loss"), ax.legend(fontsize=7)
    if has_fid:
        pts = [(r["round"], r["fid"]["overall"]) for r in rounds if "fid" in r]
        axes[0][1].plot(*zip(*pts), marker="o")
        axes[0][1].set_xlabel("round"), axes[0][1].set_ylabel("FID (global EMA model)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
