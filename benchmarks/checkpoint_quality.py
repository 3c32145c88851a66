#!/usr/bin/env python
"""A training run's quality curve: each chosen checkpoint exported, sampled in the test set's class mix and scored.

    python benchmarks/checkpoint_quality.py --run runs/large-ddpm --data ../shared/data/medmnist/pneumoniamnist.npz \
        --steps 500 1000 2000 4000 8000 10000 --workdir runs/large-ddpm-quality

For each step: ``synthxray export`` (the run's EMA weights at that checkpoint; the final step is the run folder
itself), ``synthxray generate`` of as many images per class as the real test split has (the test class mix, seed
0, the generator's saved sampler), and ``synthxray evaluate`` against the test split: FID and KID under the default
protocol (torch-fidelity, TF-Inception, both sides at the generator's resolution), precision / recall, and label
fidelity (a small CNN trained on the real training split, its accuracy on the synthetic labels). A real train-vs-test
row gives the floor at the same n. Prints one markdown table with the load average before and after; results are
also kept in WORKDIR/checkpoint_quality.json. Finished exports, pools and evaluations in WORKDIR are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthxray.resources import machine_line, run_measured

METRICS = ["fid", "kid", "precision", "recall", "label_fidelity"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a `synthxray train ddpm` output folder with checkpoints/")
    p.add_argument("--data", required=True, help="the real data (its test split is the reference)")
    p.add_argument("--steps", type=int, nargs="+", required=True, help="training steps to score (checkpointed ones)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--no_floor", action="store_true", help="skip the real train-vs-test row")
    args = p.parse_args(argv)
    if any(s < 1 for s in args.steps):
        p.error("--steps must be >= 1")
    return args


def checkpoint_for(run: Path, step: int) -> Path | None:
    """The checkpoint folder saved at ``step`` (None: the run's own final save)."""
    from synthxray.training.checkpoints import checkpoints_by_step

    final = json.loads((run / "synthxray.json").read_text())["extra"]["train_steps"] if (run / "synthxray.json").is_file() else None
    if step == final:
        return None
    found = checkpoints_by_step(run)
    if step not in found:
        sys.exit(f"--steps {step}: {run} has no checkpoint at that step (it has {sorted(found)})")
    return found[step]


def call(command: list[str]) -> float:
    usage = run_measured(command)
    if usage.returncode:
        sys.exit(f"failed (exit {usage.returncode}): {' '.join(command)}")
    return usage.seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run, work = Path(args.run), Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "synthxray.cli"]
    from synthxray.data import load_dataset

    test = load_dataset(args.data, split="test")
    names = test.features["label"].names
    counts = {name: int(sum(1 for y in test["label"] if y == i)) for i, name in enumerate(names)}
    mix = ",".join(f"{k}={v}" for k, v in counts.items())
    print("start:", machine_line(), flush=True)
    rows = []
    for step in args.steps:
        checkpoint = checkpoint_for(run, step)
        model = run if checkpoint is None else work / f"step{step}" / "generator"
        if checkpoint is not None and not (model / "synthxray.json").is_file():
            call([*cli, "export", "--checkpoint", str(checkpoint), "--output_dir", str(model)])
        pool, evaluation = work / f"step{step}" / "pool", work / f"step{step}" / "evaluation"
        timing = work / f"step{step}" / "generate_seconds.json"  # kept, so a rerun reports the first run's time
        if not pool.is_dir():
            seconds = call([*cli, "generate", "--model", str(model), "--images_per_class", mix, "--seed", "0",
                            "--batch_size", "64", "--output_dir", str(pool)])
            timing.write_text(json.dumps({"seconds": seconds, "machine": machine_line()}) + "\n")
        gen_s = json.loads(timing.read_text())["seconds"] if timing.is_file() else None
        if not (evaluation / "evaluation.json").is_file():
            call([*cli, "evaluate", "--real", args.data, "--real_split", "test", "--synthetic", str(pool),
                  "--metrics", *METRICS, "--output_dir", str(evaluation)])
        rows.append((f"step {step}", gen_s, json.loads((evaluation / "evaluation.json").read_text())))
    if not args.no_floor:
        evaluation = work / "floor" / "evaluation"
        if not (evaluation / "evaluation.json").is_file():
            call([*cli, "evaluate", "--real", args.data, "--real_split", "test", "--synthetic", args.data,
                  "--synthetic_split", "train", "--num_samples", str(sum(counts.values())), "--metrics", "fid", "kid",
                  "precision", "recall", "--output_dir", str(evaluation)])
        rows.append(("real train (floor)", None, json.loads((evaluation / "evaluation.json").read_text())))
    print("end:  ", machine_line())
    table = ["| pool | n real / synthetic | FID | KID x1000 | precision | recall | label fidelity (synthetic accuracy) | "
             "generate s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    record = []
    for label, gen_s, result in rows:
        overall = next(r for r in result["rows"] if r["class"] == "overall")
        get = lambda m: overall[m]["mean"] if m in overall else None  # noqa: E731
        fidelity = ((result.get("label_fidelity") or {}).get("synthetic") or {}).get("accuracy")
        record.append({"pool": label, "fid": get("fid"), "kid": get("kid"), "precision": get("precision"),
                       "recall": get("recall"), "label_fidelity": fidelity, "n_real": overall["n_real"],
                       "n_synthetic": overall["n_synthetic"], "protocol": result["protocol"],
                       "extractor": result["extractor"], "generate_seconds": gen_s})
        fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
        table.append(f"| {label} | {overall['n_real']} / {overall['n_synthetic']} | {fmt(get('fid'), '.1f')} | "
                     f"{fmt(get('kid') and get('kid') * 1000, '.1f')} | {fmt(get('precision'), '.3f')} | "
                     f"{fmt(get('recall'), '.3f')} | {fmt(fidelity, '.3f')} | {fmt(gen_s, '.0f')} |")
    protocol = rows[0][2]["protocol"], rows[0][2]["extractor"]
    print(f"\nprotocol {protocol[0]}, extractor {protocol[1]}\n")
    print("\n".join(table))
    (work / "checkpoint_quality.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
