"""Generator backends; importing this package registers every built-in backend."""

from .base import GENERATORS, Generator, GeneratorInfo, list_generators, load_generator
from . import ddpm as _ddpm  # noqa: F401  (registers "ddpm")

__all__ = ["GENERATORS", "Generator", "GeneratorInfo", "list_generators", "load_generator"]
