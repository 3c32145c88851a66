"""``synthxray experiment``: run an augmentation-ratio experiment from a YAML/JSON spec."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="train classifiers on real/synthetic data recipes and report accuracy, F1, AUC over seeds",
        description="Run every (backbone, recipe, seed) of an experiment spec; finished runs in output_dir are skipped.",
    )
    p.add_argument("--config", required=True, help="experiment spec (.yaml or .json)")
    p.add_argument("--output_dir", default=None, help="override the spec's output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import run_experiment

    overrides = {"output_dir": args.output_dir} if args.output_dir else {}
    results = run_experiment(args.config, **overrides)
    print(results.markdown)
    print(f"results: {results.output_dir}/results.csv, results.json, results.md, plots/")
    return 0
