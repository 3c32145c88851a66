"""synthxray: train diffusion generators on medical images, make labelled synthetic datasets, and measure them.

Everything a user needs is importable from here; heavy sub-packages load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it (dynamic version)

# public name -> module that defines it (loaded lazily, so `import synthxray` stays fast)
_EXPORTS = {
    "load_dataset": "synthxray.data",
    "Generator": "synthxray.generators",
    "load_generator": "synthxray.generators",
    "list_generators": "synthxray.generators",
    "generate_dataset": "synthxray.synthesis",
    "evaluate": "synthxray.evaluation",
    "list_extractors": "synthxray.evaluation",
    "memorization": "synthxray.evaluation",
    "label_fidelity": "synthxray.evaluation",
    "augment": "synthxray.experiments",
    "run_experiment": "synthxray.experiments",
    "list_backbones": "synthxray.experiments",
    "load_classifier": "synthxray.experiments",
    "push_generator": "synthxray.hub",
    "push_dataset": "synthxray.hub",
    "push_classifier": "synthxray.hub",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (tests/test_package.py keeps both lists equal)
    from .data import load_dataset
    from .evaluation import evaluate, label_fidelity, list_extractors, memorization
    from .experiments import augment, list_backbones, load_classifier, run_experiment
    from .generators import Generator, list_generators, load_generator
    from .hub import push_classifier, push_dataset, push_generator
    from .synthesis import generate_dataset


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthxray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
