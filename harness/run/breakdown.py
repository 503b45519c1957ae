"""The breakdown pass: where a step's time goes, for a run that profiles no case.

A run without profiled cases still gets breakdown.csv: the sweep runs `breakdown_pass` on one size
per implementation (`breakdown_cases`) and keeps only its numbers (a trace of scratch-lstm at T=100
is megabytes). The categories and the reading of a trace are store/traces.py's.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, schedule

from harness.implementations.registry import device_missing
from harness.measure.profiling import PROFILE_SCHEDULE, fd2_to_devnull, run_schedule
from harness.store.traces import step_breakdown


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


