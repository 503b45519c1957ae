"""The sweep: every case of a run, measured, and on disk as a row before the next group starts.

    run, rows = run_sweep(scenario.load("quick"))        # python -m harness run quick
    run, rows = run_sweep(None, resume=run_dir)          # python -m harness run --resume RUN_ID

The throughput cases run as one pytest session (plugin.py), a comparison group's members one after
another: the first member's test has the group measured (groups.py: built, timed round-robin, its
memory and profile passes, ratios against the group's reference) and written here, its rounds, its
breakdown and then its rows, in one write each. The [[gradients]] and [[task]] cases follow, outside
pytest, each written as it finishes, its final table last. Before a case is built, the CUDA memory
that earlier cases cached is given back, and preflight skips a case that would not fit. A case that
raises becomes a row all the same; the sweep goes on.

Ctrl-C or SIGTERM stops after the current comparison group (or case) and marks
the run interrupted; a second one stops at once. `--resume` runs only the cases the
run has not finished, and a half-finished group whole.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from harness.config import scenario
from harness.config.cases import GradientCase, TaskCase, ThroughputCase, case_id, groups
from harness.core import env
from harness.core.errors import StoreError
from harness.run import console
from harness.run.breakdown import breakdown_cases
from harness.run.groups import MEASURING, GroupResult, GroupRunner
from harness.run.plugin import SweepPlugin, session
from harness.run.preflight import CompileFit
from harness.store.atomic import cannot_write
from harness.store.columns import BREAKDOWN, ROUNDS, TIMINGS
from harness.store.meta import utc_now
from harness.store.runs import Run

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)    # each stops the sweep after the current group, twice at once


class Sweep:
    """One run's sweep in progress: its groups, the runner that measures them, the rows it has written, the
    progress bar, and whether to stop (a signal) or why it must (a file it could not write)."""

    def __init__(self, run: Run, timed: list[ThroughputCase], total: int, quiet: bool = False,
                 with_stack: bool = False):
        self.run, self.quiet = run, quiet
        self.groups = groups(timed)                       # comparison groups, each timed as one
        self.bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True, disable=quiet,
                        desc=run.scenario.name)
        self.runner = GroupRunner(run.run_id, run.scenario.name, run.dir / "profiles",
                                  CompileFit.from_results(run.dir.parent, env.short_host()),
                                  breakdown_cases(self.groups), with_stack, say=self.bar.write)
        self.rows: list[dict] = []                        # the throughput rows this call wrote
        self.stop_requested = False
        self.fatal: StoreError | None = None              # a file the run could not write: it stops

    def run_group(self, group: list[ThroughputCase]) -> GroupResult:
        """Measure one comparison group and write it: rounds, breakdown, then its rows in one write."""
        result = self.runner.run(group)
        now = utc_now()
        for row in result.rows.values():
            row["finished_utc"] = now
        if result.rounds:
            self.run.write_rows(ROUNDS, result.rounds)
        if result.breakdown:
            self.run.write_rows(BREAKDOWN, result.breakdown)
        self.run.write_rows(TIMINGS, list(result.rows.values()))     # the group is finished: one write
        for row in result.rows.values():
            self.run.count(row["status"])
            self.rows.append(row)
            self.bar.update(1)
            if not self.quiet:
                self.bar.write(console.case_line(row))
        return result

    def run_other(self, case: GradientCase | TaskCase) -> None:
        """Measure a [[gradients]] or [[task]] case, write its rows (the final table last), count it."""
        out = self.runner.run_other(case)
        for name, rows in out.tables.items():
            self.run.write_rows(name, rows)
        self.run.count(out.status)
        self.bar.update(1)
        if not self.quiet:
            self.bar.write(console.other_line(out.status, case.slug, out.threads, out.line or out.reason))


def run_sweep(sc: scenario.Scenario | None, results: Path = env.RESULTS, quiet: bool = False,
              resume: Path | None = None, with_stack: bool = False) -> tuple[Run, list[dict]]:
    """Run every case of `sc` into a new run directory under `results`, or the missing cases of
    the run directory `resume`. Returns the run and the throughput rows this call wrote."""
    wall0 = time.perf_counter()
    if resume is None:
        run = Run.create(results, sc)
        cases = run.cases()
    else:
        run = Run.open(resume)
        run.lock()                                 # one writer: a second --resume is refused in one line
        done = run.resume()
        if run.meta.shard is not None:            # a shard of a sharded run, on whichever machine runs it
            run.meta.environment = env.environment()
        cases = [c for c in run.cases() if case_id(c) not in done]
    timed = [c for c in cases if isinstance(c, ThroughputCase)]
    others = [c for c in cases if not isinstance(c, ThroughputCase)]
    sweep = Sweep(run, timed, total=len(cases), quiet=quiet, with_stack=with_stack)

    def on_stop(signum, frame):                    # Ctrl-C, or SIGTERM (Slurm's scancel and pre-emption)
        sweep.stop_requested = True
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.default_int_handler)           # a second one stops at once
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        sweep.bar.write(f"{name}: stopping after this comparison group or case ({name} again to stop now)")

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_stop) for sig in STOP_SIGNALS} if main_thread else {}
    tf32_before = env.tf32_flags()                # the cases set them; the caller gets its own back
    status = "failed"
    try:
        run.meta.gemm_peaks += sweep.runner.measure_peaks([c for g in sweep.groups for c in g])
        run.save()
        try:
            code = pytest.ExitCode.OK if not timed else session(SweepPlugin(sweep), run.benchmark_json)
        except Exception as exc:
            # A second Ctrl-C in a timed case leaves pytest-benchmark a benchmark without data, a full disk
            # fails its benchmark.json: it raises as the session ends. Every finished row is on disk.
            if sweep.fatal is None and isinstance(exc, OSError):
                sweep.fatal = cannot_write(run.benchmark_json, exc)
            if not (sweep.stop_requested or sweep.fatal):
                raise
            code = pytest.ExitCode.INTERRUPTED
        if code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and sweep.fatal is None:
            for case in others:
                if sweep.stop_requested:
                    break
                sweep.run_other(case)
        if sweep.fatal is not None:
            raise sweep.fatal
        if code == pytest.ExitCode.INTERRUPTED or sweep.stop_requested:
            status = "interrupted"
        elif code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
            status = "complete"
        else:
            print(f"error: pytest stopped the sweep (exit code {int(code)})", file=sys.stderr)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except StoreError as exc:
        sweep.fatal = exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        env.restore_tf32(tf32_before)
        sweep.bar.close()
        wall = time.perf_counter() - wall0
        run.meta.wall_s = (run.meta.wall_s or 0.0) + wall if resume else wall
        run.meta.time_spent_s = dict(sweep.runner.spent)
        run.meta.overhead_fraction = (wall - sum(sweep.runner.spent[k] for k in MEASURING)) / wall if wall else None
        run.meta.error = str(sweep.fatal) if sweep.fatal else None
        try:
            run.finish(status)
        except StoreError as exc:                  # with a full disk, run.json may not take even that
            sweep.fatal = sweep.fatal or exc
        run.unlock()
    if sweep.fatal is not None:
        raise StoreError(f"{sweep.fatal}; every row written before it is whole: free space, then "
                         f"python -m harness run --resume {run.run_id}")
    return run, sweep.rows
