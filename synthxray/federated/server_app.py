"""The Flower ``ServerApp``: Flower's FedAvg (or FedProx, optionally DP-wrapped) over the sites, with a
checkpoint of the global model after every round, ``rounds.json``, optional FID every K rounds, and an
ordinary synthxray generator folder at the end.

``app`` is the deployment entry (``flwr run``; run config key ``config`` names the YAML);
:func:`make_server_app` builds the same app around a config object for the simulation engine.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, FedProx, Strategy

from .client_app import CONFIG_KEY
from .config import RESUME_KEYS, FederatedConfig
from .metrics import WEIGHT_KEY, weighted_losses

logger = logging.getLogger("synthxray.federated")
ROUNDS_FILE = "rounds.json"
WEIGHTS_FILE = "global.safetensors"


def aggregate_losses(records: list, weighted_by_key: str) -> MetricRecord:
    """The sites' replies (RecordDicts) averaged by :func:`~synthxray.federated.metrics.weighted_losses`."""
    pairs = [(float(m[weighted_by_key]), dict(m)) for r in records for m in r.metric_records.values()]
    return MetricRecord(weighted_losses(pairs))


def make_strategy(cfg: FederatedConfig) -> Strategy:
    """Flower's FedAvg / FedProx, weighted by each site's ``num-examples``; DP-wrapped when asked."""
    # FedAvg sizes its sample from the nodes connected *before* it waits for min_available_nodes, so a
    # deployment round that starts while a SuperNode is still connecting would sample too few: ask for
    # fraction_train of num_clients outright
    sample = cfg.sites_per_round
    common = dict(train_metrics_aggr_fn=aggregate_losses,
        fraction_train=cfg.fraction_train, fraction_evaluate=0.0, min_train_nodes=sample,
        min_evaluate_nodes=0, min_available_nodes=cfg.num_clients, weighted_by_key=WEIGHT_KEY,
    )
    strategy: Strategy = FedProx(proximal_mu=cfg.proximal_mu, **common) if cfg.strategy == "fedprox" else FedAvg(**common)
    if cfg.dp_noise_multiplier is not None:
        strategy = DifferentialPrivacyClientSideFixedClipping(
            strategy, noise_multiplier=cfg.dp_noise_multiplier, clipping_norm=cfg.dp_clipping_norm, num_sampled_clients=sample
        )
    return strategy


class TrackedStrategy(Strategy):
    """Wraps a Flower strategy: numbers rounds after ``offset`` (resume) and records what each site sent."""

    def __init__(self, inner: Strategy, offset: int = 0) -> None:
        self.inner, self.offset = inner, offset
        self.current: dict[str, Any] = {}

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round + self.offset, arrays, config, grid))
        self.current = {"round": server_round + self.offset, "started": time.time(), "sampled": len(messages),
                        "bytes_down": sum(m.content["arrays"].count_bytes() for m in messages)}
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        clients, failures, up = [], [], 0
        for msg in replies:
            if msg.has_error():
                reason = str(msg.error.reason)
                reason = reason.rsplit("Message:", 1)[-1].strip().rstrip("'>").strip() if "Message:" in reason else reason[-300:]
                failures.append({"node_id": int(msg.metadata.src_node_id), "reason": reason})
                continue
            metrics = dict(msg.content["metrics"])
            up += msg.content["arrays"].count_bytes()
            clients.append({"node_id": int(msg.metadata.src_node_id), **{k.replace("-", "_"): v for k, v in metrics.items()}})
        arrays, metrics = self.inner.aggregate_train(server_round + self.offset, replies)
        self.current.update(
            clients=sorted(clients, key=lambda c: c.get("partition_id", 0)), failures=failures, bytes_up=up,
            aggregated={k.replace("-", "_"): v for k, v in dict(metrics or {}).items()}, updated=arrays is not None,
        )
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round + self.offset, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round + self.offset, replies)


# ---- checkpoints ---------------------------------------------------------------------------------------------
def checkpoint_dir(out: Path, server_round: int) -> Path:
    # the name training.common.list_checkpoints and prepare_output_dir recognise
    return out / "checkpoints" / f"checkpoint_{server_round}"


def save_checkpoint(out: Path, server_round: int, arrays: ArrayRecord, keep: int | None) -> Path:
    """Write the global weights after ``server_round`` atomically (tmp folder, then rename); keep the last ``keep``."""
    from safetensors.torch import save_file

    from ..training.common import list_checkpoints

    final = checkpoint_dir(out, server_round)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in arrays.to_torch_state_dict().items()}, str(tmp / WEIGHTS_FILE))
    (tmp / "round.json").write_text(json.dumps({"round": server_round}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if keep:
        for old in list_checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest_checkpoint(out: Path) -> tuple[int, dict[str, torch.Tensor]] | None:
    """(last completed round, global weights), or None when the run has no checkpoint."""
    from safetensors.torch import load_file

    from ..training.common import list_checkpoints

    found = [p for p in list_checkpoints(out) if (p / WEIGHTS_FILE).is_file()]
    if not found:
        return None
    latest = found[-1]
    return int(json.loads((latest / "round.json").read_text())["round"]), load_file(str(latest / WEIGHTS_FILE))


def check_resumable(cfg: FederatedConfig, out: Path) -> None:
    """A resumed run must be the same federation (sites, partition, steps, model) as the one that checkpointed."""
    from ..training.common import CONFIG_FILE

    path = out / CONFIG_FILE
    if not path.is_file():
        return
    old, new = json.loads(path.read_text()), cfg.to_dict()
    changed = {k: (old.get(k), new.get(k)) for k in RESUME_KEYS if k in old and old.get(k) != new.get(k)}
    if changed:
        raise ValueError(
            f"{out} holds checkpoints of a different federation {changed} (old, new); keep those settings to resume, "
            "or pass overwrite_output_dir: true with resume_from_checkpoint: none to start again"
        )


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


# ---- the server's main ------------------------------------------------------------------------------------------
def initial_state(cfg: FederatedConfig, num_classes: int, channels: int) -> dict[str, torch.Tensor]:
    """Round-0 global weights: the backend's seeded random networks (and EMA copy), as its trainer starts them."""
    from .backends import get_backend

    return get_backend(cfg).initial_state(num_classes, channels)


def serve(grid: Grid, cfg: FederatedConfig, class_names: Sequence[str], channels: int, data_info: dict | None = None,
          context: Context | None = None) -> Path:
    """Run the federation's remaining rounds on ``grid`` and save the generator; returns the output folder.

    Plain rounds run Flower's Message-API strategy (``strategy.start``); with ``secure_aggregation`` they run Flower's
    legacy DefaultWorkflow + SecAggPlusWorkflow (:mod:`.secagg`, which needs the ServerApp's ``context``). Both call
    the same end-of-round hook: checkpoint, ``rounds.json``, FID."""
    from ..training.common import prepare_output_dir, write_config

    out = Path(cfg.output_dir)
    resumed = load_latest_checkpoint(out) if cfg.resume_from_checkpoint and out.is_dir() else None
    if resumed:
        check_resumable(cfg, out)
    else:
        prepare_output_dir(cfg)
    write_config(cfg, out)
    names, num_classes = list(class_names), len(class_names)
    start_round, state = resumed if resumed else (0, initial_state(cfg, num_classes, channels))
    history = json.loads((out / ROUNDS_FILE).read_text()) if resumed and (out / ROUNDS_FILE).is_file() else {"rounds": []}
    history["rounds"] = [r for r in history["rounds"] if r["round"] <= start_round]
    history.update(strategy=describe_strategy(cfg), num_clients=cfg.num_clients, partition=cfg.partition,
                   local_steps=cfg.local_steps, num_rounds=cfg.num_rounds)
    if start_round:
        logger.info("resuming %s after round %d of %d", out, start_round, cfg.num_rounds)
    train_config = {CONFIG_KEY: cfg.to_json(), "num-classes": num_classes, "channels": channels}
    if cfg.secure_aggregation:
        from .secagg import make_secagg_strategy, run_secagg

        tracked: Any = make_secagg_strategy(cfg, state, start_round, train_config, data_info)
    else:
        tracked = TrackedStrategy(make_strategy(cfg), offset=start_round)
    fid = FidTracker(cfg, names, channels) if cfg.fid_every_rounds else None

    def end_of_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        r = server_round + start_round
        record = {k: v for k, v in tracked.current.items() if k != "started"}
        record["seconds"] = round(time.time() - tracked.current.get("started", time.time()), 2)
        save_checkpoint(out, r, arrays, cfg.checkpoints_total_limit)
        if fid is not None and (r % cfg.fid_every_rounds == 0 or r == cfg.num_rounds):
            record["fid"] = fid(arrays)
        history["rounds"].append(record)
        write_json(out / ROUNDS_FILE, history)
        loss = record.get("aggregated", {}).get("train_loss")
        logger.info("round %d/%d: %d of %d sites, loss %s%s", r, cfg.num_rounds, len(record.get("clients", [])),
                    record.get("sampled", 0), f"{loss:.4f}" if loss is not None else "n/a",
                    f", FID {record['fid']['overall']:.1f}" if "fid" in record else "")
        return MetricRecord({"round": r})

    remaining = cfg.num_rounds - start_round
    arrays = ArrayRecord(state)
    if remaining > 0 and cfg.secure_aggregation:
        if context is None:
            raise ValueError("secure_aggregation needs the ServerApp's Context (serve(..., context=context))")
        arrays = ArrayRecord(run_secagg(grid, context, tracked, end_of_round))
    elif remaining > 0:
        result = tracked.start(grid, arrays, num_rounds=remaining, timeout=cfg.round_timeout,
                               train_config=ConfigRecord(train_config), evaluate_fn=end_of_round)
        arrays = result.arrays if result.arrays is not None else arrays
    from .report import save_generator

    return save_generator(cfg, out, arrays.to_torch_state_dict(), names, channels, history, data_info or {})


def describe_strategy(cfg: FederatedConfig) -> dict[str, Any]:
    desc: dict[str, Any] = {"name": "FedProx" if cfg.strategy == "fedprox" else "FedAvg", "weighted_by": WEIGHT_KEY,
                            "fraction_train": cfg.fraction_train}
    if cfg.strategy == "fedprox":
        desc["proximal_mu"] = cfg.proximal_mu
    if cfg.secure_aggregation:
        from .config import secagg_counts

        shares, threshold = secagg_counts(cfg)
        desc["secure_aggregation"] = {"kind": "SecAgg+ (Flower's SecAggPlusWorkflow + secaggplus_mod, legacy server loop)",
                                      "num_shares": shares, "reconstruction_threshold": threshold,
                                      "clipping_range": cfg.secagg_clipping_range, "quantization_range": 2**22,
                                      "bytes": "all four stages' records, both ways"}
    if cfg.dp_noise_multiplier is not None:
        desc["differential_privacy"] = {"kind": "client-side fixed clipping (Flower)", "noise_multiplier": cfg.dp_noise_multiplier,
                                        "clipping_norm": cfg.dp_clipping_norm}
    return desc


class FidTracker:
    """FID of the global model's EMA weights against the held-out set (``synthxray.evaluate``'s default protocol)."""

    def __init__(self, cfg: FederatedConfig, names: Sequence[str], channels: int) -> None:
        from ..data import load_dataset

        self.cfg, self.names, self.channels = cfg, list(names), channels
        source = cfg.fid_dataset or cfg.dataset
        self.real = load_dataset(source, split=cfg.fid_split)
        n = min(cfg.fid_num_images, len(self.real))
        if n < len(self.real):
            from ..classes import stratified_indices

            self.real = self.real.select(stratified_indices(self.real["label"], n, seed=0))

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        from ..evaluation import evaluate
        from .report import build_generator

        gen = build_generator(self.cfg, arrays.to_torch_state_dict(), self.names, self.channels, {})
        res = evaluate(self.real, gen, metrics=("fid",), by_class=True, num_samples=len(self.real), real_split=self.cfg.fid_split,
                       progress=False)
        return {r["class"]: round(float(r["fid"]["mean"]), 2) for r in res.rows}


def make_server_app(cfg: FederatedConfig, class_names: Sequence[str], channels: int, data_info: dict | None = None) -> ServerApp:
    """The ServerApp for the simulation engine, closed over an already validated config."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        serve(grid, cfg, class_names, channels, data_info, context)

    return server


app = ServerApp()


@app.main()
def deployment_main(grid: Grid, context: Context) -> None:
    """``flwr run``: the run config's ``config`` names the federation YAML (``output_dir`` on the server's disk)."""
    from ..training.common import parse_config

    path = str(context.run_config.get("config", ""))
    if not path:
        raise ValueError("set the run config key 'config' to the federation YAML, e.g. --run-config \"config='fed.yaml'\"")
    from .backends import get_backend

    cfg = parse_config(FederatedConfig, [path])
    get_backend(cfg)  # the backend and its backend_args, checked before any data is read
    names, channels = server_classes(cfg)
    serve(grid, cfg, names, channels, {"source": "one data-path per SuperNode", "split": cfg.dataset_split, "engine": "deployment"},
          context)


def server_classes(cfg: FederatedConfig) -> tuple[list[str], int]:
    """Class names and channels: from the config (deployment) or the dataset (simulation)."""
    if cfg.class_names and cfg.channels:
        return list(cfg.class_names), int(cfg.channels)
    if cfg.partition == "supernode":
        raise ValueError("partition: supernode needs class_names and channels in the config")
    from ..data import class_names, is_grayscale
    from .partition import load_training_set

    ds = load_training_set(cfg)
    return list(cfg.class_names or class_names(ds)), int(cfg.channels or (1 if is_grayscale(ds) else 3))

