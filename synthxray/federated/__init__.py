"""Federated training on Flower: one generator trained across sites whose images never leave them.

``run_federated(FederatedConfig(...))`` runs Flower's simulation engine; ``client_app:app`` and
``server_app:app`` are the same apps for the deployment engine (``flwr run``, one SuperNode per site).
``backends`` holds what each trainable backend (ddpm, vae, dcgan, wgan-gp, cgan, acgan) does in a federation.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FederatedConfig": "synthxray.federated.config",
    "run_federated": "synthxray.federated.run",
    "MajorityClassPartitioner": "synthxray.federated.partition",
    "partition_dataset": "synthxray.federated.partition",
    "FEDERATED_BACKENDS": "synthxray.federated.backends",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'synthxray.federated' has no attribute {name!r}")
