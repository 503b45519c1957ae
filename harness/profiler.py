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
- `time_breakdown(run_dirs)`: where a step's time goes, per profiled case, in
  CATEGORIES: GEMM (GEMM_OPS: matmuls and the vendor RNN kernels),
  elementwise (ELEMENTWISE_OPS), other ops, and framework overhead: the
  step's wall time (ProfilerStep#N) minus the ops' self time, plus the
  autograd engine's own nodes (AUTOGRAD_PREFIXES). On CUDA the ops are the
  GPU kernels, classified by name (KERNEL_WORDS), and overhead is the time the
  GPU had no kernel. A run without profiled cases still gets it: the sweep
  runs `breakdown_pass` on one size per implementation (sweep.breakdown_cases)
  and keeps only its numbers, in breakdown.csv (a trace of scratch-lstm at
  T=100 is megabytes).

Kineto prints "USDT: ... profiler_start/stop" lines straight to file
descriptor 2 when a profile starts and stops; `quiet_profile` sends just those
moments to /dev/null, so the progress bar and the per-case lines stay readable.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from harness.models import Recurrent
from harness.registry import device_missing

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


# -- where the time goes -----------------------------------------------------------------------------
CATEGORIES = ("GEMM", "elementwise", "other ops", "overhead")
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::bmm", "aten::baddbmm", "aten::addmv",
            "aten::mv", "aten::dot", "aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward",
            "aten::_cudnn_rnn", "aten::_cudnn_rnn_backward", "aten::mkldnn_rnn", "aten::rnn_tanh", "aten::rnn_relu"}
ELEMENTWISE_OPS = {"aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::sub", "aten::sub_", "aten::rsub",
                   "aten::div", "aten::div_", "aten::neg", "aten::sigmoid", "aten::sigmoid_", "aten::tanh",
                   "aten::tanh_", "aten::relu", "aten::relu_", "aten::sigmoid_backward", "aten::tanh_backward",
                   "aten::threshold_backward", "aten::addcmul", "aten::addcmul_", "aten::fill_", "aten::zero_",
                   "aten::where", "aten::clamp", "aten::pow", "aten::exp", "aten::_thnn_fused_lstm_cell",
                   "aten::_thnn_fused_lstm_cell_backward_impl", "aten::_thnn_fused_gru_cell",
                   "aten::_thnn_fused_gru_cell_backward", "aten::sum", "aten::lerp", "aten::lerp_"}
AUTOGRAD_PREFIXES = ("autograd::engine::", "torch::autograd::")   # and the *Backward0 nodes: the engine's own
KERNEL_WORDS = {"GEMM": ("gemm", "cutlass", "cublas", "rnn", "lstm"),
                "elementwise": ("elementwise", "vectorized", "pointwise", "sigmoid", "tanh", "fill")}
SLUG = re.compile(r"^(?P<impl>[^_]+)_(?P<device>[^_]+)_b(?P<batch>\d+)_t(?P<seq_len>\d+)_h(?P<hidden>\d+)"
                  r"(?:_i(?P<input>\d+))?(?:_(?P<dtype>float\d+|bfloat16))?_(?P<phase>forward|train)$")


def op_category(name: str) -> str:
    """A CPU op's category: GEMM, elementwise, other ops, or overhead (the autograd engine's nodes)."""
    if name in GEMM_OPS:
        return "GEMM"
    if name in ELEMENTWISE_OPS:
        return "elementwise"
    if name.startswith(AUTOGRAD_PREFIXES) or (not name.startswith("aten::") and name.endswith("Backward0")):
        return "overhead"
    return "other ops"


def kernel_category(name: str) -> str:
    low = name.lower()
    return next((cat for cat, words in KERNEL_WORDS.items() if any(w in low for w in words)), "other ops")


def step_breakdown(trace: dict) -> dict[str, float] | None:
    """ms per profiled step in each of CATEGORIES, from one Chrome trace; None without ProfilerStep events."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    steps = [e for e in events if str(e.get("name", "")).startswith("ProfilerStep#")]
    if not steps:
        return None
    wall = sum(e.get("dur", 0) for e in steps) / 1e3
    out = dict.fromkeys(CATEGORIES, 0.0)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    if kernels:                                          # a CUDA case: the GPU's kernels
        for e in kernels:
            out[kernel_category(e["name"])] += e.get("dur", 0) / 1e3
    else:
        st = self_times(trace)
        for name, ms in zip(st["op"], st["self_ms"], strict=True):
            if not str(name).startswith("ProfilerStep#"):
                out[op_category(name)] += ms
    busy = sum(v for k, v in out.items() if k != "overhead")
    # overhead: the time in no op (on CUDA, no kernel); on CPU it holds at least the autograd nodes' self time
    out["overhead"] = max(out["overhead"], wall - busy)
    return {k: v / len(steps) for k, v in out.items()}


def breakdown_cases(groups: list[list]) -> set:
    """The cases the breakdown pass profiles in a run with no profiled case: one train-step group (forward
    where none trains), of those with the most members the middle one by work (hidden x batch x seq_len),
    so every implementation is profiled at one size (breakdown_pass, into breakdown.csv)."""
    if any(c.profile for g in groups for c in g):
        return set()
    here = [g for g in groups if device_missing(g[0].device) is None]
    train = [g for g in here if g[0].phase == "train"] or here
    train = [g for g in train if g[0].layers == 1 and not g[0].bidirectional and g[0].lengths == "fixed"] or train
    if not train:                     # one plain layer where the run has one: the figure compares sizes alike
        return set()
    most = max(len(g) for g in train)
    widest = sorted((g for g in train if len(g) == most), key=lambda g: g[0].hidden * g[0].batch * g[0].seq_len)
    return set(widest[len(widest) // 2])


def breakdown_pass(step, case) -> dict[str, float]:
    """A short profiled pass of one case (PROFILE_SCHEDULE), without shapes, memory or a kept trace:
    ms per step in each of CATEGORIES (step_breakdown of the trace, read back from a temporary file)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if case.device.startswith("cuda") else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        with fd2_to_devnull():
            with torch.profiler.profile(activities=activities, schedule=schedule(**PROFILE_SCHEDULE, repeat=1),
                                        on_trace_ready=lambda p: p.export_chrome_trace(str(path))) as prof:
                run_schedule(step, prof)
        split = step_breakdown(json.loads(path.read_text()))
    if split is None:
        raise RuntimeError("the breakdown pass's trace has no ProfilerStep events")
    return split


def time_breakdown(dirs: list[Path]) -> pd.DataFrame | None:
    """breakdown.csv's rows (columns.BREAKDOWN_COLUMNS, source "trace") of every profiled case's trace."""
    rows = []
    for d in dirs:
        for path in trace_files(d):
            m = SLUG.match(path.parent.name)
            try:
                split = step_breakdown(json.loads(path.read_text())) if m else None
            except (OSError, ValueError):
                continue
            if split is None:
                continue
            base = {"run_id": d.name, "case_id": "", "impl": m["impl"], "device": m["device"],
                    "dtype": m["dtype"] or "float32", "phase": m["phase"], "batch": int(m["batch"]),
                    "seq_len": int(m["seq_len"]), "hidden": int(m["hidden"]),
                    "input": int(m["input"] or m["hidden"]), "source": "trace"}
            rows += [{**base, "category": c, "ms": v} for c, v in split.items()]
    return pd.DataFrame(rows) if rows else None


def one_size(breakdown: pd.DataFrame) -> pd.DataFrame:
    """Per device: the train rows (forward where none train) of the size most implementations were
    profiled at, the middle one by work on a tie; what the figure and the finding show."""
    out = []
    for _, d in breakdown.groupby("device"):
        d = d[d["phase"] == "train"] if (d["phase"] == "train").any() else d
        if "layers" in d:                                       # one plain layer, where there is one
            flat = (d["layers"].fillna(1) == 1) & (d["bidirectional"].astype(str) != "True") \
                & (d["lengths"].fillna("fixed").isin(["fixed", ""]))
            d = d[flat] if flat.any() else d
        keys = ["batch", "seq_len", "hidden"]
        n = d.groupby(keys)["impl"].nunique()
        best = sorted((k for k, v in n.items() if v == n.max()), key=lambda k: k[0] * k[1] * k[2])
        b, t, h = best[len(best) // 2]
        out.append(d[(d["batch"] == b) & (d["seq_len"] == t) & (d["hidden"] == h)])
    return pd.concat(out, ignore_index=True)
