"""Peak resident memory of a stage of work or of a child command, measured by the kernel, not estimated.

Linux keeps each process's peak resident set size (``VmHWM`` in ``/proc/self/status``) and lets a process
reset it (``clear_refs`` 5, Linux >= 4.0), so a stage's own peak is measured exactly. Where that is not
possible (another OS, a locked-down ``/proc``), the figure is the process's peak so far
(``getrusage``): an upper bound, and ``PeakMemory.method`` says so.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Sequence

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _hwm_mb() -> float | None:
    try:
        with open(_STATUS) as f:
            match = re.search(r"^VmHWM:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def _maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    value = resource.getrusage(who).ru_maxrss
    return value / 2**20 if sys.platform == "darwin" else value / 1024  # bytes on macOS, kB on Linux


def reset_peak() -> bool:
    """Reset this process's peak resident size to its current size; False where the OS does not allow it."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    return _hwm_mb() is not None


def process_peak_mb() -> float:
    """This process's peak resident memory in MB since it started (or since the last :func:`reset_peak`)."""
    hwm = _hwm_mb()
    return hwm if hwm is not None else _maxrss_mb()


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.mb``: the peak resident memory of the block, in MB.

    ``method`` is ``"VmHWM reset"`` where the block's own peak was measured, ``"process peak"`` where the
    figure is the process's peak so far (an upper bound). Blocks do not nest: the inner one resets the
    outer one's peak, and so does any later block: a process's peak is the largest of its blocks' peaks. The reset
    also reaches what a parent reads at exit (``getrusage`` / ``os.wait4``'s ``ru_maxrss``): it then covers only the
    time since the last reset.
    """

    def __init__(self) -> None:
        self.mb = 0.0
        self.method = "process peak"

    def __enter__(self) -> "PeakMemory":
        self.method = "VmHWM reset" if reset_peak() else "process peak"
        return self

    def __exit__(self, *exc: object) -> None:
        self.mb = process_peak_mb()


@dataclass
class CommandUsage:
    """What one child command used: wall seconds, CPU seconds (user + system) and peak resident memory."""

    returncode: int
    seconds: float
    cpu_seconds: float
    peak_mb: float


# Linux gives a child at least its parent's resident size at fork / exec (the old memory map's peak goes into the
# child's ru_maxrss on exec), so a large parent would floor every child's figure. A small intermediate Python
# process starts the command and reads its usage: the floor is then that process's ~10 MB.
_WAIT4 = (
    "import json, os, subprocess, sys, time\n"
    "start = time.perf_counter(); child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, u = os.wait4(child.pid, 0)\n"
    "json.dump({'rc': os.waitstatus_to_exitcode(status), 's': time.perf_counter() - start, "
    "'cpu': u.ru_utime + u.ru_stime, 'maxrss': u.ru_maxrss}, open(sys.argv[1], 'w'))\n"
)


def run_measured(command: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> CommandUsage:
    """Run ``command`` to its end and return its own usage: wall and CPU seconds and its peak resident memory
    (``os.wait4`` on this child alone, started from a small intermediate process so this one's size is no floor)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "usage.json")
        subprocess.run([sys.executable, "-c", _WAIT4, report, *command], env=env, cwd=cwd, check=False)
        with open(report) as f:
            u = json.load(f)
    peak = u["maxrss"] / (2**20 if sys.platform == "darwin" else 1024)
    return CommandUsage(u["rc"], u["s"], u["cpu"], peak)


def format_mb(mb: float) -> str:
    """``1234.5`` -> ``"1.23 GB"``; below 1 GB in MB."""
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def machine_line() -> str:
    """One line for a measurement's record: UTC time, CPU, visible cores, 1/5/15-minute load, torch version."""
    import datetime
    import platform

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    try:
        import torch

        torch_version = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "no torch"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; "
            f"load average {load}; python {platform.python_version()}, {torch_version}")
