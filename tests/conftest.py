"""Shared test fixtures."""
import functools
import os
import subprocess

import pytest

from harness import flops

SMALL_GEMM = 256     # n of the GEMM peak's matmul in tests that only need a run, not its ceiling (2048 takes ~1.5 s)


@pytest.fixture(scope="module")
def small_gemm():
    """A module's sweeps measure their GEMM peak on a 256^3 matmul: the ceiling is not what they test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flops, "gemm_peak", functools.partial(flops.gemm_peak, size=SMALL_GEMM))
        yield


def _slurm_missing() -> str | None:
    """Why the `slurm` tests cannot run here, or None: make test-slurm passes its own reason on."""
    if reason := os.environ.get("LSTM_BENCH_SLURM_SKIP"):
        return reason
    try:
        ok = subprocess.run(["sinfo", "--noheader"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return None if ok else "no Slurm cluster answers sinfo (make test-slurm starts one)"


def pytest_collection_modifyitems(config, items):
    slurm = [item for item in items if item.get_closest_marker("slurm")]
    if slurm and (reason := _slurm_missing()):
        for item in slurm:
            item.add_marker(pytest.mark.skip(reason=reason))
