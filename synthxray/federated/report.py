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
    """A ``DDPMGenerator`` from global weights: the EMA weights when the run keeps EMA, else the model's."""
    from diffusers import DDPMScheduler

    from ..generators.base import GeneratorInfo
    from ..generators.ddpm import ClassConditionalDDPMPipeline, DDPMGenerator
    from ..training.ddpm import build_model
    from .client_app import split_arrays

    unet, noise_scheduler = build_model(cfg, len(names), channels)
    model_state, ema_state = split_arrays(state)
    unet.load_state_dict(model_state)
    if cfg.use_ema and ema_state:
        with torch.no_grad():
            for name, p in unet.named_parameters():
                p.copy_(ema_state[name])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet.to(device).eval()
    pad = cfg.unet_resolution - cfg.resolution  # a 28 px run trains a 32 px UNet on padded images; crop them back
    pipe = ClassConditionalDDPMPipeline(
        unet=unet, scheduler=DDPMScheduler.from_config(noise_scheduler.config), image_size=cfg.resolution if pad else None
    )
    pipe.set_progress_bar_config(disable=True)
    info = GeneratorInfo(
        backend="ddpm", class_names=list(names), channels=channels, resolution=cfg.resolution,
        data=data or {"source": str(cfg.dataset), "split": cfg.dataset_split},
        defaults={"scheduler": cfg.sample_scheduler, "num_inference_steps": cfg.sample_steps, "guidance_scale": cfg.guidance_scale},
        extra={"train_steps": cfg.local_steps * len(federation.get("rounds_done", [])) or None, "train_config": cfg.to_dict(),
               "federation": federation},
    )
    return DDPMGenerator(pipe, info)


def federation_summary(cfg: FederatedConfig, history: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What the card and ``synthxray.json`` record about the federation."""
    rounds = history.get("rounds", [])
    return {
        "framework": "Flower", "sites": cfg.num_clients, "partition": cfg.partition,
        "dirichlet_alpha": cfg.dirichlet_alpha if cfg.partition == "dirichlet" else None,
        "majority_fraction": cfg.majority_fraction if cfg.partition == "majority" else None,
        "site_class_counts": data.get("site_class_counts"), "rounds": len(rounds), "num_rounds": cfg.num_rounds,
        "local_steps": cfg.local_steps, "strategy": history.get("strategy"),
        "failed_site_rounds": sum(len(r.get("failures", [])) for r in rounds),
        "bytes_per_round": (sum(r.get("bytes_down", 0) + r.get("bytes_up", 0) for r in rounds) // len(rounds)) if rounds else 0,
        "rounds_done": [r["round"] for r in rounds],
    }


def save_generator(cfg: FederatedConfig, out: Path, state: dict[str, torch.Tensor], names: Sequence[str], channels: int,
                   history: dict[str, Any], data: dict[str, Any]) -> Path:
    """Save the global model as an ordinary generator folder, its card (with a Federation section) and the plot."""
    from ..images import class_grid
    from ..training.common import finish_model_folder

    federation = federation_summary(cfg, history, data)
    info_data = {k: v for k, v in data.items() if k != "site_class_counts"} or None
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
    finish_model_folder(cfg, out)
    append_card_section(out / "README.md", federation)
    logger.info("saved the federated generator to %s", out)
    return out


def append_card_section(card: Path, fed: dict[str, Any]) -> None:
    """Add a Federation section to the model card (the card template has no place for it)."""
    if not card.is_file():
        return
    text = card.read_text()
    if "## Federation" in text:
        return
    strategy = fed.get("strategy") or {}
    lines = ["", "## Federation", "",
             f"Trained with Flower over {fed['sites']} sites ({fed['partition']} partition"
             + (f", majority fraction {fed['majority_fraction']}" if fed.get("majority_fraction") else "")
             + (f", Dirichlet alpha {fed['dirichlet_alpha']}" if fed.get("dirichlet_alpha") else "")
             + f"): {fed['rounds']} rounds of {fed['local_steps']} local steps, strategy {strategy.get('name')} weighted by "
             f"{strategy.get('weighted_by')}"
             + (f", client-side DP (noise {strategy['differential_privacy']['noise_multiplier']}, clip "
                f"{strategy['differential_privacy']['clipping_norm']})" if strategy.get("differential_privacy") else "")
             + f". {fed['failed_site_rounds']} site-rounds failed and were dropped; about {fed['bytes_per_round'] / 1e6:.1f} MB "
             "moved per round. Per-round losses: `rounds.json`; site class counts: `partitions.json`.", ""]
    counts = fed.get("site_class_counts") or []
    if counts:
        names = list(counts[0])
        lines += ["| site | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {i} | " + " | ".join(str(row[n]) for n in names) + " |" for i, row in enumerate(counts)]
        lines.append("")
    card.write_text(text.rstrip("\n") + "\n" + "\n".join(lines))


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
