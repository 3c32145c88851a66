#!/usr/bin/env python
"""Federated vs centralised DDPM training at equal total training steps (Flower simulation engine).

    nice -n 10 python benchmarks/federated.py --data ../shared/data/medmnist/pneumoniamnist.npz \
        --output runs/fedbench --total_steps 160 --rounds 4

Rows: centralised (``train_ddpm.py``'s ``train``, ``total_steps`` steps), then 4 and 10 sites with IID and
majority-0.8 partitions. "Equal total training steps": the optimiser steps summed over all sites equal the
centralised run's, so each site runs ``total_steps / (sites * rounds)`` local steps per round (equal compute on one
machine; every site trains every round). Optional rows: ``dp`` (4 IID sites with Flower's client-side fixed-clipping
DP), ``secagg`` (4 IID sites with Flower's SecAgg+; its bytes count all four protocol stages' records) and
``fedprox`` (4 majority sites). Everything else is the default DDPM of ``train_ddpm.py``.

Each model samples the test set's size and class mix (n = 624 for PneumoniaMNIST) with its saved default sampler
and is scored with ``synthxray.evaluate`` (Inception FID, the default protocol) against the test split. Wall time
is the training run's (Ray start-up included for federated rows), bytes per round are the ``ArrayRecord`` bytes sent
to and received from all sites in a round (``rounds.json``). CPU seconds are summed over this process and every
process under it (Ray's raylet and workers included), sampled every second with psutil, for training and for
scoring separately. Results: OUT/federated.json and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

ROWS = {
    "centralised": None,
    "4-iid": dict(num_clients=4, partition="iid"),
    "4-majority-0.8": dict(num_clients=4, partition="majority", majority_fraction=0.8),
    "10-iid": dict(num_clients=10, partition="iid"),
    "10-majority-0.8": dict(num_clients=10, partition="majority", majority_fraction=0.8),
    "4-iid-dp": dict(num_clients=4, partition="iid", dp_noise_multiplier=0.1, dp_clipping_norm=1.0),
    "4-iid-secagg": dict(num_clients=4, partition="iid", secure_aggregation=True),
    "4-majority-0.8-fedprox": dict(num_clients=4, partition="majority", majority_fraction=0.8, strategy="fedprox", proximal_mu=0.01),
}
DEFAULT_ROWS = ["centralised", "4-iid", "4-majority-0.8", "10-iid", "10-majority-0.8"]


class TreeCPU:
    """CPU seconds used by this process and all its descendants while the block runs (sampled every second, so
    processes that live under a second may be missed; Ray's workers live for the whole federated run)."""

    def __enter__(self) -> "TreeCPU":
        import psutil

        self._root, self._seen, self._stop = psutil.Process(), {}, threading.Event()
        self._base = self._snapshot()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _snapshot(self) -> dict[int, float]:
        import psutil

        out = {}
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                out[(proc.pid, proc.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        return out

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            self._seen.update(self._snapshot())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._seen.update(self._snapshot())
        self.seconds = sum(v - self._base.get(k, 0.0) for k, v in self._seen.items())


def train_row(name: str, args: argparse.Namespace, out: Path) -> tuple[Path, float, dict]:
    folder = out / name
    t0 = time.time()
    common = dict(dataset=args.data, output_dir=str(folder), seed=args.seed, dataloader_num_workers=0, overwrite_output_dir=True)
    if ROWS[name] is None:
        from synthxray.training.ddpm import DDPMTrainingConfig, train

        train(DDPMTrainingConfig(max_train_steps=args.total_steps, checkpointing_steps=0, save_images_steps=0, **common))
        return folder, time.time() - t0, {}
    from synthxray.federated import FederatedConfig, run_federated

    sites = ROWS[name]["num_clients"]
    local = args.total_steps // (sites * args.rounds)
    if local * sites * args.rounds != args.total_steps:
        raise SystemExit(f"--total_steps {args.total_steps} is not divisible by sites x rounds = {sites * args.rounds}")
    cfg = FederatedConfig(num_rounds=args.rounds, local_steps=local, client_num_cpus=args.client_cpus,
                          resume_from_checkpoint=None, **ROWS[name], **common)
    run_federated(cfg)
    rounds = json.loads((folder / "rounds.json").read_text())["rounds"]
    extra = {
        "local_steps": local, "rounds": len(rounds),
        "bytes_per_round": int(np.mean([r["bytes_down"] + r["bytes_up"] for r in rounds])),
        "final_round_loss": rounds[-1]["aggregated"].get("train_loss"),
        "round_losses": [r.get("aggregated", {}).get("train_loss") for r in rounds],
        "round_seconds": [r.get("seconds") for r in rounds],
        "site_sizes": [sum(c.values()) for c in json.loads((folder / "partitions.json").read_text())["class_counts"]],
    }
    return folder, time.time() - t0, extra


def score(folder: Path, test, ext) -> tuple[dict, dict]:
    from synthxray import evaluate, load_generator
    from synthxray.classes import proportional_counts
    from synthxray.synthesis import generate_dataset

    counts = {n: int(c) for n, c in zip(test.features["label"].names, np.bincount(test["label"]))}
    gen = load_generator(folder, device="cpu")
    ds = generate_dataset(gen, images_per_class=proportional_counts(counts, len(test)), seed=0, batch_size=256, progress=False)
    res = evaluate(test, ds, metrics=("fid",), extractor=ext, by_class=True, real_split="test", progress=False, device="cpu")
    return {r["class"]: round(float(r["fid"]["mean"]), 2) for r in res.rows}, {"n_synthetic": len(ds), "n_real": len(test), **res.settings}


def dp_overhead(repeats: int = 5) -> dict:
    """Seconds Flower's client-side fixed-clipping DP adds per round on the default DDPM's record (model + EMA):
    ``fixedclipping_mod``'s clipping on a site, the wrapper's Gaussian noise on the server (the same calls they make)."""
    import numpy as np
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg
    from flwr.supercore.differential_privacy import compute_clip_model_update

    from synthxray.federated import FederatedConfig
    from synthxray.federated.server_app import initial_state

    state = initial_state(FederatedConfig(dataset="x", output_dir="o"), 2, 1)
    record = ArrayRecord(state)
    old = record.to_numpy_ndarrays()
    rng = np.random.default_rng(0)
    clip, noise = [], []
    strategy = DifferentialPrivacyClientSideFixedClipping(FedAvg(), noise_multiplier=1.0, clipping_norm=10.0, num_sampled_clients=4)
    for _ in range(repeats):
        new = [a + rng.normal(0, 0.01, a.shape).astype(a.dtype) for a in old]
        t0 = time.perf_counter()
        compute_clip_model_update(param1=new, param2=old, clipping_norm=10.0)
        clip.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        strategy._add_noise_to_aggregated_arrays(ArrayRecord(state))
        noise.append(time.perf_counter() - t0)
    return {"parameters": int(sum(a.size for a in old)), "record_bytes": record.count_bytes(),
            "clip_seconds_per_site_round": round(float(np.median(clip)), 4),
            "noise_seconds_per_round": round(float(np.median(noise)), 4)}


def markdown(report: dict) -> str:
    lines = ["| run | sites | partition | local steps x rounds | FID overall | FID per class | training wall s | training CPU s "
             "| scoring CPU s | MB per round |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["rows"].items():
        spec = ROWS[name] or {}
        per_class = ", ".join(f"{k} {v:.1f}" for k, v in r["fid"].items() if k != "overall")
        steps = f"{r['local_steps']} x {r['rounds']}" if "local_steps" in r else f"{report['total_steps']} (one site)"
        mb = f"{r['bytes_per_round'] / 1e6:.1f}" if "bytes_per_round" in r else "-"
        lines.append(f"| {name} | {spec.get('num_clients', 1)} | {spec.get('partition', '-')} | {steps} | "
                     f"{r['fid']['overall']:.1f} | {per_class} | {r['wall_seconds']:.0f} | {r.get('train_cpu_seconds', 0):.0f} | "
                     f"{r.get('score_cpu_seconds', 0):.0f} | {mb} |")
    return "\n".join(lines)


def merge(args: argparse.Namespace, folders: list[Path]) -> dict:
    """One report from rows run as separate processes; refuses folders run with other sizes."""
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "federated.json"
    report = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    for folder in folders:
        other = json.loads((folder / "federated.json").read_text())
        for key in ("total_steps", "rounds", "seed", "extractor"):
            if report.get(key, other.get(key)) != other.get(key):
                raise SystemExit(f"{folder}: {key} {other.get(key)!r} differs from {report.get(key)!r}; not merged")
            report[key] = other.get(key)
        report.setdefault("protocol", other.get("protocol"))
        report["rows"].update(other["rows"])
    report["rows"] = {name: report["rows"][name] for name in ROWS if name in report["rows"]}
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--total_steps", type=int, default=240)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--client_cpus", type=float, default=float(os.cpu_count() or 1), help="CPUs per simulated site in Ray")
    p.add_argument("--extractor", default="inception")
    p.add_argument("--dp_overhead", action="store_true", help="only time Flower's DP clipping and noise on the default model")
    p.add_argument("--merge", nargs="+", metavar="DIR",
                   help="only combine the rows of other --output folders (rows run in parallel, same --total_steps and "
                        "--rounds) into OUTPUT/federated.json and print the table")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.dp_overhead:
        print(json.dumps(dp_overhead(), indent=2))
        return
    if args.merge:
        print(markdown(merge(args, [Path(d) for d in args.merge])))
        return
    from synthxray import load_dataset
    from synthxray.evaluation import get_extractor

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "federated.json"
    report = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    report.update(total_steps=args.total_steps, rounds=args.rounds, data=args.data, seed=args.seed)
    test = load_dataset(args.data, split="test")
    ext = get_extractor(args.extractor)
    report["extractor"] = ext.description
    for name in args.rows:
        if name in report["rows"]:
            print(f"{name}: done before, kept", flush=True)
            continue
        load = os.getloadavg()[0]
        with TreeCPU() as train_cpu:
            folder, seconds, extra = train_row(name, args, out)
        t0 = time.time()
        with TreeCPU() as score_cpu:
            fid, settings = score(folder, test, ext)
        report["rows"][name] = {"fid": fid, "wall_seconds": round(seconds, 1), "train_cpu_seconds": round(train_cpu.seconds, 1),
                                "score_wall_seconds": round(time.time() - t0, 1), "score_cpu_seconds": round(score_cpu.seconds, 1),
                                "load_average_at_start": round(load, 2), **extra}
        report["protocol"] = settings
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"{name}: FID {fid['overall']:.1f}, training {seconds:.0f} s wall / {train_cpu.seconds:.0f} CPU-s, "
              f"scoring {score_cpu.seconds:.0f} CPU-s", flush=True)
    print(markdown(report))


if __name__ == "__main__":
    main()
