"""Peak memory is measured by the kernel, per block and per child command (issue 35)."""

import sys

import numpy as np
import pytest

from synthxray.resources import PeakMemory, format_mb, machine_line, process_peak_mb, reset_peak, run_measured


def _touch(mb: int) -> np.ndarray:
    block = np.ones(mb * 2**20, dtype=np.uint8)  # ones, not zeros: every page is written, so it is resident
    return block


def test_block_peak_sees_an_allocation_and_the_next_block_starts_fresh():
    with PeakMemory() as big:
        block = _touch(300)
        del block
    with PeakMemory() as small:
        pass
    if big.method != "VmHWM reset":
        pytest.skip("this OS does not let a process reset its peak resident size")
    assert big.mb - small.mb > 250  # the 300 MB block counted in the first block's peak, not in the second's
    assert process_peak_mb() < big.mb


def test_reset_is_reported_truthfully():
    assert isinstance(reset_peak(), bool)


def test_run_measured_reports_the_child_alone():
    code = "import numpy as np; a = np.ones(400 * 2**20, dtype=np.uint8); raise SystemExit(3)"
    first = run_measured([sys.executable, "-c", code])
    assert first.returncode == 3 and first.peak_mb > 400 and first.seconds > 0 and first.cpu_seconds > 0
    ballast = _touch(400)  # a large parent is no floor for its child's figure (fork / exec carry the parent's peak)
    second = run_measured([sys.executable, "-c", "pass"])  # nor the earlier child's peak (RUSAGE_CHILDREN would be)
    del ballast
    assert second.returncode == 0 and second.peak_mb < 200


def test_format_and_machine_line():
    assert format_mb(512) == "512 MB" and format_mb(2048) == "2.00 GB"
    assert "load average" in machine_line() and "CPUs visible" in machine_line()
