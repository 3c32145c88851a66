"""Fixtures of the evaluation tests: tiny 'X-ray-like' datasets (``tinydata.xray_like``), one torch thread."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# never write the feature cache into the user's home from tests
if "SYNTHXRAY_CACHE" not in os.environ:
    os.environ["SYNTHXRAY_CACHE"] = tempfile.mkdtemp(prefix="synthxray-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SYNTHXRAY_CACHE"], True)
from tinydata import xray_like


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread in this area's tests: on a shared, oversubscribed 2-core machine two
    spinning OpenMP threads make the CNN and Inception passes 2-6x slower; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def real_ds():
    return xray_like(64, seed=0)


@pytest.fixture(scope="session")
def other_real_ds():
    return xray_like(48, seed=1)


@pytest.fixture(scope="session")
def random_extractor():
    from synthxray.evaluation import get_extractor

    return get_extractor("random", device="cpu")
