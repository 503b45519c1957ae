"""torch.profiler, live: which backend ran, and a case's profiled pass for TensorBoard.

- `backend_ran(model, batch)`: one short forward and backward under the
  profiler; its op names say which backend ran (`backend_from_ops`):
  aten::mkldnn_rnn_layer is oneDNN, aten::_cudnn_rnn cuDNN, anything else native.
- `profile_case(step, case, out_dir)`: a case's profiled pass, after its
  timing, on the schedule wait -> warm-up -> active (PROFILE_SCHEDULE steps),
  with record_shapes and profile_memory on (with_stack when asked).
  tensorboard_trace_handler writes out_dir/<case-slug>/*.pt.trace.json: one
  TensorBoard run per case, named by the case's slug. record_function
  labels mark "forward" and "backward", and, in the scratch implementations,
  every time step ("step 7").

The traces are read back in store/traces.py (top ops, where the time goes);
the sweep's light breakdown pass is run/breakdown.py.

Kineto prints "USDT: ... profiler_start/stop" lines straight to file
descriptor 2 when a profile starts and stops; `quiet_profile` sends just those
moments to /dev/null, so the progress bar and the per-case lines stay readable.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from harness.implementations.models import Recurrent

PROFILE_SCHEDULE = {"wait": 1, "warmup": 1, "active": 2}   # steps; 4 steps in all per case
BACKEND_PROBE_STEPS = 2     # T of the short pass that backend_ran profiles: the backend does not depend on T


# -- a profiler that keeps quiet -------------------------------------------------------------------
@contextlib.contextmanager
def fd2_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_profile(**kwargs) -> Iterator[profile]:
    """torch.profiler.profile(**kwargs), silent while it starts and stops."""
    prof = profile(**kwargs)
    with fd2_to_devnull():
        prof.__enter__()
    try:
        yield prof
    finally:
        with fd2_to_devnull():
            prof.__exit__(None, None, None)


# -- which backend actually ran --------------------------------------------------------------------
def backend_from_ops(op_names: set[str]) -> str:
    """Map profiler op names to a backend label (registry.BACKENDS)."""
    if any("mkldnn_rnn" in n for n in op_names):
        return "onednn"
    if any("_cudnn_rnn" in n for n in op_names):
        return "cudnn"
    return "native"


def op_names(model: Recurrent, x: Tensor) -> set[str]:
    """Names of every op one forward and backward of `model` on `x` runs."""
    x = x.detach().requires_grad_(True)
    with quiet_profile(activities=[ProfilerActivity.CPU]) as prof:
        y, state = model(x)
        (y.sum() + sum(s.sum() for s in state)).backward()
    model.zero_grad(set_to_none=True)
    return {e.key for e in prof.key_averages()}


def backend_ran(model: Recurrent, batch: int, seq_len: int = BACKEND_PROBE_STEPS) -> str:
    """Run `model` once at this batch size under the profiler and report its backend."""
    p = next(model.parameters())
    x = torch.randn(seq_len, batch, model.input_size, device=p.device, dtype=p.dtype)
    return backend_from_ops(op_names(model, x))


# -- a case's profiled pass ---------------------------------------------------------------------------
def run_schedule(step, prof) -> None:
    """Every step of PROFILE_SCHEDULE: a fresh setup, the step, the device synchronised, prof.step()."""
    for _ in range(sum(PROFILE_SCHEDULE.values())):
        step.setup()
        step.run()
        step.sync()
        prof.step()


def profile_case(step, case, out_dir: Path, with_stack: bool = False) -> Path:
    """Profile `step` (a timing.Step) for one case into out_dir/<slug>/; returns that directory."""
    target = out_dir / case.slug
    target.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if case.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    step.model.label_steps = True
    try:
        with fd2_to_devnull():      # kineto prints to fd 2 as it starts and stops
            with torch.profiler.profile(activities=activities, schedule=schedule(**PROFILE_SCHEDULE, repeat=1),
                                        on_trace_ready=tensorboard_trace_handler(str(target), worker_name="case"),
                                        record_shapes=True, profile_memory=True, with_stack=with_stack) as prof:
                run_schedule(step, prof)
    finally:
        step.model.label_steps = False
    return target
