"""Shared test fixtures."""
import functools

import pytest

from harness import flops

SMALL_GEMM = 256     # n of the GEMM peak's matmul in tests that only need a run, not its ceiling (2048 takes ~1.5 s)


@pytest.fixture(scope="module")
def small_gemm():
    """A module's sweeps measure their GEMM peak on a 256^3 matmul: the ceiling is not what they test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flops, "gemm_peak", functools.partial(flops.gemm_peak, size=SMALL_GEMM))
        yield
