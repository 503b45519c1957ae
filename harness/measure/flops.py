"""The FLOP model and the machine's own ceilings (the GEMM peak of each library, and its rate at a case's shapes).

FLOP model: GEMM FLOPs only (elementwise gate work is not counted), G gate blocks
(4 LSTM, 3 GRU, 1 RNN), over the real tokens N (B * T for fixed lengths; padding is
not counted, whether or not an implementation computes it):

    forward = 2 * N * sum over layers l of D * (G * H * (I_l + Q) + P * H)
                       # x W_ih^T and h W_hh^T every step, and the projection m W_hr^T
    train   = 3 * forward                       # backward: one GEMM for the data
                                                #   gradient, one for the weight gradient

with D directions (2 bidirectional), Q = P (proj_size) or H, I_0 = I and I_l = D * Q above.
One layer, one direction: forward = 2 * B * T * G * H * (I + H). A min cell (minGRU G = 2, minLSTM G = 3) has no
recurrent product: forward = 2 * N * sum over l of D * G * H * I_l, its loop's per-step GEMMs and its scan's one
GEMM alike (the scan's log-space work is elementwise, and not counted).

`train` is exact when the input and the initial state require gradients; with a
plain input (as timed) the backward skips dx and the first step's dh0, so the
true count is a little lower. tests/test_measures.py checks both against
torch.utils.flop_counter.FlopCounterMode on the scratch implementations.
"""
from __future__ import annotations

import time

import torch

from harness.implementations import gemm
from harness.implementations.models import GATES, ONE_LAYER, Shape
from harness.implementations.params import NO_RECURRENT

TRAIN_FACTOR = 3


def flops(cell: str, batch: int, seq_len: int, hidden: int, input_size: int, phase: str, shape: Shape = ONE_LAYER,
          tokens: int | None = None) -> int:
    """The model's GEMM FLOPs for one step; `tokens`: the real tokens (default batch * seq_len)."""
    shape = Shape(*shape)
    G, H, P, D = GATES[cell], hidden, shape.proj_size, shape.directions
    Q = P or H
    R = 0 if cell in NO_RECURRENT else Q          # the recurrent product's inner size: none in a min cell
    per_token = sum(D * (G * H * ((input_size if layer == 0 else D * Q) + R) + P * H)
                    for layer in range(shape.layers))
    forward = 2 * (batch * seq_len if tokens is None else tokens) * per_token
    return forward * (TRAIN_FACTOR if phase == "train" else 1)


def gemm_shapes(cell: str, batch: int, seq_len: int, hidden: int, input_size: int, shape: Shape = ONE_LAYER,
                tokens: int | None = None) -> list[tuple[int, int, int, float]]:
    """The forward's GEMMs of one step as (m, k, n, count): per layer and direction, the input projection of every
    real token at once (N x I_l by I_l x G*H, once), the recurrent product (B x Q by Q x G*H, N/B times: T for
    fixed lengths) and the projection (B x H by H x P, as often). Their FLOPs, 2*m*k*n*count summed, are
    flops()'s forward; the backward's GEMMs are these transposed, and are held to the same rates."""
    shape = Shape(*shape)
    G, H, P, D = GATES[cell], hidden, shape.proj_size, shape.directions
    Q, N = P or H, batch * seq_len if tokens is None else tokens
    out = []
    for layer in range(shape.layers):
        width = input_size if layer == 0 else D * Q
        for _ in range(D):
            out += [(N, width, G * H, 1.0)] + ([] if cell in NO_RECURRENT else [(batch, Q, G * H, N / batch)])
            out += [(batch, H, P, N / batch)] if P else []
    return out


def _sync(device: str):
    # synchronise `device` itself: torch.cuda.synchronize() alone waits for the current device,
    # so the peak of cuda:1 would be timed before its matmul finished
    return (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)


def _mm(library: str):
    """The library's mm, looked up when called (torch.mm itself for aten, so that a test can stand in for it)."""
    return torch.mm if library == "aten" else gemm.library(library).mm


def gemm_peak(device: str, dtype: torch.dtype, size: int | None = None, reps: int = 5, library: str = "aten") -> dict:
    """Measured GEMM rate of a large square matmul through one library (gemm.LIBRARIES): the best library's is
    the ceiling every throughput figure is held against. Returns GFLOP/s (best of `reps`, after one warm-up)."""
    if size is None:
        size = 8192 if device.startswith("cuda") else (1024 if dtype == torch.float64 else 2048)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    sync, mm = _sync(device), _mm(library)
    mm(a, b)
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        mm(a, b)
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    work = 2 * size ** 3
    return {"gemm_size": size, "gemm_peak_gflops_per_s": work / times[0] / 1e9,
            "gemm_median_gflops_per_s": work / times[len(times) // 2] / 1e9, "reps": reps, "library": library}


SHAPE_REPS = 5            # timed samples of a shape's rate, after one warm-up call
MIN_SAMPLE_S = 1e-3       # a sample repeats the matmul until it lasts this long: a 10 us GEMM is 100 calls


def gemm_rate(device: str, dtype: torch.dtype, m: int, k: int, n: int, library: str = "aten") -> float:
    """GFLOP/s of one (m, k) by (k, n) matmul through `library`: the best of SHAPE_REPS samples. The (k, n) operand
    is a weight's transposed view, W.t() of a contiguous (n, k) W, as every model passes its weights."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, k, generator=gen).to(device=device, dtype=dtype).t()
    sync, mm = _sync(device), _mm(library)
    t0 = time.perf_counter()
    mm(a, b)
    sync()
    calls = max(1, int(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-9)))
    best = float("inf")
    for _ in range(SHAPE_REPS):
        t0 = time.perf_counter()
        for _ in range(calls):
            mm(a, b)
        sync()
        best = min(best, (time.perf_counter() - t0) / calls)
    return 2 * m * k * n / best / 1e9
