"""The installed libraries fit together: catches upstream drift (a new release that needs a newer peer).

The PEFT minimums are read from transformers and diffusers themselves (they raise at run time when
peft is older), so a future release that raises them fails here, not in a user's training run.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_requirements(extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    """synthxray's own requirements plus ``extras`` (self-references like ``synthxray[federated]`` expanded)."""
    project = _pyproject()["project"]
    optional = project.get("optional-dependencies", {})
    reqs, todo, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional.get(extra, []):
            req = Requirement(text)
            if req.name == project["name"]:
                todo.extend(req.extras)
            else:
                reqs.append(req)
    return reqs


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(reqs: list[Requirement]) -> tuple[dict[str, str], list[str]]:
    """Walk installed metadata from ``reqs``: ({name: installed version}, [problems])."""
    versions: dict[str, str] = {}
    problems: list[str] = []
    todo = [(r, "synthxray", ("",)) for r in reqs]
    walked: set[tuple[str, frozenset]] = set()
    while todo:
        req, wanted_by, parent_extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in parent_extras):
            continue
        name = _canon(req.name)
        try:
            installed = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{req.name} (needed by {wanted_by}: {req}) is not installed")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{req.name} {installed} does not satisfy {wanted_by}'s {req}")
        versions[name] = installed
        key = (name, frozenset(req.extras))
        if key in walked:
            continue
        walked.add(key)
        for text in md.requires(req.name) or []:
            todo.append((Requirement(text), f"{req.name} {installed}", ("", *sorted(req.extras))))
    return versions, problems


def test_installed_versions_satisfy_every_requirement():
    """synthxray[dev]'s ranges and those of everything they pull in hold in this environment (a scoped `pip check`)."""
    _, problems = requirement_closure(project_requirements())
    assert not problems, "the environment does not match the declared requirements:\n" + "\n".join(problems)


def test_peft_is_new_enough_for_transformers_and_diffusers():
    """transformers and diffusers refuse peft older than their MIN_PEFT_VERSION (text-encoder LoRA, adapters)."""
    import diffusers.utils.constants as diffusers_constants
    from transformers.integrations import peft as transformers_peft

    installed = Version(md.version("peft"))
    needs = {
        f"transformers {md.version('transformers')}": transformers_peft.MIN_PEFT_VERSION,
        f"diffusers {md.version('diffusers')}": diffusers_constants.MIN_PEFT_VERSION,
    }
    too_old = {who: need for who, need in needs.items() if installed < Version(need)}
    assert not too_old, (
        f"peft {installed} is older than {too_old}; install a matching pair "
        "(pip install -e '.[dev]' -c constraints.txt gives the one CI last passed with)"
    )
    assert diffusers_constants.USE_PEFT_BACKEND, "diffusers does not use the PEFT backend with these versions"


def test_constraints_file_fits_the_declared_ranges():
    """constraints.txt (the last known-good set) pins versions inside pyproject's ranges and covers them all."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[_canon(name)] = version
    for req in project_requirements():
        name = _canon(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name}; regenerate it with python .ci/constraints.py"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt pins {req.name}=={pins[name]}, outside {req}"
