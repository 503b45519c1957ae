"""The GEMM libraries a model's own matrix products can go through: the `gemm` axis.

    lib = library("onednn")                  # a Gemm: mm, addmm (with autograd), addmm_, mm_out, left_batched
    y = lib.mm(a, b)                         # a @ b
    missing("onednn", "cpu", "float32")      # why it cannot run here, or None (oneDNN is probed once)

LIBRARIES, by name:

    aten     torch.mm and torch.addmm: the BLAS the build links on a CPU (MKL, OpenBLAS: `blas()` says which),
             cuBLAS on CUDA. What every model calls by default, and what nn.LSTM's native kernels call.
    onednn   oneDNN's matmul, on a CPU, in float32 or bfloat16: the library of PyTorch's oneDNN LSTM.

PyTorch has no public call that sends a plain matmul to oneDNN (torch.mm goes to MKL for float32,
whatever torch.backends.mkldnn says), so `torch.ops.mkldnn._linear_pointwise` (x w^T + b, the op
behind oneDNN's fused linear layers) is the one way here, and this module is the only place that calls
it. A torch upgrade could drop or change it: it is probed once, against torch.mm on a small matmul, and
where it is missing or disagrees every onednn case is a skipped row with that reason, never a wrong or
silently slower timing. The op has no autograd formula; `_OneDNNMatmul` is its own, every product of
its backward through oneDNN too. A transposed view goes in as it is: oneDNN reads the strides, so the
models' `W.t()` operands cost no copy; any other strided operand is copied first (`_dense`).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

LIBRARIES = ("aten", "onednn")
DEFAULT = "aten"
ONEDNN_DTYPES = (torch.float32, torch.bfloat16)   # what the op takes (float64: "expects float/bfloat16/half")
PROBE_SIZE = 64            # n of the probe's n x n x n matmul
PROBE_TOLERANCE = 1e-4     # relative to the largest |entry|: float32 sums of 64 products agree to about 1e-6


def _dense(t: Tensor) -> Tensor:
    """t as it is where it is row-major or its transpose is (oneDNN reads either), else a contiguous copy: a
    strided slab such as bptt-lstm's da[:, t] sends oneDNN to a kernel about 30x slower than the copy costs."""
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def _linear(x: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """x w^T (+ bias) through oneDNN: x (n, k), w (m, k), bias (m,) -> (n, m)."""
    return torch.ops.mkldnn._linear_pointwise(_dense(x), _dense(w), bias, "none", [], "")


class _OneDNNMatmul(torch.autograd.Function):
    """bias + a @ b through oneDNN, forwards and backwards: a (n, k), b (k, m), bias (m,) or None."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.has_bias = bias is not None
        return _linear(a, b.t(), bias)

    @staticmethod
    def backward(ctx, g: Tensor):
        a, b = ctx.saved_tensors
        need = ctx.needs_input_grad
        ga = _linear(g, b) if need[0] else None                      # g b^T: (n, k)
        gb = _linear(a.t(), g.t()) if need[1] else None              # a^T g: (k, m)
        gbias = g.sum(0) if ctx.has_bias and need[2] else None
        return ga, gb, gbias


@dataclass(frozen=True)
class Gemm:
    """One library's matrix products. mm and addmm record autograd; addmm_, mm_out and left_batched are for code
    with its own backward (bptt-lstm), which runs them with autograd off."""

    name: str
    mm: Callable[[Tensor, Tensor], Tensor]                 # a @ b
    addmm: Callable[[Tensor, Tensor, Tensor], Tensor]      # c + a @ b, c (m,) or (n, m)
    addmm_: Callable[[Tensor, Tensor, Tensor], Tensor]     # c += a @ b, in place
    mm_out: Callable[[Tensor, Tensor, Tensor], Tensor]     # out = a @ b (mm_out(a, b, out))
    left_batched: Callable[[Tensor, Tensor], Tensor]       # w (M, K) @ x[t]^T for x (T, N, K): (T, M, N)


def _onednn_mm(a: Tensor, b: Tensor) -> Tensor:
    return _OneDNNMatmul.apply(a, b, None)


def _onednn_addmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if c.dim() == 1:
        return _OneDNNMatmul.apply(a, b, c)                  # oneDNN adds a bias vector itself
    return _OneDNNMatmul.apply(a, b, None) + c              # a full matrix (fused-lstm's x W_ih^T): one add


def _onednn_left_batched(w: Tensor, x: Tensor) -> Tensor:
    T, N, K = x.shape
    return _linear(x.reshape(T * N, K), w).view(T, N, -1).transpose(1, 2).contiguous()    # (T, M, N)


ATEN = Gemm("aten", torch.mm, torch.addmm, lambda c, a, b: c.addmm_(a, b),
            lambda a, b, out: torch.mm(a, b, out=out), lambda w, x: torch.matmul(w, x.transpose(1, 2)))
ONEDNN = Gemm("onednn", _onednn_mm, _onednn_addmm, lambda c, a, b: c.add_(_linear(a, b.t())),
              lambda a, b, out: out.copy_(_linear(a, b.t())), _onednn_left_batched)
_BY_NAME = {g.name: g for g in (ATEN, ONEDNN)}


def cast(lib: Gemm, dtype: torch.dtype) -> Gemm:
    """`lib` with every product's operands cast to `dtype` first, as torch.autocast casts a GEMM's, and the result
    back to the dtype of the tensor it lands in (or of the first operand): for code with its own backward
    (bptt-lstm), whose autograd.Function autocast does not see into. Its buffers, gates and state stay in their
    own dtype, as autocast keeps the elementwise work of a float32 model in float32."""
    def lo(t: Tensor) -> Tensor:
        return t.to(dtype)

    return Gemm(f"{lib.name}@{str(dtype).removeprefix('torch.')}",
                lambda a, b: lib.mm(lo(a), lo(b)).to(a.dtype),
                lambda c, a, b: c + lib.mm(lo(a), lo(b)),
                lambda c, a, b: c.add_(lib.mm(lo(a), lo(b))),
                lambda a, b, out: out.copy_(lib.mm(lo(a), lo(b))),
                lambda w, x: lib.left_batched(lo(w), lo(x)).to(x.dtype))


def library(name: str) -> Gemm:
    """The library called `name`; ValueError naming the allowed ones otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown gemm {name!r}; allowed: {', '.join(LIBRARIES)}")
    return _BY_NAME[name]


@functools.cache
def _onednn_probe() -> str | None:
    """Why oneDNN's matmul cannot be used in this build, or None: a small float32 matmul against torch.mm."""
    if not torch.backends.mkldnn.is_available():
        return "this PyTorch build has no oneDNN"
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return "this PyTorch build has no torch.ops.mkldnn._linear_pointwise (oneDNN's matmul)"
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen) for _ in range(2))
    try:
        got = _linear(a, b.t())
    except RuntimeError as exc:
        return f"oneDNN's matmul fails in this build: {(str(exc).strip().splitlines() or [''])[0]}"
    want = torch.mm(a.double(), b.double())
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    if not err <= PROBE_TOLERANCE:
        return f"oneDNN's matmul disagrees with torch.mm in this build (relative error {err:.1e})"
    return None


def missing(name: str, device: str, dtype: torch.dtype) -> str | None:
    """Why library `name` cannot run a model's GEMMs on `device` in `dtype`, or None if it can."""
    library(name)
    if name != "onednn":
        return None
    if not device.startswith("cpu"):
        return f"gemm onednn is oneDNN's CPU matmul, not for {device} (cuBLAS is aten there)"
    if dtype not in ONEDNN_DTYPES:
        return f"gemm onednn takes float32 or bfloat16, not {str(dtype).removeprefix('torch.')}"
    return _onednn_probe()


def blas() -> str:
    """The BLAS that aten's torch.mm calls on a CPU in this build (torch.__config__'s BLAS_INFO): mkl, openblas, ..."""
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"
