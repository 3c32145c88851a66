"""The one launcher of the 2-process tests (importable as ``twoprocs``): the CPU recipe of docs/multi-process.md,
``ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 ...`` (gloo, a free port each time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torchrun(args: list[str], cwd: Path | None = None, timeout: int = 600, check: bool = True,
             nproc: int = 2) -> subprocess.CompletedProcess:
    """Run ``args`` (a script path and its flags, or ``-m module ...``) on ``nproc`` CPU processes.

    ``check``: fail the test with the end of stderr when the launch does not exit 0.
    """
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *map(str, args)]
    done = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done
