"""Names and schema of the files synthxray writes beside models and datasets.

A leaf module (it imports nothing from synthxray): synthesis writes these files, the hub cards read
them, and neither imports the other for it.
"""

from __future__ import annotations

GENERATOR_CONFIG = "synthxray.json"  # beside the diffusers files of every generator folder
DATASET_MANIFEST = "synthxray_dataset.json"  # beside a generated dataset's save_to_disk files
TRAINING_CONFIG = "training_config.json"  # a training run's flags, written when the run starts
EVALUATION_FILE = "evaluation.json"  # synthxray evaluate's report
EXPERIMENT_MARKER = "synthxray_experiment.json"  # an experiment folder: the files its report wrote
SEED_STRIDE = 1_000_000  # image i of class c uses seed + c * SEED_STRIDE + i (the manifest records it)
PROVENANCE_COLUMNS = (  # per-sample columns of a generated dataset (the manifest records them)
    "class_name", "generator", "generator_path", "generator_revision", "seed",
    "scheduler", "num_inference_steps", "guidance_scale",
)
