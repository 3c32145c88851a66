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
    p.add_argument("--overwrite_output_dir", action="store_true",
                   help="write into an output_dir that holds files synthxray did not write (they are kept; spec.json, "
                        "results.* and plots/ are synthxray's names); never into another kind of synthxray artefact")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import run_experiment

    overrides = {"output_dir": args.output_dir} if args.output_dir else {}
    results = run_experiment(args.config, overwrite_output_dir=args.overwrite_output_dir, **overrides)
    print(results.markdown)
    print(f"results: {results.output_dir}/results.csv, results.json, results.md, plots/")
    return 0
