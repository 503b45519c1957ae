"""Profiler traces read back: the top ops of a profiled case, and where a step's time goes.

A profiled case leaves Chrome trace JSON (*.pt.trace.json) in results/<run_id>/profiles/<case-slug>/
(measure/profiling.py writes them); nothing here runs the profiler, so the report reads old runs too.

- `top_ops_table(run_dirs)`: the top ops by self time of every profiled case,
  computed here from the trace files (they also open in https://ui.perfetto.dev
  or chrome://tracing), since torch-tb-profiler's own UI needs a script from
  the internet and only half-renders offline.
- `step_breakdown(trace)`: where a step's time goes, in CATEGORIES: GEMM
  (GEMM_OPS: matmuls and the vendor RNN kernels), elementwise
  (ELEMENTWISE_OPS), other ops, and framework overhead: the step's wall time
  (ProfilerStep#N) minus the ops' self time, plus the autograd engine's own
  nodes (AUTOGRAD_PREFIXES). On CUDA the ops are the GPU kernels, classified by
  name (KERNEL_WORDS), and overhead is the time the GPU had no kernel.
- `time_breakdown(run_dirs)`: breakdown.csv's rows of every profiled case's
  trace; `one_size(breakdown)`: the size the figure and the finding show.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd


# -- the top ops --------------------------------------------------------------------------------------
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
                  r"(?:_i(?P<input>\d+))?(?:_(?P<dtype>float\d+|bfloat16))?(?:_(?P<gemm>onednn))?"
                  r"_(?P<phase>forward|train)$")   # a profile's directory: config/cases.ThroughputCase.slug


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
                    "input": int(m["input"] or m["hidden"]), "source": "trace", "gemm": m["gemm"] or ""}
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
