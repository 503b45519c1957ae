"""Profiles: every throughput case can run under torch.profiler, for TensorBoard.

    python -m harness profile quick          # make profile: each case timed, then profiled
    [[throughput]] ... profile = true        # the same for one section of any scenario
    python -m harness tensorboard latest     # make tensorboard

Each case is profiled in its own pass after timing, on the schedule wait ->
warm-up -> active (PROFILE_SCHEDULE steps), with record_shapes and
profile_memory on (with_stack when asked). torch.profiler's
tensorboard_trace_handler writes results/<run_id>/profiles/<case-slug>/
*.pt.trace.json: one TensorBoard run per case, named impl_device_bB_tT_hH_phase.
record_function labels mark "forward" and "backward", and, for the scratch
implementations, every time step ("step 7").

The trace files are Chrome trace JSON: they also open in https://ui.perfetto.dev
or chrome://tracing. The report's op table (`top_ops_table`) is computed here
from the trace files themselves, since torch-tb-profiler's own UI needs a
script from the internet and only half-renders offline.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, schedule, tensorboard_trace_handler

from harness.cli import UsageError
from harness.profiling import _fd2_to_devnull

PROFILE_SCHEDULE = {"wait": 1, "warmup": 1, "active": 2}   # steps; 4 steps in all per case


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
        with _fd2_to_devnull():      # kineto prints to fd 2 as it starts and stops
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
            rows.append({"op": e["name"], "total_us": e.get("dur", 0), "self_us": e.get("dur", 0) - child.get(id(e),
                                                                                                            0.0)})
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


# -- TensorBoard -------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tensorboard_command(logdir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    exe = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    base = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    return base + ["--logdir", str(logdir), "--host", host, "--port", str(port), "--reload_interval", "5"]


def cmd_tensorboard(args) -> int:
    from harness.runner import find_run

    run_dir = find_run(Path(args.results), args.run)
    logdir = run_dir / "profiles"
    if not trace_files(run_dir):
        raise UsageError(f"run {run_dir.name} has no profiles: make profile [SCENARIO=...] first")
    port = int(args.port) if args.port else 6006
    host = args.host
    cmd = tensorboard_command(logdir, port, host)
    proc = subprocess.Popen(cmd)
    print(f"TensorBoard on http://{host}:{port}/#pytorch_profiler  ({len(trace_files(run_dir))} profiled cases "
          f"of {run_dir.name}; Ctrl-C stops it)")
    print("offline, the plugin's charts half-render; the traces also open in https://ui.perfetto.dev or "
          f"chrome://tracing: {logdir}/<case>/*.pt.trace.json")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


def add_commands(sub) -> None:
    import argparse

    from harness.env import REPO

    p = sub.add_parser("tensorboard", help="open a run's profiles in TensorBoard's PyTorch Profiler plugin",
                       epilog="examples:\n  python -m harness tensorboard\n  python -m harness tensorboard RUN_ID "
                              "--port 6007", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--port", default="6006")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--results", default=str(REPO / "results"))
    p.set_defaults(func=cmd_tensorboard)

