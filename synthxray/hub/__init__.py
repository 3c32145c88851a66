"""Publish generators, synthetic datasets and classifiers on a Hugging Face Hub, with model cards.

All transfer goes through huggingface_hub (``create_repo``, ``create_branch``, ``create_commit``) and
datasets (``Dataset.push_to_hub``); the endpoint is ``HF_ENDPOINT`` like every huggingface_hub client,
so a private hub works by setting that variable. Pulling back needs nothing here:
``load_generator("user/repo", revision=...)`` and ``synthxray.load_dataset("user/dataset")`` download
with the same clients.

Laid out as huggingface_hub keeps ``repocard.py`` / ``repocard_data.py`` / templates apart:

- ``push.py``: uploads and the translation of client errors into ``HubPushError``. A push renders the
  card in memory and uploads it with the files; local files change only after the upload succeeded.
- ``cards.py``: rendering ``templates/{generator,dataset,classifier}.md`` (Jinja, through ``ModelCard`` /
  ``DatasetCard``; ``$SYNTHXRAY_MODEL_CARDS`` names a folder of your own templates instead).
- ``metadata.py``: reading what a folder knows about itself (tolerant of missing or malformed files).

``write_generator_card`` / ``write_dataset_card`` / ``write_classifier_card`` never touch the network:
training, generation and experiments call them at the end.
"""

from __future__ import annotations

from .cards import (
    CARD_FILE,
    CARD_MARKER,
    INTENDED_USE,
    KINDS,
    card_text,
    render_classifier_card,
    render_dataset_card,
    render_generator_card,
    template_dir,
    write_classifier_card,
    write_dataset_card,
    write_generator_card,
)
from .metadata import DATASET_MANIFEST, DEFAULT_IGNORE, GENERATOR_CONFIG
from .push import HubPushError, PushResult, push, push_classifier, push_dataset, push_generator, push_to_hub_if_requested

__all__ = [
    "CARD_FILE",
    "CARD_MARKER",
    "DATASET_MANIFEST",
    "DEFAULT_IGNORE",
    "GENERATOR_CONFIG",
    "INTENDED_USE",
    "KINDS",
    "HubPushError",
    "PushResult",
    "card_text",
    "push",
    "push_classifier",
    "push_dataset",
    "push_generator",
    "push_to_hub_if_requested",
    "render_classifier_card",
    "render_dataset_card",
    "render_generator_card",
    "template_dir",
    "write_classifier_card",
    "write_dataset_card",
    "write_generator_card",
]
