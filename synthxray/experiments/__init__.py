"""Augmentation-ratio experiments: does synthetic data help which classifier, and by how much.

``run_experiment(spec)`` trains every (backbone, recipe, seed) of a spec and writes CSV/JSON/markdown
results and plots; ``augment`` builds one mixed dataset; ``load_classifier`` reads a saved classifier.

A spec (``synthxray experiment --config exp.yaml``; unknown keys are errors)::

    real_train: ../shared/data/chest_xray_pneumonia/train   # image folder, .npz, save_to_disk folder, Hub id
    test: ../shared/data/chest_xray_pneumonia/test          # val: optional (else a stratified 10% of real_train)
    synthetic: {generator: runs/ddpm, per_class: 1200}      # or a synthetic dataset: synthetic: runs/synth
    backbones: [densenet121, {name: cnn, learning_rate: 1.0e-3}, {name: dinov2, unfreeze_last_block: false}, vit_b_16]
    recipes: [baseline, balanced-real, synth-25, synth-50, synth-100, limited-10, limited-25, synth-only, pretrain-synth]
    seeds: [0, 1, 2]
    epochs: 20
    image_size: 224
    batch_size: 32
    learning_rate: 1.0e-4
    ratio_of: synthetic        # the default: synth-N = N% of the synthetic pool (seed 004); real: N% of the real count
    compare_to: [baseline, balanced-real]   # paired per-seed deltas with 95% t-intervals (this is the default)
    robustness: true           # accuracy under noise / FGSM / BIM at 8/255
    # regimes: {fractions: [0.01, 0.05, 0.1, 0.25, 1.0], recipes: [real, balanced-real, limited, pretrain-synth]}
    #   the limited-data grid (experiments/regimes.py): every recipe at every real fraction, paired with real-F and
    #   balanced-real-F, plus regimes.md and the worth of the synthetic images in real images
    output_dir: runs/exp

Backbones live one family per module in ``experiments/backbones/`` (``@register_backbone``); the
classifier wrapper and its saved-folder format in ``experiments/classifier.py``.
"""

from .backbones import BACKBONES, create_backbone, list_backbones, register_backbone
from .classifier import Classifier, build_classifier, load_classifier
from .recipes import Recipe, augment, parse_recipe
from .report import compute_metrics
from .runner import ExperimentResults, demo_experiment, run_experiment, write_report
from .spec import ExperimentSpec, load_spec

__all__ = [
    "BACKBONES", "Classifier", "ExperimentResults", "ExperimentSpec", "Recipe", "augment", "build_classifier",
    "compute_metrics", "create_backbone", "register_backbone", "demo_experiment", "list_backbones", "load_classifier", "load_spec", "parse_recipe", "run_experiment", "write_report",
]
