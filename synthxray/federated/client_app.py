"""The Flower ``ClientApp``: one site trains the global DDPM for ``local_steps`` on its own images.

The local steps are ``train_ddpm.py``'s: the same model, data loader, loss, EMA and step loop
(``synthxray.training.ddpm`` / ``training.common``). Model and EMA weights travel in one ``ArrayRecord``
(keys ``model.<name>`` and ``ema.<name>``), which is what Flower's DP clipping mod expects.

``app`` is the plain client; ``dp_app`` adds Flower's ``fixedclipping_mod`` for client-side DP.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

if TYPE_CHECKING:
    import datasets

    from .config import FederatedConfig

logger = logging.getLogger("synthxray.federated")
CONFIG_KEY = "synthxray-config"


def split_arrays(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model state dict, EMA shadow parameters by name) from a record's flat ``model.*`` / ``ema.*`` keys."""
    model = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    ema = {k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.")}
    return model, ema


def join_arrays(model: torch.nn.Module, ema=None) -> dict[str, torch.Tensor]:
    """The flat state dict a record carries: every model tensor, and the EMA shadow of every parameter."""
    state = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    if ema is not None:
        for (name, _), shadow in zip(model.named_parameters(), ema.shadow_params):
            state[f"ema.{name}"] = shadow.detach().cpu().clone()
    return state


def local_train(
    cfg: "FederatedConfig", state: dict[str, torch.Tensor], ds: "datasets.Dataset", num_classes: int, channels: int,
    server_round: int, partition_id: int = 0, proximal_mu: float = 0.0,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run ``cfg.local_steps`` optimiser steps of DDPM training from the global weights ``state`` on ``ds``.

    The steps are numbered ``(round - 1) * local_steps ...`` of the federation's ``num_rounds * local_steps``, so the
    learning-rate schedule and the EMA warm-up continue across rounds as in one centralised run. With
    ``proximal_mu`` > 0 the FedProx term ``mu / 2 * ||w - w_global||^2`` is added to the loss.
    Returns the new flat state and metrics (``num-examples``, ``train-loss``, seconds).
    """
    from ..training.common import TrainState, lr_factor, make_accelerator, train_loop
    from ..training.ddpm import build_model, make_dataloader, make_ema, make_loss_fn

    with tempfile.TemporaryDirectory(prefix="synthxray-client-") as scratch:
        local = replace(
            cfg, output_dir=scratch, seed=cfg.seed + 1000 * server_round + partition_id, checkpointing_steps=0,
            resume_from_checkpoint=None, logger="none", dataset=cfg.dataset,
        )
        accelerator = make_accelerator(local)
        unet, noise_scheduler = build_model(local, num_classes, channels)
        model_state, ema_state = split_arrays(state)
        unet.load_state_dict(model_state)
        ema = None
        if cfg.use_ema:
            ema = make_ema(local, unet)
            if ema_state:
                ema.shadow_params = [ema_state[name].clone() for name, _ in unet.named_parameters()]
            ema.optimization_step = (server_round - 1) * cfg.local_steps
        global_params = [p.detach().clone() for p in unet.parameters()] if proximal_mu > 0 else []
        dataloader = make_dataloader(local, ds, channels)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=local.learning_rate, weight_decay=local.adam_weight_decay)
        offset, total = (server_round - 1) * cfg.local_steps, cfg.total_steps
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda count: lr_factor(local.lr_scheduler, (count + offset) / total, count + offset, local.lr_warmup_steps)
        )
        unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(unet, optimizer, dataloader, lr_scheduler)
        if ema is not None:
            ema.to(accelerator.device)
        denoise = make_loss_fn(local, unet, noise_scheduler, null_class=num_classes)
        losses: list[float] = []

        def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            loss = denoise(batch)
            losses.append(float(loss.detach()))
            if proximal_mu > 0:
                params = accelerator.unwrap_model(unet).parameters()
                prox = sum(((p - g.to(p.device)) ** 2).sum() for p, g in zip(params, global_params))
                loss = loss + proximal_mu / 2 * prox
            return loss

        def on_step(step: int) -> None:
            if ema is not None:
                ema.step(accelerator.unwrap_model(unet).parameters())

        train_state = TrainState()
        train_state.step = offset
        start = time.time()
        train_loop(accelerator, local, train_state, [unet], optimizer, lr_scheduler, dataloader, loss_fn,
                   offset + cfg.local_steps, on_step=on_step)
        model = accelerator.unwrap_model(unet)
        new_state = join_arrays(model, ema)
        accelerator.free_memory()
    tail = losses[-max(1, len(losses) // 5):]
    metrics = {
        "num-examples": len(ds), "train-loss": sum(losses) / max(len(losses), 1), "train-loss-last": sum(tail) / len(tail),
        "seconds": round(time.time() - start, 2), "partition-id": partition_id, "steps": cfg.local_steps,
    }
    return new_state, metrics


def _site_data(cfg: "FederatedConfig", context: Context) -> tuple["datasets.Dataset", int]:
    """This site's images: ``data-path`` from the SuperNode's node config (deployment) or its simulated partition."""
    from ..data import load_dataset
    from .partition import cached_partition

    node = context.node_config
    if "data-path" in node:
        split = str(node.get("data-split", cfg.dataset_split))
        ds = load_dataset(str(node["data-path"]), split=split)
        return ds, int(node.get("partition-id", context.node_id % 10**6))
    if "partition-id" not in node:
        raise ValueError("this SuperNode has neither data-path nor partition-id in its node config")
    pid = int(node["partition-id"])
    return cached_partition(cfg.to_json(), pid), pid


def _train(msg: Message, context: Context) -> Message:
    from .config import FederatedConfig

    config: ConfigRecord = msg.content["config"]
    cfg = FederatedConfig.from_json(str(config[CONFIG_KEY]))
    server_round = int(config["server-round"])
    num_classes, channels = int(config["num-classes"]), int(config["channels"])
    ds, pid = _site_data(cfg, context)
    if (pid, server_round) in cfg.failures():
        raise RuntimeError(f"injected failure: site {pid} in round {server_round} (inject_failures)")
    if len(ds) == 0:
        raise ValueError(f"site {pid} holds no images")
    state = msg.content["arrays"].to_torch_state_dict()
    mu = float(config.get("proximal-mu", 0.0))
    new_state, metrics = local_train(cfg, state, ds, num_classes, channels, server_round, pid, proximal_mu=mu)
    content = RecordDict({"arrays": ArrayRecord(new_state), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


app = ClientApp()
app.train()(_train)

dp_app = ClientApp(mods=[fixedclipping_mod])
dp_app.train()(_train)
