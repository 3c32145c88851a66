"""The package's public surface as tools see it: lazy names = type-checker names, one version, py.typed."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

import synthxray

ROOT = Path(__file__).resolve().parents[1]


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse((ROOT / "synthxray" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    return {a.asname or a.name: f"synthxray.{node.module}" for node in block.body for a in node.names}


def test_type_checking_imports_match_the_lazy_exports():
    assert _type_checking_imports() == synthxray._EXPORTS


def test_every_lazy_export_resolves():
    for name, module in synthxray._EXPORTS.items():
        assert getattr(importlib.import_module(module), name) is not None, f"{module} has no {name}"


def test_version_is_written_once():
    """pyproject.toml reads synthxray.__version__ (the wheel's metadata version is checked by .ci/run)."""
    tomllib = importlib.import_module("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "synthxray.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", synthxray.__version__)


def test_typed_marker_and_card_templates_are_package_data():
    package = ROOT / "synthxray"
    assert (package / "py.typed").is_file()
    assert {p.name for p in (package / "hub" / "templates").glob("*.md")} == {"generator.md", "dataset.md", "classifier.md"}
