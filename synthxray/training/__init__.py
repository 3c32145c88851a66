"""Training loops: shared pieces in ``common``/``diffusion``, one Config + ``train`` per backend.

Every trainer is reachable from any directory, with the flags of its ``train_scripts/*.py`` copy:
``synthxray train NAME ...`` or ``accelerate launch -m synthxray.training NAME ...``.
"""

from __future__ import annotations

import sys
from typing import Sequence

# trainer name -> (module, Config dataclass); the module defines ``train(config)``. Strings, so that
# listing the trainers (``synthxray train --help``) imports no torch.
TRAINERS: dict[str, tuple[str, str]] = {
    "ddpm": ("synthxray.training.ddpm", "DDPMTrainingConfig"),
    "dreambooth": ("synthxray.training.dreambooth", "DreamBoothConfig"),
    "lora": ("synthxray.training.lora", "LoRAConfig"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synthxray.training NAME [flags]`` (under ``accelerate launch -m`` for several processes)."""
    from .common import run_trainer

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m synthxray.training {{{','.join(TRAINERS)}}} [flags]   (NAME --help: its flags)")
        return 0 if argv else 2
    return run_trainer(argv[0], argv[1:], prog=f"python -m synthxray.training {argv[0]}")
