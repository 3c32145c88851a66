"""One small registry class shared by generator backends, feature extractors and backbones."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a class (and optionally its config class).

    >>> GENERATORS = Registry("generator")
    >>> @GENERATORS.register("ddpm")
    ... class DDPMGenerator: ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[T, Any]] = {}

    def register(self, name: str, obj: T | None = None, config_cls: Any = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._entries and self._entries[name][0] is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = (o, config_cls)
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise a KeyError listing the known names."""
        try:
            return self._entries[name][0]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names()) or '(none)'}"
            ) from None

    def config_class(self, name: str) -> Any:
        self.get(name)
        return self._entries[name][1]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
