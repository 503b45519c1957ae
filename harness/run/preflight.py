"""Preflight: a case that would not fit in free memory, or whose compile would take too long, is skipped
with its estimate before it is built.

    check_fits(case)           # errors.Skip where the case's estimated memory exceeds what is free

Compile cost: compile_s against the sequence length, fitted, so that preflight can skip a compile
that would take too long (max_compile_s) before it starts.

    fit = CompileFit.from_results(results_dir, host)   # every earlier run's compiled rows on this host
    fit.check(case)            # errors.Skip with the estimate, where it exceeds case.max_compile_s
    fit.add(row)               # a finished compiled row joins the fit, for the cases after it

The model: compile_s = a * T^b, fitted by least squares on log compile_s against log T, over the rows of
one (impl, device, phase, compile_mode, autocast) on this host; T is seq_len. An unrolled loop
(compiled-loop-lstm) grows with T (b near 1, more where fusion is quadratic: PyTorch issue 154652); a
compiled cell (compiled-lstm) hardly does (b near 0). Sizes other than T change the graph's tensors, not
its length, so they share a fit. With fewer than two lengths measured there is no estimate, and the case
runs: the fit is only ever made of what this machine measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.config.cases import GradientCase, ThroughputCase
from harness.core.errors import Skip
from harness.implementations import registry
from harness.measure import memory, tasks
from harness.store.columns import TIMINGS
from harness.store.runs import read_rows


def check_fits(case) -> None:
    """Raise errors.Skip when a case that could run here would not fit in free memory."""
    if registry.skip_reason(case.impl, case.device, case.dtype) is not None:
        return                          # the case's own skip (device, dtype) is reported when it is built
    cell, shape = registry.get(case.impl).cell, case.shape
    if isinstance(case, ThroughputCase):
        est = memory.estimate_bytes(cell, case.dtype, case.batch, case.seq_len, case.hidden, case.input,
                                    train=case.phase == "train", shape=shape)
    elif isinstance(case, GradientCase):
        est = memory.estimate_bytes(cell, case.dtype, case.batch, case.seq_len, case.hidden, case.input, shape=shape)
    else:
        T, I = tasks.sequence_length(case.task, case.seq_len), tasks.input_size(case.task)
        est = max(memory.estimate_bytes(cell, case.dtype, case.batch, T, case.hidden, I, shape=shape),
                  memory.estimate_bytes(cell, case.dtype, case.eval_size, T, case.hidden, I, False, shape))
    if reason := memory.why_too_large(est, case.device):
        raise Skip(reason)


MIN_LENGTHS = 2           # distinct seq_lens a fit needs


def fit_key(r) -> tuple:
    """Which rows share a fit (a case or a timings.csv row)."""
    get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    return (get("impl"), get("device"), get("phase"), get("compile_mode") or "", get("autocast") or "none")


def power_fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of y = a * x^b by least squares in log-log, or None with fewer than MIN_LENGTHS distinct x."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in pts}) < MIN_LENGTHS:
        return None
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return math.exp(my - b * mx), b


@dataclass
class CompileFit:
    points: dict[tuple, list[tuple[float, float]]] = field(default_factory=dict)   # key -> [(T, compile_s)]

    @classmethod
    def from_results(cls, results: Path, host: str) -> CompileFit:
        """The compiled rows of every run under `results` measured on `host` (unreadable tables are passed by)."""
        fit = cls()
        for table in sorted(results.glob(f"*/{TIMINGS}")):
            try:
                rows = read_rows(table, warnings=[])
            except OSError:
                continue
            for r in rows:
                if r.get("host") == host:
                    fit.add(r)
        return fit

    def add(self, row: dict) -> None:
        try:
            T, s = float(row.get("seq_len") or 0), float(row.get("compile_s") or "nan")
        except (TypeError, ValueError):
            return
        if row.get("status") == "ok" and T > 0 and s > 0:
            self.points.setdefault(fit_key(row), []).append((T, s))

    def estimate(self, case) -> tuple[float, int] | None:
        """(expected compile_s, rows fitted) for `case`, or None without a fit."""
        pts = self.points.get(fit_key(case), [])
        ab = power_fit(pts)
        return None if ab is None else (ab[0] * case.seq_len ** ab[1], len(pts))

    def check(self, case) -> None:
        """errors.Skip where a torch.compile case is expected to compile for longer than its max_compile_s."""
        if registry.get(case.impl).compiler != "inductor" or (est := self.estimate(case)) is None:
            return
        seconds, n = est
        if seconds > case.max_compile_s:
            a, b = power_fit(self.points[fit_key(case)])
            raise Skip(f"compile expected to take {seconds:.0f} s at seq_len {case.seq_len} (compile_s = "
                       f"{a:.3g} * T^{b:.2f}, fitted to {n} measured cases), over max_compile_s = "
                       f"{case.max_compile_s:g} s")
