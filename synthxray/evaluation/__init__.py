"""Evaluate synthetic images: FID / KID / precision / recall per class over seeds, memorization, label fidelity.

>>> from synthxray.evaluation import evaluate
>>> res = evaluate("data/pneumoniamnist.npz", "out/synthetic", metrics=("fid", "kid"), extractor="inception",
...                protocol="torch-fidelity", match_resolution="synthetic", by_class=True)
>>> res.value("fid"), res.value("fid", "PNEUMONIA")
>>> print(res.to_markdown())

The names load on first use (like ``synthxray``'s own): importing one module of this package, e.g.
``synthxray.evaluation.memorization`` from ``synthxray.synthesis``, does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ALL_METRICS": "synthxray.evaluation.config",
    "CleanFidFeatureModel": "synthxray.evaluation.protocols",
    "DEFAULT_PROTOCOL": "synthxray.evaluation.protocols",
    "DISTRIBUTION_METRICS": "synthxray.evaluation.config",
    "EXTRACTORS": "synthxray.evaluation.extractors",
    "EvaluationConfig": "synthxray.evaluation.config",
    "EvaluationResult": "synthxray.evaluation.core",
    "ExtractorUnavailable": "synthxray.evaluation.extractors",
    "Features": "synthxray.evaluation.fid",
    "PROTOCOLS": "synthxray.evaluation.protocols",
    "ResolutionMatch": "synthxray.evaluation.inputs",
    "SimpleCNNClassifier": "synthxray.evaluation.fidelity",
    "SynthXrayExtractor": "synthxray.evaluation.extractors",
    "compute_features": "synthxray.evaluation.fid",
    "embedding_plot": "synthxray.evaluation.embed",
    "evaluate": "synthxray.evaluation.core",
    "fid_from_features": "synthxray.evaluation.fid",
    "get_extractor": "synthxray.evaluation.extractors",
    "get_protocol": "synthxray.evaluation.protocols",
    "inception_available": "synthxray.evaluation.extractors",
    "kid_from_features": "synthxray.evaluation.fid",
    "label_fidelity": "synthxray.evaluation.fidelity",
    "list_extractors": "synthxray.evaluation.extractors",
    "list_protocols": "synthxray.evaluation.protocols",
    "match_class_names": "synthxray.classes",
    "memorization": "synthxray.evaluation.memorization",
    "precision_recall_from_features": "synthxray.evaluation.fid",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # the same names, eagerly, for type checkers (tests/test_package.py keeps both lists equal)
    from ..classes import match_class_names
    from .config import ALL_METRICS, DISTRIBUTION_METRICS, EvaluationConfig
    from .core import EvaluationResult, evaluate
    from .embed import embedding_plot
    from .extractors import (
        EXTRACTORS,
        ExtractorUnavailable,
        SynthXrayExtractor,
        get_extractor,
        inception_available,
        list_extractors,
    )
    from .fid import (
        Features,
        compute_features,
        fid_from_features,
        kid_from_features,
        precision_recall_from_features,
    )
    from .fidelity import SimpleCNNClassifier, label_fidelity
    from .inputs import ResolutionMatch
    from .memorization import memorization
    from .protocols import DEFAULT_PROTOCOL, PROTOCOLS, CleanFidFeatureModel, get_protocol, list_protocols


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthxray.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
