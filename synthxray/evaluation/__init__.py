"""Evaluate synthetic images: FID / KID / precision / recall per class over seeds, memorization, label fidelity.

>>> from synthxray.evaluation import evaluate
>>> res = evaluate("data/pneumoniamnist.npz", "out/synthetic", metrics=("fid", "kid"), extractor="inception",
...                protocol="torch-fidelity", match_resolution="synthetic", per_class=True)
>>> res.value("fid"), res.value("fid", "PNEUMONIA")
>>> print(res.to_markdown())
"""

from ..classes import match_class_names
from .core import ALL_METRICS, DISTRIBUTION_METRICS, EvaluationResult, evaluate
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

__all__ = [
    "ALL_METRICS",
    "CleanFidFeatureModel",
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "ResolutionMatch",
    "DISTRIBUTION_METRICS",
    "EXTRACTORS",
    "EvaluationResult",
    "ExtractorUnavailable",
    "Features",
    "SimpleCNNClassifier",
    "SynthXrayExtractor",
    "compute_features",
    "embedding_plot",
    "evaluate",
    "fid_from_features",
    "get_extractor",
    "get_protocol",
    "inception_available",
    "kid_from_features",
    "label_fidelity",
    "list_extractors",
    "list_protocols",
    "match_class_names",
    "memorization",
    "precision_recall_from_features",
]
