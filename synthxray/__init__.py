"""synthxray: train diffusion generators on medical images, make labelled synthetic datasets, and measure them."""

__version__ = "0.1.0"

from .data import load_dataset
from .generators import Generator, list_generators, load_generator
from .synthesis import generate_dataset

__all__ = [
    "__version__",
    "Generator",
    "generate_dataset",
    "list_generators",
    "load_dataset",
    "load_generator",
]
