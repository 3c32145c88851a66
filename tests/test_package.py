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


LAZY_PACKAGES = ("synthxray", "synthxray.evaluation")  # packages whose names load on first use (``_EXPORTS``)


def _type_checking_imports(package: str) -> dict[str, str]:
    tree = ast.parse((ROOT / package.replace(".", "/") / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    parts = package.split(".")
    return {a.asname or a.name: ".".join(parts[: len(parts) - node.level + 1] + [node.module]) for node in block.body
            for a in node.names}


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_type_checking_imports_match_the_lazy_exports(package):
    assert _type_checking_imports(package) == importlib.import_module(package)._EXPORTS


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazy_export_resolves(package):
    for name, module in importlib.import_module(package)._EXPORTS.items():
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


def _import_graph() -> dict[str, set[str]]:
    """synthxray module -> the synthxray modules importing it runs.

    Every import statement counts: module-level, deferred (inside a function: it runs when the function does) and
    ``if TYPE_CHECKING:`` (it never runs, but it states a dependency; keeping it one-way keeps the layering honest,
    so any deferred import could move to the top). Importing ``a.b.c`` also runs the packages ``a`` and ``a.b``
    (their ``__init__``), except the importer's own packages, which are already loaded. Not counted: the
    ``TYPE_CHECKING`` block of a lazy package's ``__init__``, the type checkers' copy of its ``_EXPORTS`` (the
    ``__init__`` imports nothing itself; the tests above keep the copy equal to ``_EXPORTS``).
    """
    files = {}
    for f in (ROOT / "synthxray").rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, f in files.items():
        tree = ast.parse(f.read_text())
        mirror = {id(c) for n in tree.body if f.name == "__init__.py" and module in LAZY_PACKAGES and isinstance(n, ast.If)
                  and getattr(n.test, "id", "") == "TYPE_CHECKING" for c in ast.walk(n)}
        package = module.split(".") if f.name == "__init__.py" else module.split(".")[:-1]
        own_packages = {".".join(package[:i]) for i in range(1, len(package) + 1)}
        for node in ast.walk(tree):
            if id(node) in mirror:
                continue
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # the packages on the way, then the module itself
                    name = ".".join(parts[:i])
                    if name in files and name != module and (i == len(parts) or name not in own_packages):
                        graph[module].add(name)
    return graph


def test_import_graph_sees_deferred_imports_and_the_packages_they_load():
    graph = _import_graph()
    assert "synthxray.evaluation" in graph["synthxray.synthesis"]  # ``from .evaluation.memorization import ...`` in a function
    assert "synthxray.generators" in graph["synthxray.federated.backends"]  # deferred ``from ..generators import GENERATORS``
    assert "synthxray.training.config" in graph["synthxray.training.checkpoints"]  # under ``if TYPE_CHECKING:``


def test_no_import_circles():
    graph = _import_graph()
    circles = []
    for start in graph:  # a path back to the start through the graph is a circle
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))


def test_no_test_module_imports_a_conftest_by_name():
    """pytest imports every ``conftest.py`` without an ``__init__.py`` as the module ``conftest`` and keeps
    only the last one loaded, so ``from conftest import ...`` depends on which folders were collected
    first; shared helpers live in uniquely named modules (``tests/tinydata.py``, ``tests/tiny_oneshot.py``)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) else []
            if "conftest" in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "import helpers from a uniquely named module, not from conftest: " + ", ".join(offenders)

