"""Timing: how one case is built, timed through pytest-benchmark, and measured.

A sweep is one pytest session (harness/sweep.py) whose only test,
`sweep.test_case`, is parametrised over the scenario's throughput cases. Each case is timed by the
benchmark fixture in pedantic mode:

- `warmup` untimed rounds, then `rounds` timed rounds of one step each;
- setup (untimed) zeroes the gradients and synchronises the device;
- the timed function runs the step and synchronises the device before it
  returns, so queued GPU work is inside the timed region.

A step is, per phase:
- forward: y, state = model(x) under torch.no_grad()   (inference)
- train:   y, state = model(x); y.sum().backward()      (x needs no grad)

Inputs are drawn from the case's seed, like the parameters.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness import registry
from harness.cases import ThroughputCase
from harness.models import Recurrent, param_count


@dataclass
class Step:
    model: Recurrent
    run: Callable[[], object]     # one step (untimed sync not included)
    setup: Callable[[], None]     # zero gradients, synchronise
    sync: Callable[[], None]
    params: int

    def timed(self) -> None:
        self.run()
        self.sync()


def build_step(case: ThroughputCase) -> Step:
    """Build the model and inputs for `case`; raises errors.Skip where it cannot run."""
    model = registry.create(case.impl, case.input, case.hidden, device=case.device, dtype=case.dtype,
                            seed=case.seed)
    gen = torch.Generator().manual_seed(case.seed + 1)
    x = torch.randn(case.seq_len, case.batch, case.input, generator=gen)  # (T, B, I)
    x = x.to(device=case.device, dtype=registry.DTYPES[case.dtype])
    is_cuda = case.device.startswith("cuda")
    sync = (lambda: torch.cuda.synchronize(case.device)) if is_cuda else (lambda: None)

    def label(name):  # record_function labels, only while profiling
        return torch.profiler.record_function(name) if model.label_steps else contextlib.nullcontext()

    if case.phase == "forward":
        def run():
            with torch.no_grad(), label("forward"):
                return model(x)
    else:
        def run():
            with label("forward"):
                y, _ = model(x)
                loss = y.sum()
            with label("backward"):
                loss.backward()

    def setup():
        model.zero_grad(set_to_none=True)
        sync()

    return Step(model, run, setup, sync, param_count(model))


def time_step(step: Step, benchmark, rounds: int, warmup: int) -> dict:
    """Time `step` with pytest-benchmark's fixture; returns the timing columns."""
    benchmark.pedantic(step.timed, setup=step.setup, rounds=rounds, warmup_rounds=warmup, iterations=1)
    s = benchmark.stats.stats
    return {"rounds": s.rounds, "time_median_s": s.median, "time_iqr_s": s.iqr, "time_min_s": s.min,
            "time_max_s": s.max, "time_mean_s": s.mean, "time_stddev_s": s.stddev if s.rounds > 1 else 0.0,
            "timed_s": s.total}

