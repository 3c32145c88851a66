#!/usr/bin/env python
"""Distil a trained class-conditional DDPM into a few-step (1-4 evaluation) consistency generator.

    accelerate launch train_scripts/distill_consistency.py \
        --teacher runs/ddpm --output_dir runs/consistency --max_train_minutes 20 --seed 0

``--dataset`` and ``--resolution`` default to the teacher's. All flags: ``--help``. A single
``.yaml``/``.json`` argument is read as the config file. Re-run with ``--resume_from_checkpoint latest``
to continue an interrupted run. The result loads with ``synthxray.load_generator`` and samples with
``num_inference_steps`` from 1 to ``--num_solver_steps``.
"""

import sys

from synthxray.training.common import run_script
from synthxray.training.consistency import ConsistencyDistillationConfig, train


def main(argv=None) -> int:
    return run_script(ConsistencyDistillationConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
