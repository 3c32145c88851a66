"""Helpers for the hub tests: the client process, the environment that points it at the test hub."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hub_server import HubServer

HERE = Path(__file__).resolve().parent
TOKENS = {"hf_alice_write": "alice", "hf_bob_write": "bob"}
ALICE = "hf_alice_write"
BOB = "hf_bob_write"
WORKER_START_TIMEOUT = 180.0  # importing torch/diffusers/datasets on a busy 2-core machine
DEFAULT_CALL_TIMEOUT = 120.0


def hub_env(url: str, home: Path) -> dict[str, str]:
    """Environment variables that point every Hub client at the test hub, and nowhere else."""
    env = {
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # datasets would ping an S3 bucket on every load
        "HF_HUB_ETAG_TIMEOUT": "20",
        "HF_HUB_DOWNLOAD_TIMEOUT": "20",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = url
    return env


class HubClient:
    """Runs snippets in the client process; every call is bounded by a timeout."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        full.update(env)
        full["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "client_worker.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=full, cwd=str(cwd), bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._noise: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self._reply(WORKER_START_TIMEOUT)
        if os.environ.get("SYNTHXRAY_HUB_PROFILE"):
            print(f"[hub client] started: {ready.get('cpu_seconds')} s CPU", file=sys.stderr)
        if not ready.get("ok"):
            raise RuntimeError(f"hub client process failed to start: {ready}")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _reply(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close(kill=True)
                raise TimeoutError(f"hub client did not answer within {timeout:.0f} s; output: {''.join(self._noise)[-3000:]}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"hub client exited (code {self.proc.poll()}); output: {''.join(self._noise)[-3000:]}")
            if line.startswith("{"):
                with_json = json.loads(line)
                if isinstance(with_json, dict) and "ok" in with_json:
                    return with_json
            self._noise.append(line)  # stray prints from C libraries and the like

    def call(self, code: str, timeout: float = DEFAULT_CALL_TIMEOUT, **variables: Any) -> dict[str, Any]:
        """Run ``code`` with ``variables`` bound; returns the reply (``ok``, ``result``, ``error``, ``output``)."""
        if self.proc.poll() is not None:
            raise RuntimeError("hub client process is not running")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"code": code, "vars": variables}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    def run(self, code: str, timeout: float = DEFAULT_CALL_TIMEOUT, **variables: Any) -> Any:
        """Like ``call`` but fails the test when the snippet raised; returns ``result``."""
        reply = self.call(code, timeout=timeout, **variables)
        if os.environ.get("SYNTHXRAY_HUB_PROFILE"):
            print(f"[hub client] {reply.get('cpu_seconds')} s CPU", file=sys.stderr)
        if not reply["ok"]:
            pytest.fail(f"client snippet failed: {reply['error']}\n{reply.get('traceback', '')}\n{reply.get('output', '')}")
        return reply["result"]

    def close(self, kill: bool = False) -> None:
        """Stop the client process (it holds no state worth a clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to check that a push left them alone)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in skip}


def unexpected_strays(hub: HubServer) -> list[str]:
    """Requests for other hosts, except datasets' datasets-server probe (answered 404 by design)."""
    return [s for s in hub.strays if "datasets-server." not in s]
