"""The one rule for output folders of train / distill / prepare / generate / experiment / evaluate.

A folder synthxray did not write, or a finished artefact of another kind, is refused before any work,
with an error naming the path, what is there and what to do. With the command's overwrite flag a folder of
other files takes synthxray's files beside them (none of them is deleted); an artefact of another kind is
refused even then. Each kind is recognised by a marker file synthxray writes (:data:`MARKERS`).

A leaf module: no torch, nothing from synthxray but :mod:`synthxray.manifest`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .manifest import DATASET_MANIFEST, EVALUATION_FILE, EXPERIMENT_MARKER, GENERATOR_CONFIG, TRAINING_CONFIG

GENERATOR, TRAINING_RUN, DATASET, EXPERIMENT, EVALUATION = (
    "generator", "training run", "dataset", "experiment", "evaluation")
MARKERS = {  # checked in this order: a generator folder written by a trainer also holds training_config.json
    GENERATOR: GENERATOR_CONFIG, TRAINING_RUN: TRAINING_CONFIG, DATASET: DATASET_MANIFEST,
    EXPERIMENT: EXPERIMENT_MARKER, EVALUATION: EVALUATION_FILE,
}
KIND_TEXT = {
    GENERATOR: "a synthxray generator", TRAINING_RUN: "an unfinished synthxray training run",
    DATASET: "a synthxray dataset", EXPERIMENT: "a synthxray experiment", EVALUATION: "a synthxray evaluation",
}
SAME_KIND = {GENERATOR: (GENERATOR, TRAINING_RUN), TRAINING_RUN: (GENERATOR, TRAINING_RUN), DATASET: (DATASET,),
             EXPERIMENT: (EXPERIMENT,),
             # an evaluation may be written into the generator folder it scores: its card reads evaluation.json there
             EVALUATION: (EVALUATION, GENERATOR)}


class OutputDirError(FileExistsError):
    """An output folder the rule refuses (a ``FileExistsError``, so callers' existing handlers catch it)."""


def artefact_kind(folder: str | os.PathLike) -> str | None:
    """What ``folder`` holds: a kind of :data:`MARKERS`, ``""`` when missing or empty, ``None`` for other files.

    An experiment written before its marker existed is recognised by ``spec.json`` beside ``runs/``.
    """
    path = Path(folder)
    if not path.is_dir() or not any(path.iterdir()):
        return ""
    for kind, marker in MARKERS.items():
        if (path / marker).is_file():
            return kind
    if (path / "spec.json").is_file() and (path / "runs").is_dir():
        return EXPERIMENT
    return None


def _listing(path: Path, limit: int = 4) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_output_dir(output_dir: str | os.PathLike, kind: str, overwrite: bool = False,
                     flag: str | None = "--overwrite_output_dir", *, replace_needs_flag: bool = False,
                     beside_foreign: bool = True, option: str = "--output_dir") -> Path:
    """The folder a ``kind`` artefact may be written to (writing nothing), or an :class:`OutputDirError`.

    Refused: a path that is (or lies inside) a file, a symlink to nowhere, an artefact of another kind (always),
    and a folder of files synthxray did not write, unless ``overwrite`` and ``beside_foreign`` (the command then
    writes its files beside them and deletes none). ``flag`` names the command's overwrite flag (``None``: it has
    none). A finished artefact of the same kind needs ``overwrite`` when ``replace_needs_flag``; otherwise the
    caller decides (resume, rerun). Returns the path, ``~`` expanded.
    """
    if kind not in MARKERS:
        raise ValueError(f"unknown artefact kind {kind!r}; one of {list(MARKERS)}")
    out = Path(output_dir).expanduser()
    for p in (out, *out.parents):
        if p.is_symlink() and not p.exists():
            where = "" if p == out else f" (its parent {p})"
            raise FileNotFoundError(f"{option} {output_dir}{where} is a symlink to {os.readlink(p)}, which does "
                                    "not exist; create the target folder or choose another folder")
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == out else f"is inside {p}, which is a file"
                raise OutputDirError(f"{option} {output_dir} {where}; choose a folder path")
            break
    found = artefact_kind(out)
    if found == "":
        return out
    if found is None:
        if overwrite and beside_foreign:
            return out
        if flag and beside_foreign:
            how = (f"choose a new or empty folder, or pass {flag} to write synthxray's files beside them "
                   "(none of them is deleted)")
        elif flag:
            how = (f"{flag} only replaces {KIND_TEXT[kind]}, so choose another folder "
                   "(or move those files away yourself)")
        else:  # a command with no overwrite flag writes only into a new or empty folder
            raise OutputDirError(f"{option} {out} already exists and is not empty ({_listing(out)}); "
                                 "choose a new or empty folder")
        raise OutputDirError(f"{option} {out} already exists and holds files synthxray did not write (no "
                             f"{MARKERS[kind]}: {_listing(out)}); {how}")
    if found not in SAME_KIND[kind]:
        never = f" ({flag} never replaces another kind of artefact)" if flag else ""
        raise OutputDirError(f"{option} {out} already exists and holds {KIND_TEXT[found]} ({MARKERS[found]}), not "
                             f"{KIND_TEXT[kind]}; choose another folder{never}, or move it away yourself")
    if replace_needs_flag and not overwrite:
        how = f"pass {flag} to replace it" if flag else "this command never replaces one"
        raise OutputDirError(f"{option} {out} already exists ({KIND_TEXT[found]}); choose a new folder or {how}")
    return out


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (symbolic links resolved)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return p == f or f in p.parents
