"""Load a script that is not a package module (``benchmarks/*.py``, ``train_scripts/*.py``) by its path, so a test
can call its ``main(argv)`` in-process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """``relative`` to the repository root, e.g. ``"benchmarks/fewstep.py"``. The script's folder goes first on
    ``sys.path``, as ``python path/to/script.py`` puts it, so scripts that import their siblings work."""
    path = ROOT / relative
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
