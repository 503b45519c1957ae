"""The group runner: one comparison group measured, or one [[gradients]] or [[task]] case; its rows made.

    runner = GroupRunner(run_id, "quick", profiles_dir, CompileFit(), breakdown_cases(groups))
    peaks = runner.measure_peaks(cases)         # the GEMM peaks the cases are held against (run.json)
    result = runner.run(group)                  # GroupResult: timings, rounds and breakdown rows
    other = runner.run_other(case)              # OtherResult: a gradients or task case's rows, by table

A group's members are built (preflight first: memory, compile time), timed round-robin together
(measure/timing.py's time_group), then each timed member gets its untimed passes: peak memory, its
error against float64 (measure/accuracy.py), and a profiled or breakdown pass where asked. A case that
raises becomes a row all the same: `skipped` (errors.Skip, with its reason), `oom` (an allocation
failed) or `failed` (the error's first line).
Nothing here writes to disk: the sweep writes what a group returns, whole, before the next one.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.config.cases import GradientCase, TaskCase, ThroughputCase, case_id
from harness.core import env, intervals
from harness.core.errors import Skip, StoreError, failure
from harness.core.thresholds import CANARY_MOVED, CANARY_SPREAD, NOISY_STEAL
from harness.core.units import percent, rate
from harness.implementations import gemm, registry
from harness.measure import accuracy, flops, gradients, memory, profiling, tasks, timing
from harness.measure.canary import Canary
from harness.run import console, rows
from harness.run.breakdown import breakdown_pass
from harness.run.preflight import CompileFit, check_fits
from harness.store.columns import DECAY, DYNAMICS, GRADIENTS, TRAINING
from harness.store.meta import GemmPeak

MEASURING = ("timing", "memory", "accuracy", "peaks", "gradients", "task", "profile")   # measuring activities
# the others: "build" (models and inputs) and "backend" (the profiled pass that names the backend)


@dataclass
class GroupResult:
    rows: dict[ThroughputCase, dict]                 # every member's timings.csv row, in the group's order
    times: dict[ThroughputCase, list[float]]         # each timed member's rounds, seconds
    rounds: list[dict] = field(default_factory=list)       # rounds.csv's rows
    breakdown: list[dict] = field(default_factory=list)    # breakdown.csv's rows


@dataclass
class OtherResult:
    status: str                                      # ok, skipped, failed, oom
    reason: str
    tables: dict[str, list[dict]]                    # table -> rows, in the order to write them (the final one last)
    line: str                                        # what the terminal says of it
    threads: int = 0                                 # torch's intra-op threads it ran with


class GroupRunner:
    """Measures groups and cases for one run, keeping what they share: the GEMM peaks, the compile-time fit,
    the cases to break down, and the seconds spent on each activity (run.json's time_spent_s)."""

    def __init__(self, run_id: str, scenario_name: str, profiles: Path, compile_fit: CompileFit,
                 breakdown: set, with_stack: bool = False, say: Callable[[str], object] = print):
        self.run_id, self.scenario_name, self.profiles = run_id, scenario_name, profiles
        self.compile_fit = compile_fit      # compile_s against seq_len: this host's earlier runs and this one
        self.breakdown = breakdown          # the cases profiled lightly for breakdown.csv (run/breakdown.py)
        self.with_stack = with_stack        # profile with Python stacks (python -m harness profile --with-stack)
        self.say = say                      # a line for the terminal (under the progress bar)
        self.peaks: dict[tuple, dict[str, float]] = {}   # (device, dtype, threads, tf32) -> library -> GFLOP/s
        self.shape_rates: dict[tuple, float] = {}         # ... + (library, m, k, n) -> GFLOP/s: shape_ceiling's
        self.canaries: dict[tuple, list[float]] = {}      # (device, threads) -> each group's canary median so far, s
        self.spent = dict.fromkeys(MEASURING + ("build", "backend"), 0.0)

    # -- the machine's ceilings -------------------------------------------------------------------------
    def measure_peaks(self, cases: list[ThroughputCase]) -> list[GemmPeak]:
        """The GEMM peak of every library (gemm.LIBRARIES: aten, and onednn on a CPU where it runs) in every
        (device, GEMM dtype, threads, tf32) the cases run in, on this machine."""
        wanted = sorted({(c.device, timing.gemm_dtype(c), c.threads, c.tf32) for c in cases
                         if registry.device_missing(c.device) is None}, key=str)
        out = []
        for device, dtype, threads, case_tf32 in wanted:
            n = env.set_threads(threads or None)
            tf32 = env.tf32_for(device, case_tf32)   # the same arithmetic as the cases it is held against
            for library in gemm.LIBRARIES:
                if gemm.missing(library, device, registry.DTYPES[dtype]) is not None:
                    continue
                t0 = time.perf_counter()
                peak = flops.gemm_peak(device, registry.DTYPES[dtype], library=library)
                self.spent["peaks"] += time.perf_counter() - t0
                rate_s = peak["gemm_peak_gflops_per_s"]
                self.peaks.setdefault((device, dtype, threads, case_tf32), {})[library] = rate_s
                blas = ("cublas" if device.startswith("cuda") else gemm.blas()) if library == "aten" else None
                out.append(GemmPeak(device=device, device_name=env.device_name(device), dtype=dtype, threads=n,
                                    tf32=tf32, blas=blas, **peak))
                self.say(f"GEMM peak {device} {dtype} ({n} threads) {library}{f' ({blas})' if blas else ''}: "
                         f"{rate(rate_s * 1e9, 'FLOP/s')} ({peak['gemm_size']}^3 matmul, best of {peak['reps']})")
        return out

    def ceiling(self, case: ThroughputCase) -> tuple[str, float] | None:
        """(library, GFLOP/s) of the best GEMM peak the case is held against, or None where none was measured."""
        peaks = self.peaks.get((case.device, timing.gemm_dtype(case), case.threads, case.tf32))
        return max(peaks.items(), key=lambda kv: kv[1]) if peaks else None

    def shape_ceiling(self, case: ThroughputCase, tokens: int) -> float | None:
        """The best library's GFLOP/s at the case's own GEMM shapes (flops.gemm_shapes), weighted by their FLOPs:
        each shape's rate measured once a run (cached), through every library with a peak here."""
        key = (case.device, timing.gemm_dtype(case), case.threads, case.tf32)
        if key not in self.peaks:
            return None
        t0 = time.perf_counter()
        total = seconds = 0.0
        for m, k, n, count in flops.gemm_shapes(case.cell, case.batch, case.seq_len, case.hidden, case.input,
                                                case.shape, tokens):
            rates = []
            for library in self.peaks[key]:
                at = key + (library, m, k, n)
                if at not in self.shape_rates:
                    self.shape_rates[at] = flops.gemm_rate(case.device, registry.DTYPES[key[1]], m, k, n, library)
                rates.append(self.shape_rates[at])
            work = 2 * m * k * n * count / 1e9
            total, seconds = total + work, seconds + work / max(rates)
        self.spent["peaks"] += time.perf_counter() - t0
        return total / seconds if seconds else None

    # -- one comparison group ----------------------------------------------------------------------
    def run(self, group: list[ThroughputCase]) -> GroupResult:
        """Build, time (timing.time_group), measure and make the rows of every member of one comparison group."""
        first = group[0]
        threads = env.set_threads(first.threads or None)
        tf32 = env.tf32_for(first.device, first.tf32)
        out = GroupResult({c: {**rows.base_row(self.run_id, self.scenario_name, c), "threads": threads, "tf32": tf32}
                           for c in group}, {})
        built = [(c, step) for c in group if (step := self._build(c, out.rows[c])) is not None]
        canary, canary_error = self._canary(first.device) if built else (None, None)
        t0 = time.perf_counter()
        gt = timing.time_group([s for _, s in built] + ([canary] if canary else []), first.rounds, first.warmup,
                               interleave=first.interleave, seed=out.rows[first]["order_seed"] or 0,
                               max_time_s=first.max_time_s)
        self.spent["timing"] += time.perf_counter() - t0
        machine = self._machine(first, threads, gt.times[-1] if canary else [], gt.errors[-1] if canary else None,
                                canary_error, gt.steal_fraction)
        n = len(built)                                                        # the canary, if any: member n
        for (c, step), times, err, first_s in zip(built, gt.times[:n], gt.errors[:n], gt.first_s[:n], strict=True):
            row = out.rows[c]
            row.update(steal_fraction=gt.steal_fraction, load_avg=gt.load_avg, **machine,
                       **timing.compile_columns(step, first_s, times))
            if err is not None:
                row["status"], row["reason"] = failure(err)
            else:
                out.breakdown += self._finish(c, row, step, times)
                self.compile_fit.add(row)
        out.times = {c: t for (c, _), t in zip(built, gt.times[:n], strict=True)}
        rows.ratio_columns(out.rows, out.times, [c for c in group if out.rows[c].get("status") == "ok"])
        out.rounds = rows.round_rows(self.run_id, out.rows, [c for c, _ in built], gt)
        built.clear()                               # the group's models go before the next group is built
        return out

    def _canary(self, device: str) -> tuple[Canary | None, str | None]:
        """The canary on the group's device, or None and why it cannot run there (the group is timed without)."""
        try:
            return Canary.make(device), None
        except Exception as exc:  # noqa: BLE001 -- the canary is no case: the group is timed as it would be without
            return None, failure(exc)[1]

    def _machine(self, first: ThroughputCase, threads: int, times: list[float], error: BaseException | None,
                 canary_error: str | None, steal: float | None) -> dict:
        """The machine during the group's rounds, for every row: the canary's median and its ratio to the run's
        first canary on this device and threads; noisy, and why: steal, a canary wide, or a canary moved from the
        median of the run's canaries so far (the run's median is not known until its end, and rows are written as
        each group finishes)."""
        why = [f"steal {percent(steal)}"] if steal is not None and steal > NOISY_STEAL else []   # what makes it noisy
        note = []                                                     # what does not: a canary that could not run
        out: dict = {"canary_median_s": None, "canary_ratio": None}
        if canary_error or error is not None:
            note.append(f"no canary: {canary_error or failure(error)[1]}")
        elif times:
            median = statistics.median(times)
            so_far = self.canaries.setdefault((first.device, threads), [])
            so_far.append(median)
            ratio = median / so_far[0]                                # the machine now, against the run's start
            moved = median / statistics.median(so_far)               # and against its usual speed in this run
            out.update(canary_median_s=median, canary_ratio=ratio)
            if (spread := intervals.half_width(times)) > CANARY_SPREAD:
                why.append(f"canary +-{percent(spread)}")
            if abs(moved - 1) > CANARY_MOVED:
                why.append(f"canary moved {100 * (moved - 1):+.0f}% from the run's median so far")
        return {**out, "noisy": bool(why), "noisy_why": "; ".join(why + note)}

    def _build(self, case: ThroughputCase, row: dict) -> timing.Step | None:
        """The case's step, its parameter count and backend in `row`; None (and the row's status) if it cannot."""
        clock = time.perf_counter
        try:
            memory.release_cache(case.device)
            check_fits(case)
            self.compile_fit.check(case)
            t0 = clock()
            step = timing.build_step(case)
            row.update(params=step.params, tokens=step.tokens, padding_fraction=step.padding_fraction,
                       random_outputs=bool(case.dropout), compute_dtype=step.compute_dtype)
            # dropout > 0: each step's outputs are random
            t1 = clock()
            # which backend ran: a compiled model's compiler (its first call is timed); else read off the CPU
            # memory pass's profile (_finish), or from a short profiled pass here (T=2, the case's batch)
            if compiler := registry.get(case.impl).compiler:
                row["backend"] = compiler
            elif not (case.memory and case.device == "cpu"):
                row["backend"] = profiling.backend_ran(step.model, case.batch)
            self.spent["build"] += t1 - t0
            self.spent["backend"] += clock() - t1
            return step
        except Skip as exc:
            row.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            row["status"], row["reason"] = failure(exc)
        return None

    def _finish(self, case: ThroughputCase, row: dict, step: timing.Step, times: list[float]) -> list[dict]:
        """A timed member's columns, then its untimed memory and profile passes; its breakdown rows, if any."""
        clock = time.perf_counter
        split: list[dict] = []
        try:
            ceiling = self.ceiling(case)
            row.update(rows.timed_columns(case, step, times, ceiling, self.shape_ceiling(case, step.tokens)))
            if case.memory:
                t4 = clock()
                step.setup()
                row["peak_mem_bytes"], ops = memory.measure(step.run, case.device)
                if ops is not None and not registry.get(case.impl).compiler:
                    row["backend"] = profiling.backend_from_ops(ops)
                self.spent["memory"] += clock() - t4
            t4 = clock()
            step.setup()
            row.update(accuracy.check(step, case))          # the error pass: one untimed step against float64
            self.spent["accuracy"] += clock() - t4
            # the library its GEMMs ran on: a library kernel's is its backend's
            row["gemm"] = case.gemm or registry.BACKEND_GEMM.get(row.get("backend"), "aten")
            if case.profile:
                t5 = clock()
                profiling.profile_case(step, case, self.profiles, with_stack=self.with_stack)
                self.spent["profile"] += clock() - t5
            elif case in self.breakdown:
                t5 = clock()
                split = self._breakdown(case, step, row)
                self.spent["profile"] += clock() - t5
            row.update(status="ok", reason="")
        except Skip as exc:
            row.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            row["status"], row["reason"] = failure(exc)
        return split

    def _breakdown(self, case: ThroughputCase, step: timing.Step, row: dict) -> list[dict]:
        """The breakdown pass's rows for breakdown.csv; a pass that fails costs its rows, not the case."""
        try:
            split = breakdown_pass(step, case)
        except Exception as exc:  # noqa: BLE001 -- the case was timed; only its breakdown is lost
            self.say(f"breakdown pass of {case.slug} failed ({failure(exc)[1]}); its timing stands")
            return []
        return rows.breakdown_rows(row, split)

    # -- one [[gradients]] or [[task]] case --------------------------------------------------------
    def run_other(self, case: GradientCase | TaskCase) -> OtherResult:
        """Run it; its rows by table, the final table last (--resume counts a case done by that one)."""
        threads = env.set_threads(case.threads or None)
        env.tf32_for(case.device)
        t0 = time.perf_counter()
        cid = {"case_id": case_id(case)}
        try:
            memory.release_cache(case.device)
            check_fits(case)
            if isinstance(case, GradientCase):
                curve_rows, decay_rows = gradients.run_case(case, self.run_id)
                out = OtherResult("ok", "", {GRADIENTS: curve_rows, DECAY: decay_rows},
                                  console.decay_line(next(r for r in decay_rows if r["wrt"] == "x")))
            else:
                train_rows, curve_rows, dyn_rows = tasks.run_case(case, self.run_id)
                out = OtherResult("ok", "", {GRADIENTS: curve_rows, DYNAMICS: dyn_rows, TRAINING: train_rows},
                                  console.training_line(train_rows[-1]))
            out.tables = {name: [{**r, **cid} for r in table] for name, table in out.tables.items()}
        except Skip as exc:
            out = OtherResult("skipped", str(exc), rows.not_ok_rows(self.run_id, case, "skipped", str(exc)), "")
        except StoreError:
            raise                                  # the run's files, not the case: the run stops
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            status, reason = failure(exc)
            out = OtherResult(status, reason, rows.not_ok_rows(self.run_id, case, status, reason), "")
        self.spent[case.section] += time.perf_counter() - t0
        out.threads = threads
        return out
