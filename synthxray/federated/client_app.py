"""The Flower ``ClientApp``: one site trains the global generator for ``local_steps`` on its own images.

The local steps are the backend's own trainer's (``train_ddpm.py``, ``train_gan.py``, ``train_vae.py``: the same
networks, data loader, loss or adversarial step, EMA and ``training.common.train_loop``; see
:mod:`synthxray.federated.backends`). All of a backend's networks travel in one ``ArrayRecord`` (keys
``<network>.<name>``), which is what Flower's averaging and DP clipping mod expect.

``app`` serves plain and SecAgg+ federations (Flower's ``secaggplus_mod`` on the SecAgg+ rounds' messages);
``dp_app`` adds Flower's ``fixedclipping_mod`` for client-side DP.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod  # flwr 1.42 exports it from the legacy client package only
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

if TYPE_CHECKING:
    import datasets

    from .config import FederatedConfig

logger = logging.getLogger("synthxray.federated")
CONFIG_KEY = "synthxray-config"


def split_arrays(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model state dict, EMA shadow parameters by name) from a DDPM record's flat ``model.*`` / ``ema.*`` keys."""
    from .backends import take

    return take(state, "model"), take(state, "ema")


def local_train(
    cfg: "FederatedConfig", state: dict[str, torch.Tensor], ds: "datasets.Dataset", num_classes: int, channels: int,
    server_round: int, partition_id: int = 0, proximal_mu: float = 0.0,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run ``cfg.local_steps`` optimiser steps of ``cfg.backend``'s training from the global weights ``state`` on ``ds``.

    The steps are numbered ``(round - 1) * local_steps ...`` of the federation's ``num_rounds * local_steps``, so the
    learning-rate schedule and the EMA warm-up continue across rounds as in one centralised run. With
    ``proximal_mu`` > 0 the FedProx term ``mu / 2 * ||w - w_global||^2`` is added to the loss.
    Returns the new flat state and metrics (``num-examples``, ``train-loss``, seconds).
    """
    from .backends import get_backend

    return get_backend(cfg).local_train(state, ds, num_classes, channels, server_round, partition_id, proximal_mu)


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


def _site_train(config: "dict | ConfigRecord", state: dict[str, torch.Tensor], context: Context) -> tuple[dict, dict]:
    """One site's round: its data, the injected failure (tests), ``local_train`` from the global ``state``."""
    from .config import FederatedConfig

    cfg = FederatedConfig.from_json(str(config[CONFIG_KEY]))
    server_round = int(config["server-round"])
    num_classes, channels = int(config["num-classes"]), int(config["channels"])
    ds, pid = _site_data(cfg, context)
    if (pid, server_round) in cfg.failures():
        raise RuntimeError(f"injected failure: site {pid} in round {server_round} (inject_failures)")
    if len(ds) == 0:
        raise ValueError(f"site {pid} holds no images")
    # the Message-API FedProx sends proximal-mu, Flower's legacy FedProx (secure aggregation) proximal_mu
    mu = float(config.get("proximal-mu", config.get("proximal_mu", 0.0)))
    return local_train(cfg, state, ds, num_classes, channels, server_round, pid, proximal_mu=mu)


def _train(msg: Message, context: Context) -> Message:
    from .secagg import is_legacy_train, legacy_train_reply

    if is_legacy_train(msg):  # Flower's legacy workflow (secure aggregation): FitIns in, FitRes out
        return legacy_train_reply(msg, lambda config, state: _site_train(config, state, context))
    new_state, metrics = _site_train(msg.content["config"], msg.content["arrays"].to_torch_state_dict(), context)
    content = RecordDict({"arrays": ArrayRecord(new_state), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


def secaggplus_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``secaggplus_mod`` for the messages of a SecAgg+ round; every other message passes straight on.
    So one ClientApp serves plain and secure-aggregation federations (the server's config decides)."""
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(mods=[secaggplus_when_asked])
app.train()(_train)

dp_app = ClientApp(mods=[fixedclipping_mod])
dp_app.train()(_train)
