"""One strict validator for every config dataclass, and the one way a command reads a config (``--config`` + flags).

:func:`check_fields` checks each field of a dataclass against its type annotation with pydantic in strict mode: no
quiet coercion (the string ``"false"`` is not a boolean, ``"8"`` is not an integer, ``1.7`` is not a seed); an integer
is accepted where a number is expected. A wrong value raises a ``ValueError`` naming the key, the value and what was
expected; the loaders (:func:`load_config_file`, ``experiments.load_spec``) add the file it came from.

A low module: no torch, no synthxray imports (``transformers`` only inside :func:`parse_config`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeVar

C = TypeVar("C")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_STRING_BOOLS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}


@functools.lru_cache(maxsize=None)
def _adapter(annotation: Any):
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def describe(annotation: Any) -> str:
    """A type annotation in words: ``list[int] | None`` -> ``a list of integers or null``."""
    if annotation is Any or annotation is object:
        return "anything"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple, set, Sequence):
        inner = describe(args[0]) if args else "anything"
        return "a list" + ("" if inner == "anything" else f" of {_plural(inner)}")
    if origin in (dict, Mapping):
        return "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(
        annotation, f"a {getattr(annotation, '__name__', annotation)}")


def _plural(words: str) -> str:
    plurals = {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "booleans"}
    return plurals.get(words, words)


def _fallbacks(value: Any) -> list[Any]:
    """Harmless spellings a Python caller may use: a Path for a string, a tuple for a list, a numpy scalar."""
    out: list[Any] = []
    if isinstance(value, os.PathLike):
        out.append(os.fspath(value))
    if isinstance(value, (list, tuple)):
        out.append([_plain(v) for v in value])
    elif _plain(value) is not value:
        out.append(_plain(value))
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds; anything else as it is."""
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float)) and hasattr(value, "item"):
        return value.item()
    return value


def _hint_for(value: Any, annotation: Any) -> str:
    text = describe(annotation)
    if isinstance(value, str):
        low = value.strip().lower()
        if ("true or false" in text or "booleans" in text) and low in _STRING_BOOLS:
            return "; write true or false without quotes"
        if ("number" in text or "integer" in text) and _is_number(low):
            yaml_note = " (YAML reads 1e-4 as text: write 1.0e-4)" if "e" in low else ""
            return "; write the number without quotes" + yaml_note
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_value(annotation: Any, value: Any, key: str) -> Any:
    """``value`` if it is strictly of type ``annotation``, else a ``ValueError`` naming ``key``, the value and the type.

    Returns the value, or its plain spelling where a Python caller passed a Path, a tuple or a numpy scalar."""
    if annotation is Any or annotation is object:
        return value
    from pydantic import ValidationError

    adapter = _adapter(annotation)
    for candidate in [value, *_fallbacks(value)]:
        try:
            adapter.validate_python(candidate, strict=True)
            return candidate
        except ValidationError as exc:
            error = exc
    detail, item = "", value
    for err in error.errors():
        idx = [loc for loc in err.get("loc", ()) if isinstance(loc, int)]
        if idx and isinstance(value, (list, tuple)) and idx[0] < len(value):
            detail, item = f" (item {idx[0]}: {value[idx[0]]!r})", value[idx[0]]
            break
    got = type(value).__name__ if value is not None else "null"
    hint = _hint_for(item, annotation)
    raise ValueError(f"{key}: {value!r} ({got}) is not {describe(annotation)}{detail}{hint}")


def check_fields(obj: Any, where: str = "", skip: Iterable[str] = ()) -> None:
    """Check every field of the dataclass ``obj`` against its annotation; ``where`` prefixes the key (``"synthetic."``).

    A class attribute ``_strict_types`` (``{name: type}``) replaces annotations the CLI parser needs spelled loosely."""
    skip = set(skip)
    for f in dataclasses.fields(obj):
        if f.name in skip or not f.init:
            continue
        annotation = _annotation(type(obj), f.name)
        value = getattr(obj, f.name)
        checked = check_value(annotation, value, where + f.name)
        if checked is not value:
            object.__setattr__(obj, f.name, checked)


def _annotation(cls: type, name: str) -> Any:
    return getattr(cls, "_strict_types", {}).get(name) or _hints(cls).get(name, Any)


def check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Unknown keys are errors (a typo never falls back to a default)."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed keys: {sorted(known)}")


def read_mapping(path: str | os.PathLike, what: str = "config") -> dict[str, Any]:
    """The mapping in a ``.yaml``/``.yml``/``.json`` file; a missing, unreadable or malformed file is a ``ValueError``
    (``FileNotFoundError`` when missing) that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} not found")
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ValueError(f"{path}: {what} files are .yaml, .yml or .json")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError: say where, without a traceback
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"{path}: not valid {kind}{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the {what} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def load_config_file(config_cls: type, path: str | os.PathLike) -> dict[str, Any]:
    """The keys of a config file for ``config_cls``: known keys only, each value strictly of its field's type."""
    data = read_mapping(path)
    check_keys(config_cls, data, str(path))
    for key, value in data.items():
        try:
            data[key] = check_value(_annotation(config_cls, key), value, key)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return data


def split_config_arg(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(FILE, other flags)`` from ``--config FILE`` / ``--config=FILE`` or a leading ``.yaml``/``.json`` argument."""
    argv, path = list(argv), None
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ValueError("--config needs a file (.yaml, .yml or .json)")
            path = argv[i + 1]
            argv = argv[:i] + argv[i + 2:]
            break
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
            argv = argv[:i] + argv[i + 1:]
            break
    if path is None and argv and not argv[0].startswith("-") and argv[0].lower().endswith(CONFIG_SUFFIXES):
        path, argv = argv[0], argv[1:]
    return path, argv


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None, prog: str | None = None) -> C:
    """``config_cls`` from flags: ``--config FILE`` (or the file as the first argument) gives values, flags override.

    Unknown flags or keys are errors; file values are checked strictly by type, and an error names the file."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    names = {f.name for f in dataclasses.fields(config_cls)}
    path, rest = split_config_arg(argv) if "config" not in names else (None, argv)
    parser = HfArgumentParser(config_cls, prog=prog)
    if "config" not in names:
        parser.add_argument("--config", metavar="FILE",
                            help="A .yaml/.json file of these keys; flags given beside it override it.")
    if path is None:
        return parser.parse_args_into_dataclasses(args=rest)[0]
    data = load_config_file(config_cls, path)
    parser.set_defaults(**data)
    for action in parser._actions:
        if action.dest in data:
            action.required = False
    try:
        return parser.parse_args_into_dataclasses(args=rest)[0]
    except ValueError as exc:
        raise ValueError(f"{path}{' + flags' if rest else ''}: {exc}") from None
