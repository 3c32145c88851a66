"""Generator backends; importing this package registers every built-in backend."""

from .base import GENERATORS, Generator, GeneratorInfo, list_generators, load_generator
from . import ddpm as _ddpm  # noqa: F401  (registers "ddpm")
from . import stable_diffusion as _stable_diffusion  # noqa: F401  (registers "sd-dreambooth", "sd-lora")
from . import gan as _gan  # noqa: F401  (registers "dcgan", "wgan-gp", "cgan", "acgan")
from . import vae as _vae  # noqa: F401  (registers "vae")
from . import consistency as _consistency  # noqa: F401  (registers "consistency")
from . import diffusers_hub as _diffusers_hub  # noqa: F401  (registers "diffusers": pipelines others trained)

__all__ = ["GENERATORS", "Generator", "GeneratorInfo", "list_generators", "load_generator"]
