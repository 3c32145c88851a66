"""Training loops: shared pieces in ``common``/``diffusion``, one Config + ``train`` per backend.

Every trainer is reachable from any directory, with the flags of its ``train_scripts/*.py`` copy:
``synthxray train NAME ...`` or ``accelerate launch -m synthxray.training NAME ...``.
"""

from __future__ import annotations

import sys
from typing import Sequence

# One key per backend, the same as the generators' (synthxray.json "backend", load_generator) and the federated
# backends': key -> (module, Config dataclass, defaults that key sets). The module defines ``train(config)``. Strings,
# so that listing the trainers (``synthxray train --help``) imports no torch.
TRAINERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "ddpm": ("synthxray.training.ddpm", "DDPMTrainingConfig", {}),
    "sd-dreambooth": ("synthxray.training.dreambooth", "DreamBoothConfig", {}),
    "sd-lora": ("synthxray.training.lora", "LoRAConfig", {}),
    **{arch: ("synthxray.training.gan", "GANTrainingConfig", {"architecture": arch}) for arch in ("dcgan", "wgan-gp", "cgan", "acgan")},
    "vae": ("synthxray.training.vae", "VAETrainingConfig", {}),
    "consistency": ("synthxray.training.consistency", "ConsistencyDistillationConfig", {}),  # few-step student of a ddpm
}
# the train_scripts/train_NAME.py names, accepted too (gan: --architecture picks the backend, dcgan by default)
SCRIPT_NAMES: dict[str, str] = {"dreambooth": "sd-dreambooth", "lora": "sd-lora", "gan": "dcgan"}


def trainer_key(name: str) -> str | None:
    """The backend key of a trainer name (a backend name or a script name), or None."""
    return name if name in TRAINERS else SCRIPT_NAMES.get(name)


def _with_defaults(config_cls: type, defaults: dict[str, str], script: bool) -> type:
    """``config_cls`` whose fields in ``defaults`` default to those values (flags and config files still override)."""
    import dataclasses

    if not defaults or script:
        return config_cls
    fields = [(k, str, dataclasses.field(default=v, metadata=config_cls.__dataclass_fields__[k].metadata)) for k, v in defaults.items()]
    return dataclasses.make_dataclass(config_cls.__name__, fields, bases=(config_cls,))


def run_trainer(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``run_script`` (the ``main`` of ``train_scripts/*.py``) for the trainer registered as ``name``."""
    import importlib

    from .common import run_script

    key = trainer_key(name)
    if key is None:
        print(f"{prog or 'synthxray train'}: error: unknown trainer {name!r}; choose one of {', '.join(TRAINERS)} "
              f"(or a script name: {', '.join(SCRIPT_NAMES)})", file=sys.stderr)
        return 2
    module_name, config_name, defaults = TRAINERS[key]
    module = importlib.import_module(module_name)
    config_cls = _with_defaults(getattr(module, config_name), defaults, script=name in SCRIPT_NAMES)
    return run_script(config_cls, module.train, argv, prog=prog)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synthxray.training NAME [flags]`` (under ``accelerate launch -m`` for several processes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m synthxray.training {{{','.join(TRAINERS)}}} [flags]   (NAME --help: its flags; "
              f"the script names {', '.join(SCRIPT_NAMES)} work too)")
        return 0 if argv else 2
    return run_trainer(argv[0], argv[1:], prog=f"python -m synthxray.training {argv[0]}")
