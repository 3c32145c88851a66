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
    "gan": ("synthxray.training.gan", "GANTrainingConfig"),  # --architecture dcgan|wgan-gp|cgan|acgan
    "vae": ("synthxray.training.vae", "VAETrainingConfig"),
    "consistency": ("synthxray.training.consistency", "ConsistencyDistillationConfig"),  # few-step student of a ddpm
}


def run_trainer(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``run_script`` (the ``main`` of ``train_scripts/*.py``) for the trainer registered as ``name``."""
    import importlib

    from .common import run_script

    if name not in TRAINERS:
        print(f"{prog or 'synthxray train'}: error: unknown trainer {name!r}; choose one of {', '.join(TRAINERS)}",
              file=sys.stderr)
        return 2
    module_name, config_name = TRAINERS[name]
    module = importlib.import_module(module_name)
    return run_script(getattr(module, config_name), module.train, argv, prog=prog)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synthxray.training NAME [flags]`` (under ``accelerate launch -m`` for several processes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m synthxray.training {{{','.join(TRAINERS)}}} [flags]   (NAME --help: its flags)")
        return 0 if argv else 2
    return run_trainer(argv[0], argv[1:], prog=f"python -m synthxray.training {argv[0]}")
