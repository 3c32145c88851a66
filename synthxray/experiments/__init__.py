"""Augmentation-ratio experiments: does synthetic data help which classifier, and by how much.

``run_experiment(spec)`` trains every (backbone, recipe, seed) of a spec and writes CSV/JSON/markdown
results and plots; ``augment`` builds one mixed dataset; ``load_classifier`` reads a saved classifier.
"""

from .backbones import BACKBONES, Classifier, build_classifier, list_backbones, load_classifier
from .recipes import Recipe, augment, parse_recipe
from .report import compute_metrics
from .runner import ExperimentResults, demo_experiment, run_experiment, write_report
from .spec import ExperimentSpec, load_spec

__all__ = [
    "BACKBONES", "Classifier", "ExperimentResults", "ExperimentSpec", "Recipe", "augment", "build_classifier",
    "compute_metrics", "demo_experiment", "list_backbones", "load_classifier", "load_spec", "parse_recipe", "run_experiment", "write_report",
]
