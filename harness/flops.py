"""The FLOP model and the machine's own ceiling (the GEMM peak).

FLOP model: GEMM FLOPs only (elementwise gate work is not counted). One layer,
G gate blocks (4 LSTM, 3 GRU, 1 RNN):

    forward = 2 * B * T * G * H * (I + H)      # x W_ih^T and h W_hh^T, every step
    train   = 3 * forward                       # backward: one GEMM for the data
                                                #   gradient, one for the weight gradient

`train` is exact when the input and the initial state require gradients; with a
plain input (as timed) the backward skips dx and the first step's dh0, so the
true count is a little lower. tests/test_measures.py checks both against
torch.utils.flop_counter.FlopCounterMode on the scratch implementations.
"""
from __future__ import annotations

import time

import torch

from harness.models import GATES

TRAIN_FACTOR = 3


def flops(cell: str, batch: int, seq_len: int, hidden: int, input_size: int, phase: str) -> int:
    forward = 2 * batch * seq_len * GATES[cell] * hidden * (input_size + hidden)
    return forward * (TRAIN_FACTOR if phase == "train" else 1)


def gemm_peak(device: str, dtype: torch.dtype, size: int | None = None, reps: int = 5) -> dict:
    """Measured GEMM rate of a large square matmul: the ceiling every throughput
    figure is held against. Returns GFLOP/s (best of `reps`, after one warm-up)."""
    if size is None:
        size = 8192 if device.startswith("cuda") else (1024 if dtype == torch.float64 else 2048)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    # synchronise `device` itself: torch.cuda.synchronize() alone waits for the current device,
    # so the peak of cuda:1 would be timed before its matmul finished
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    work = 2 * size ** 3
    return {"gemm_size": size, "gemm_peak_gflops_per_s": work / times[0] / 1e9,
            "gemm_median_gflops_per_s": work / times[len(times) // 2] / 1e9, "reps": reps}
