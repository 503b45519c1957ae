"""The error pass: how far a timed row's result is from float64, at the row's own sizes.

    cols = check(step, case)          # numerics, out_err, grad_err, err_tol, err_ref, err_reason

After a row's timed rounds, one untimed pass of its step (the same model, weights, inputs, autocast
and backend context, the full batch: a kernel's path can depend on B) is held against a float64
reference on the CPU: the same architecture run by nn.LSTM / nn.RNN / nn.GRU (a min cell: its loop; REFERENCE),
loaded with the row's own parameters cast to float64, with its layers, directions, projection and lengths (padded
mode runs over the padding, as the row does). A stand-in (the dummy) is its own reference.

    out_err   max |y - y64| / max |y64|, over the output and each final state, the worst of them
    grad_err  the same over every parameter's gradient (train), the worst of them

The forward reference runs on the batch's first REF_BATCH sequences and is compared with the row's
matching slice. Weight gradients need the whole batch: a train reference runs the full batch
(and its outputs are then compared whole) unless its estimate -- the train FLOPs over this CPU's
float64 GEMM peak -- is above max_ref_s, when grad_err is blank and err_reason says why.

`numerics` is "off" where an error is above the tolerance of what the step computed in (TOLERANCES,
by compute_dtype; TF32 for float32 under tf32), "ok" where every error measured is within it, and
"unchecked" where nothing could be compared (dropout acting in training, accuracy = false, or a pass
that failed), with err_reason. compute_dtype names the GEMMs' dtype; out_err measures the result.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

from harness.config.cases import ThroughputCase
from harness.core.errors import failure
from harness.core.thresholds import TOLERANCES
from harness.core.units import compact
from harness.implementations import registry
from harness.measure import flops
from harness.measure.timing import Step

REF_BATCH = 8            # sequences the forward reference runs (the batch's first), at most
MAX_REF_S = 30.0         # seconds a float64 train reference may be expected to take (the case's max_ref_s)
PEAK_SIZE = 512          # n of the n x n x n float64 matmul whose rate estimates a reference's time
REFERENCE = {"lstm": "torch-lstm", "rnn": "torch-rnn", "gru": "torch-gru",   # by cell: float64 nn.* on the CPU;
             "mingru": "mingru-loop", "minlstm": "minlstm-loop"}      # a min cell's, its loop (tests/test_minrnn.py
# holds it to the paper's equations in float64, to 1e-9)
STATUSES = ("ok", "off", "unchecked")   # the numerics column
NOT_ASKED = "accuracy = false"


def tolerance_key(compute_dtype: str, tf32: bool | None) -> str:
    """What the step's arithmetic is held to: its compute dtype, or tf32 for float32 GEMMs under TF32."""
    return "tf32" if compute_dtype == "float32" and tf32 else compute_dtype


def reference_impl(impl: str) -> str:
    """The implementation that runs the float64 reference of `impl`: its cell's nn.* module, or itself for a
    stand-in, which computes no recurrence."""
    spec = registry.get(impl)
    return impl if spec.stand_in else REFERENCE[spec.cell]


def relative_error(got: Tensor, want: Tensor) -> float:
    """max |got - want| / max |want| (the absolute error where want is all zeros); inf for a non-finite got."""
    diff = (got.detach().to("cpu", torch.float64) - want.detach()).abs().max().item()
    scale = want.detach().abs().max().item()
    return diff / scale if scale > 0 else diff


@functools.cache
def float64_peak() -> float:
    """This CPU's float64 GEMM rate, GFLOP/s (measured once a process, at the threads then set)."""
    return flops.gemm_peak("cpu", torch.float64, size=PEAK_SIZE, reps=3)["gemm_peak_gflops_per_s"]


def unchecked(reason: str) -> dict:
    return {"numerics": "unchecked", "out_err": None, "grad_err": None, "err_tol": None, "err_ref": None,
            "err_reason": reason}


def _forward(model, x: Tensor, lengths: Tensor | None, real: Tensor | None, train: bool, cast, backward: bool = True):
    """y and the final state of one pass, and, in train with `backward`, every parameter's gradient of the step's
    loss. A train pass runs with autograd on even without its backward, as the timed step does: a compiled model
    would compile again for another grad mode."""
    model.zero_grad(set_to_none=True)
    with (contextlib.nullcontext() if train else torch.no_grad()), cast():
        y, state = model(x, lengths=lengths)
        loss = (y.sum() if real is None else (y * real).sum()) if train else None
    grads = {}
    if train and backward:
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in model.canonical().items() if p.grad is not None}
        model.zero_grad(set_to_none=True)
    return y.detach().clone(), tuple(s.detach().clone() for s in state), grads


def check(step: Step, case: ThroughputCase, max_ref_s: float | None = None, ref_batch: int = REF_BATCH) -> dict:
    """The error columns of one timed row (module docstring)."""
    if not case.accuracy:
        return unchecked(NOT_ASKED)
    train = case.phase == "train"
    if train and case.dropout:
        return unchecked("dropout acts in training, so no two steps compute alike: run it with dropout 0 for "
                         "the check")
    max_ref_s = case.max_ref_s if max_ref_s is None else max_ref_s
    tol_key = tolerance_key(step.compute_dtype, case.tf32)
    tol = TOLERANCES.get(tol_key)
    ref_name = reference_impl(case.impl)
    try:
        model = step.model
        params = {k: v.detach().to("cpu", torch.float64) for k, v in model.canonical().items()}
        ref_mode = (case.lengths_mode if ref_name == case.impl else
                    None if "packed" in registry.get(ref_name).lengths_modes else "masked")   # a min cell's loop
        ref = registry.create(ref_name, case.input, case.hidden, device="cpu", dtype="float64", shape=case.shape,
                              lengths_mode=ref_mode)
        ref.load_canonical(params).train(False)     # no dropout: the row's is 0, or off (the forward phase)
        grad_reason = ""
        whole = train
        if train:
            need = flops.flops(case.cell, case.batch, case.seq_len, case.hidden, case.input, "train", case.shape,
                               tokens=step.tokens) / (float64_peak() * 1e9)
            if need > max_ref_s:
                whole, grad_reason = False, (f"grad_err blank: a float64 train reference would take about "
                                             f"{compact(need)} s here, above max_ref_s {compact(max_ref_s)} s")
        y, state, grads = _forward(model, step.x, step.lengths, step.real, train, step.cast, backward=whole)
        b = case.batch if whole else min(ref_batch, case.batch)
        padded = getattr(model, "lengths_mode", None) == "padded"
        lengths = None if step.lengths is None or padded else step.lengths[:b]
        x64 = step.x[:, :b].detach().to("cpu", torch.float64)
        real = None if step.real is None else step.real[:, :b].detach().to("cpu", torch.float64)
        y64, state64, grads64 = _forward(ref, x64, lengths, real, train and whole, contextlib.nullcontext)
        out_err = max([relative_error(y[:, :b], y64)]
                      + [relative_error(s[:, :b], s64) for s, s64 in zip(state, state64, strict=True)])
        grad_err = max(relative_error(grads[k], g) for k, g in grads64.items()) if grads64 else None
    except Exception as exc:  # noqa: BLE001 -- the row was timed; only its check is lost, and the row says why
        return unchecked(f"error pass failed: {failure(exc)[1]}")
    errs = [e for e in (out_err, grad_err) if e is not None]
    off = tol is None or not all(e <= tol for e in errs)           # NaN compares false: off
    where = f"batch {b} of {case.batch}" if b < case.batch else "the full batch"
    return {"numerics": "off" if off else "ok", "out_err": out_err, "grad_err": grad_err, "err_tol": tol,
            "err_ref": f"{ref_name} float64 cpu, {where}",
            "err_reason": grad_reason or (f"no tolerance for {tol_key}" if tol is None else "")}
