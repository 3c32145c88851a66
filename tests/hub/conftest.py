"""Fixtures for the hub tests: a Hub-protocol server on 127.0.0.1 and a client process pointed at it.

The real clients (huggingface_hub, diffusers, datasets, synthxray.hub) run unpatched in a separate
process (``client_worker.py``) whose environment names the test hub: ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1``, ``HF_HUB_OFFLINE=0``, a private ``HF_HOME``, and ``HTTP(S)_PROXY`` pointing
at the test hub too, so that a request to any other host (datasets probes a datasets-server host)
ends at the test hub and is logged as a stray instead of leaving the machine.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import HubServer  # noqa: E402
from hub_testing import TOKENS, HubClient, hub_env  # noqa: E402


@pytest.fixture(scope="session")
def hub():
    """The test hub, shared by the hub tests (each test uses its own repo names)."""
    with HubServer(tokens=TOKENS, page_size=4) as server:
        yield server


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture(scope="session")
def hub_client(hub, hub_home, tmp_path_factory):
    client = HubClient(hub_env(hub.url, hub_home), cwd=tmp_path_factory.mktemp("client_cwd"))
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _hub_test_env(monkeypatch, hub, hub_home):
    """Inside hub tests the Hub is reachable (the test hub): HF_HUB_OFFLINE=0 and the endpoint set.

    The client process got the same values at start; these settings cover code run in the test
    process itself (card rendering, subprocesses started from a test). Faults never leak.
    """
    for key, value in hub_env(hub.url, hub_home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.clear_faults()
    yield
    hub.clear_faults()


@pytest.fixture
def repo_name(request) -> str:
    """A repo name unique to the test (the hub is shared by the session)."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    return f"{name}-{int(time.monotonic_ns()) % 10**9}"[:90]


@pytest.fixture
def ddpm_folder(tiny_ddpm_dir, tmp_path) -> Path:
    """A private copy of the session's tiny trained DDPM (pushing writes README.md into the folder)."""
    target = tmp_path / "tiny-ddpm"
    shutil.copytree(tiny_ddpm_dir, target)
    return target


