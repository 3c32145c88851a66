"""Federated tests need the ``[federated]`` extra (flwr, flwr-datasets)."""

import pytest

pytest.importorskip("flwr")
pytest.importorskip("flwr_datasets")
