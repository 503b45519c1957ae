"""torch.profiler, for three jobs: which backend ran, profiled passes for TensorBoard, and trace tables.

- `backend_ran(model, batch)`: one short forward and backward under the
  profiler; its op names say which backend ran (`backend_from_ops`):
  aten::mkldnn_rnn_layer is oneDNN, aten::_cudnn_rnn cuDNN, anything else native.
- `profile_case(step, case, out_dir)`: a case's profiled pass, after its
  timing, on the schedule wait -> warm-up -> active (PROFILE_SCHEDULE steps),
  with record_shapes and profile_memory on (with_stack when asked).
  tensorboard_trace_handler writes out_dir/<case-slug>/*.pt.trace.json: one
  TensorBoard run per case, named impl_device_bB_tT_hH_phase. record_function
  labels mark "forward" and "backward", and, in the scratch implementations,
  every time step ("step 7").
- `top_ops_table(run_dirs)`: the top ops by self time of every profiled case,
  computed here from the trace files (Chrome trace JSON; they also open in
  https://ui.perfetto.dev or chrome://tracing), since torch-tb-profiler's own
  UI needs a script from the internet and only half-renders offline.

Kineto prints "USDT: ... profiler_start/stop" lines straight to file
descriptor 2 when a profile starts and stops; `quiet_profile` sends just those
moments to /dev/null, so the progress bar and the per-case lines stay readable.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from harness.models import Recurrent

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
def profile_case(step, case, out_dir: Path, with_stack: bool = False) -> Path:
    """Profile `step` (a timing.Step) for one case into out_dir/<slug>/; returns that directory."""
    target = out_dir / case.slug
    target.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if case.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    n = sum(PROFILE_SCHEDULE.values())
    step.model.label_steps = True
    try:
        with fd2_to_devnull():      # kineto prints to fd 2 as it starts and stops
            with torch.profiler.profile(activities=activities, schedule=schedule(**PROFILE_SCHEDULE, repeat=1),
                                        on_trace_ready=tensorboard_trace_handler(str(target), worker_name="case"),
                                        record_shapes=True, profile_memory=True, with_stack=with_stack) as prof:
                for _ in range(n):
                    step.setup()
                    step.run()
                    step.sync()
                    prof.step()
    finally:
        step.model.label_steps = False
    return target


# -- trace tables --------------------------------------------------------------------------------------
def trace_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "profiles").glob("*/*.pt.trace.json"))


def self_times(trace: dict) -> pd.DataFrame:
    """Per op: calls, total and self time (ms) of the CPU ops in a Chrome trace."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and e.get("cat") == "cpu_op"]
    rows = []
    by_thread: dict[tuple, list[dict]] = {}
    for e in events:
        by_thread.setdefault((e.get("pid"), e.get("tid")), []).append(e)
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        stack: list[dict] = []
        child: dict[int, float] = {}
        for e in evs:
            while stack and stack[-1]["ts"] + stack[-1].get("dur", 0) <= e["ts"]:
                stack.pop()
            if stack:
                child[id(stack[-1])] = child.get(id(stack[-1]), 0.0) + e.get("dur", 0)
            stack.append(e)
        for e in evs:
            rows.append({"op": e["name"], "total_us": e.get("dur", 0),
                         "self_us": e.get("dur", 0) - child.get(id(e), 0.0)})
    if not rows:
        return pd.DataFrame(columns=["op", "calls", "total_ms", "self_ms"])
    df = pd.DataFrame(rows)
    g = df.groupby("op", as_index=False).agg(calls=("op", "size"), total_ms=("total_us", "sum"),
                                             self_ms=("self_us", "sum"))
    g["total_ms"] /= 1e3
    g["self_ms"] /= 1e3
    return g.sort_values("self_ms", ascending=False)


def top_ops_table(dirs: list[Path], limit: int = 10) -> pd.DataFrame | None:
    """The top ops by self time of every profiled case in these runs, or None without profiles."""
    parts = []
    for d in dirs:
        for path in trace_files(d):
            try:
                trace = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            t = self_times(trace)
            if t.empty:
                continue
            total = t["self_ms"].sum()
            t = t.head(limit).assign(run_id=d.name, case=path.parent.name,
                                     self_pct=lambda x, total=total: 100 * x["self_ms"] / total)
            parts.append(t[["run_id", "case", "op", "calls", "self_ms", "self_pct", "total_ms"]])
    return pd.concat(parts, ignore_index=True) if parts else None
