"""SecAgg+ (Flower's secure aggregation) for synthxray's federations, on Flower's own legacy stack.

flwr 1.42 runs SecAgg+ only as the fit stage of its legacy server loop: ``SecAggPlusWorkflow`` inside
``DefaultWorkflow``, over a ``LegacyContext`` whose strategy is a legacy ``flwr.server.strategy`` FedAvg / FedProx,
and a ClientApp wrapped in ``secaggplus_mod`` whose train reply is a legacy ``FitRes`` record. The Message-API
strategies the plain path uses have no hook for it (flwrlabs/flower#4615 is unreleased). This module adapts
synthxray's rounds to that stack and nothing more: Flower's workflow runs the loop and the protocol (keys, Shamir
shares, masks, dropout recovery), the sites run the same ``local_train``, and the server's end-of-round hook is
:func:`~synthxray.federated.server_app.serve`'s (checkpoint, ``rounds.json``, FID).

What the protocol costs, by design: each site's update is clipped to ``secagg_clipping_range``, quantised to
``2**22`` levels and sent as masked 64-bit integers (twice float32's bytes), and a round takes three extra
request/reply stages (setup, key sharing, unmasking). :class:`CountingGrid` measures those bytes.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message
from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import ServerConfig
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.strategy import FedProx as LegacyFedProx
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from .config import FederatedConfig, secagg_counts
from .metrics import WEIGHT_KEY, weighted_losses

logger = logging.getLogger("synthxray.federated")
KEYS_KEY = "array-keys"  # the fit config's JSON list of state-dict keys, in the order the ndarrays travel
State = dict[str, torch.Tensor]


# ---- the state dict as the legacy list of ndarrays ---------------------------------------------------------------
def to_parameters(state: State, keys: list[str]) -> Parameters:
    return ndarrays_to_parameters([state[k].detach().cpu().numpy() for k in keys])


def to_state(parameters: Parameters, keys: list[str], like: State | None = None) -> State:
    """Back to a state dict; with ``like``, each array gets its template's dtype (integer buffers are rounded:
    SecAgg+ returns every aggregated array as floats)."""
    arrays = parameters_to_ndarrays(parameters)
    if len(arrays) != len(keys):
        raise ValueError(f"got {len(arrays)} arrays for {len(keys)} state-dict keys")
    out = {}
    for k, a in zip(keys, arrays):
        t = torch.from_numpy(np.ascontiguousarray(a))
        if like is not None:
            dtype = like[k].dtype
            t = (t.round() if not dtype.is_floating_point else t).to(dtype)
        out[k] = t
    return out


def is_legacy_train(msg: Message) -> bool:
    """Whether a train message came from the legacy workflow (``fitins.*`` records) rather than a Message-API strategy."""
    return "fitins.parameters" in msg.content.array_records


def legacy_train_reply(msg: Message, train: Callable[[dict[str, Any], State], tuple[State, dict[str, Any]]]) -> Message:
    """Answer a legacy fit instruction with ``train(config, state) -> (new state, metrics)`` as a ``FitRes`` record,
    the shape ``secaggplus_mod`` masks."""
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    keys = json.loads(str(fitins.config[KEYS_KEY]))
    new_state, metrics = train(dict(fitins.config), to_state(fitins.parameters, keys))
    fitres = FitRes(status=Status(code=Code.OK, message="ok"), parameters=to_parameters(new_state, keys),
                    num_examples=int(metrics[WEIGHT_KEY]), metrics=dict(metrics))
    return Message(content=compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


# ---- the server side -------------------------------------------------------------------------------------------------
def _value_bytes(v: Any) -> int:
    if isinstance(v, (bytes, str)):
        return len(v.encode() if isinstance(v, str) else v)
    if isinstance(v, list):
        return sum(_value_bytes(x) for x in v)
    return 8


def content_bytes(msg: Message) -> int:
    """Bytes of a message's records: arrays as ``ArrayRecord.count_bytes`` counts them, config and metric values by
    their payload (flwr 1.42's ``ConfigRecord.count_bytes`` fails on an empty list, which SecAgg+ sends)."""
    if not msg.has_content():
        return 0
    content = msg.content
    arrays = sum(r.count_bytes() for r in content.array_records.values())
    records = [*content.config_records.values(), *content.metric_records.values()]
    return arrays + sum(len(k) + _value_bytes(v) for r in records for k, v in r.items())


class CountingGrid:
    """A Flower ``Grid`` that counts the bytes of every message's records, both ways (all SecAgg+ stages)."""

    def __init__(self, grid: Grid) -> None:
        self._grid, self.down, self.up = grid, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout: float | None = None):  # noqa: ANN001 - Grid's signature
        messages = list(messages)
        self.down += sum(content_bytes(m) for m in messages)
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.up += sum(content_bytes(m) for m in replies)
        return replies


class _Rounds:
    """The hooks serve() needs, on a legacy strategy: numbering after ``offset``, the fit config every site gets,
    what each site reported, and ``end_of_round`` from the workflow's centralised-evaluation call."""

    grid: CountingGrid
    end_of_round: Callable[[int, ArrayRecord], Any]

    def setup(self, cfg: FederatedConfig, keys: list[str], like: State, offset: int, train_config: dict[str, Any],
              max_weight: float) -> None:
        self.cfg, self.keys, self.like, self.offset = cfg, keys, like, offset
        self.train_config, self.max_weight = train_config, max_weight
        self.current: dict[str, Any] = {}

    def configure_fit(self, server_round, parameters, client_manager):  # noqa: ANN001 - Flower's signature
        r = server_round + self.offset
        pairs = super().configure_fit(r, parameters, client_manager)
        for _, fitins in pairs:
            fitins.config.update(self.train_config, **{"server-round": r, KEYS_KEY: json.dumps(self.keys)})
        self.grid.down = self.grid.up = 0
        self.current = {"round": r, "started": time.time(), "sampled": len(pairs), "clients": [], "failures": [],
                        "updated": False}
        return pairs

    def aggregate_fit(self, server_round, results, failures):  # noqa: ANN001 - Flower's signature
        self.current["clients"] = sorted(
            ({"node_id": int(proxy.node_id), **{k.replace("-", "_"): v for k, v in res.metrics.items()}} for proxy, res in results),
            key=lambda c: c.get("partition_id", 0))
        self.current["failures"] = failure_reasons(failures)
        params, metrics = super().aggregate_fit(server_round + self.offset, results, failures)
        if params is not None:  # SecAgg+ dequantises to float64: back to the model's dtypes, or the next round's
            params = to_parameters(to_state(params, self.keys, self.like), self.keys)  # downlink doubles
        self.current.update(aggregated={k.replace("-", "_"): v for k, v in (metrics or {}).items()}, updated=params is not None)
        return params, metrics

    def evaluate(self, server_round, parameters):  # noqa: ANN001 - Flower's signature
        if server_round == 0:
            return None
        self.current.update(bytes_down=self.grid.down, bytes_up=self.grid.up)
        if not self.current.get("updated"):
            logger.warning("round %d: secure aggregation halted (too few sites answered a SecAgg+ stage: see Flower's log "
                           "above); the global model is unchanged this round", self.current.get("round", server_round))
        self.end_of_round(server_round, ArrayRecord(to_state(parameters, self.keys, self.like)))
        return None


def failure_reasons(failures: list) -> list[dict[str, str]]:
    """A round's dropped sites, once each: SecAggPlusWorkflow records a dropped site's ``Error`` at every stage it missed."""
    reasons = []
    for f in failures:
        error = f.args[0] if isinstance(f, Exception) and f.args else f
        text = str(getattr(error, "reason", error))[-300:]
        if {"reason": text} not in reasons:
            reasons.append({"reason": text})
    return reasons


class SecAggFedAvg(_Rounds, LegacyFedAvg):
    """Flower's legacy FedAvg with synthxray's round hooks."""


class SecAggFedProx(_Rounds, LegacyFedProx):
    """Flower's legacy FedProx (it sends ``proximal_mu`` to the sites) with synthxray's round hooks."""


def max_weight(cfg: FederatedConfig, data_info: dict | None) -> float:
    """The largest weight (site image count) SecAgg+ must encode: ``secagg_max_weight``, else the largest site."""
    if cfg.secagg_max_weight:
        return float(cfg.secagg_max_weight)
    counts = (data_info or {}).get("site_class_counts")
    if not counts:
        raise ValueError("secure_aggregation: set secagg_max_weight to at least the largest site's image count "
                         "(the server cannot see the sites' data under partition: supernode)")
    return float(max(sum(c.values()) for c in counts))


def make_secagg_strategy(cfg: FederatedConfig, state: State, start_round: int, train_config: dict[str, Any],
                         data_info: dict | None) -> SecAggFedAvg | SecAggFedProx:
    """Flower's legacy FedAvg / FedProx over the sampled sites, starting from ``state`` after ``start_round``."""
    keys = list(state)
    floats = [t for t in state.values() if t.numel() and t.dtype.is_floating_point]
    peak = max(float(t.abs().max()) for t in floats) if floats else 0.0
    if peak >= cfg.secagg_clipping_range:
        raise ValueError(f"secure_aggregation: the global weights reach |w| = {peak:.3g}, beyond secagg_clipping_range "
                         f"{cfg.secagg_clipping_range}; raise secagg_clipping_range")
    sample = cfg.sites_per_round
    common = dict(fraction_fit=cfg.fraction_train, fraction_evaluate=0.0, min_fit_clients=sample, min_evaluate_clients=0,
                  min_available_clients=cfg.num_clients, initial_parameters=to_parameters(state, keys),
                  fit_metrics_aggregation_fn=weighted_losses, accept_failures=True)
    strategy = (SecAggFedProx(proximal_mu=cfg.proximal_mu, **common) if cfg.strategy == "fedprox"
                else SecAggFedAvg(**common))
    strategy.setup(cfg, keys, state, start_round, train_config, max_weight(cfg, data_info))
    return strategy


def run_secagg(grid: Grid, context: Context, strategy: SecAggFedAvg | SecAggFedProx,
               end_of_round: Callable[[int, ArrayRecord], Any]) -> State:
    """Run the remaining rounds through Flower's DefaultWorkflow with SecAggPlusWorkflow as its fit stage; returns
    the final global state. ``end_of_round(round after start, arrays)`` runs after every round."""
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    cfg = strategy.cfg
    strategy.grid, strategy.end_of_round = CountingGrid(grid), end_of_round
    shares, threshold = secagg_counts(cfg)
    legacy = LegacyContext(context=context, strategy=strategy,
                           config=ServerConfig(num_rounds=cfg.num_rounds - strategy.offset, round_timeout=cfg.round_timeout))
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=shares, reconstruction_threshold=threshold, max_weight=strategy.max_weight,
        clipping_range=cfg.secagg_clipping_range, timeout=cfg.round_timeout))
    workflow(strategy.grid, legacy)
    final = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    return to_state(final, strategy.keys, strategy.like)
