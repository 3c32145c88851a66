"""``synthxray evaluate``: FID / KID / precision / recall of a synthetic set against a real one, per class and over seeds.

The flags are :class:`synthxray.evaluation.config.EvaluationConfig`'s fields (HfArgumentParser, as the trainers'
configs); ``--config FILE`` (a ``.yaml``/``.json`` of the same keys, or the file as the first argument) gives values
and flags beside it override them. Defaults: the real test split, real images brought to the synthetic
resolution, torch-fidelity's FID protocol, one row per class; the report names protocol, extractor, compared size and
n. Launched on N processes (``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N -m synthxray.cli evaluate ...``) the
feature extraction is split between them and the main process writes the one report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PROG = "synthxray evaluate"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", add_help=False,
        help="compare synthetic images with real ones: FID/KID/precision/recall per class, memorization, label fidelity",
        description="Writes OUTPUT_DIR/evaluation.json and evaluation.md (one row per class plus overall; mean ± std over seeds). "
        f"`{PROG} --help` lists the flags (EvaluationConfig's fields); `{PROG} --config FILE [flags]` reads "
        "them from a .yaml/.json file, the flags overriding it.",
    )
    p.set_defaults(func=run, flags=True)  # flags=True: cli.main hands every flag to run() (EvaluationConfig parses them)


def _synthetic_input(text: str, device: str | None):
    """A generator folder/Hub repo (has synthxray.json) is loaded as a Generator; anything else is data."""
    path = Path(text)
    if path.is_dir() and (path / "synthxray.json").is_file():
        from ..generators import load_generator

        return load_generator(text, **({"device": device} if device else {}))
    return text


def run(args: argparse.Namespace) -> int:
    from ..evaluation import EvaluationConfig, evaluate
    from ..training.common import parse_config

    cfg = parse_config(EvaluationConfig, args.flags, prog=PROG)
    if not cfg.output_dir:
        raise ValueError("--output_dir is required (the folder evaluation.json and evaluation.md are written to)")
    from ..outputs import EVALUATION, check_output_dir

    check_output_dir(cfg.output_dir, EVALUATION, cfg.overwrite_output_dir)  # before a generator loads
    synthetic = _synthetic_input(str(cfg.synthetic), cfg.device)
    generator = not isinstance(synthetic, str)
    result = evaluate(synthetic=synthetic, config=cfg, generate_kwargs={"batch_size": cfg.batch_size} if generator else None)
    from ..processes import distributed_state, is_main_process

    if is_main_process(distributed_state()):  # on N processes, one report (written by the main process)
        print(result.to_markdown())
        from ..resources import format_mb, process_peak_mb

        print(f"wrote {Path(cfg.output_dir) / 'evaluation.json'} and evaluation.md (peak memory {format_mb(process_peak_mb())})")
    return 0
