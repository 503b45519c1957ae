"""The sweep: every case of a run, measured, and on disk as a row before the next group starts.

    run, rows = run_sweep(scenario.load("quick"))        # python -m harness run quick
    run, rows = run_sweep(None, resume=run_dir)          # python -m harness run --resume RUN_ID

The throughput cases are one pytest session whose only test is `test_case`
below, parametrised over them by the `Sweep` plugin, a comparison group's
members one after another (cases.groups). The first member's test runs the
whole group (`run_group`: build, time round-robin with timing.time_group,
memory and profile passes, ratios against the group's reference), and writes
its rounds and rows; each member's test then hands its own rounds to its
pytest-benchmark fixture, which writes benchmark.json. The [[gradients]] and
[[task]] cases follow, outside pytest. Before a case is built, the CUDA
memory that earlier cases cached is given back (memory.release_cache), and
`check_fits` skips the case when its estimated memory would not fit in what is
free. A case that raises becomes a row all the same: `skipped` (errors.Skip,
with its reason), `oom` (an allocation failed) or `failed` (the error's first
line); the sweep goes on.

Ctrl-C or SIGTERM stops after the current comparison group (or case) and marks
the run interrupted; a second one stops at once. `--resume` runs only the cases the
run has not finished, and a half-finished group whole.
"""
from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from harness import console, env, flops, gradients, intervals, memory, profiler, registry, scenario, tasks, timing
from harness.cases import GradientCase, TaskCase, ThroughputCase, case_id, group_id, groups, reference
from harness.columns import BREAKDOWN_COLUMNS
from harness.errors import Skip, StoreError, failure
from harness.files import cannot_write
from harness.preflight import CompileFit, check_fits
from harness.store import GemmPeak, Run, utc_now

EXTRA_INFO = ("impl", "cell", "backend", "device", "dtype", "batch", "seq_len", "hidden", "input", "phase",
              "threads", "group_id", "ratio_ref", "ratio")      # benchmark.json's extra_info of each case
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)    # each stops the sweep after the current group, twice at once
MEASURING = ("timing", "memory", "peaks", "gradients", "task", "profile")   # activities that are measurement
# the others: "build" (models and inputs) and "backend" (the profiled pass that names the backend)


class Sweep:
    """A pytest plugin: parametrises test_case over the throughput cases, and turns each
    finished case into a row on disk before the next one starts."""

    def __init__(self, run: Run, timed: list[ThroughputCase], total: int, quiet: bool = False, with_stack=False):
        self.run, self.quiet = run, quiet
        self.groups = groups(timed)                       # comparison groups, each timed as one
        self.cases = [c for g in self.groups for c in g]  # pytest's order: a group's members one after another
        self.group_of = {c: g for g in self.groups for c in g}
        self.breakdown = profiler.breakdown_cases(self.groups)    # profiled once, lightly, for "where the time goes"
        self.breakdown_rows: list[dict] = []              # the current group's, written with its rows
        self.measured: dict[ThroughputCase, tuple[dict, list[float]]] = {}  # rows whose tests have not run
        self.with_stack = with_stack  # profile with Python stacks (python -m harness profile --with-stack)
        self.rows, self.peaks = [], {}                    # rows this call wrote; GEMM peaks by (device, dtype, threads,
        # tf32); compile_s against seq_len, from this host's earlier runs and this one (max_compile_s's preflight)
        self.compile_fit = CompileFit.from_results(run.dir.parent, env.short_host())
        self.spent = dict.fromkeys(MEASURING + ("build", "backend"), 0.0)   # seconds, by activity
        self.stop_requested = False
        self.fatal: StoreError | None = None              # a file the run could not write: it stops
        self.bar = tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True, disable=quiet,
                        desc=run.scenario.name)

    # -- pytest hooks ----------------------------------------------------------
    def pytest_generate_tests(self, metafunc):
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", self.cases, ids=[c.slug for c in self.cases])

    @pytest.fixture
    def sweep(self):
        return self

    # -- the machine's ceiling ------------------------------------------------------
    def measure_peaks(self) -> None:
        wanted = sorted({(c.device, timing.gemm_dtype(c), c.threads, c.tf32) for c in self.cases
                         if registry.device_missing(c.device) is None}, key=str)
        for device, dtype, threads, case_tf32 in wanted:
            n = env.set_threads(threads or None)
            tf32 = env.tf32_for(device, case_tf32)   # the same arithmetic as the cases it is held against
            t0 = time.perf_counter()
            peak = flops.gemm_peak(device, registry.DTYPES[dtype])
            self.spent["peaks"] += time.perf_counter() - t0
            self.peaks[(device, dtype, threads, case_tf32)] = peak["gemm_peak_gflops_per_s"]
            self.run.meta.gemm_peaks.append(GemmPeak(device=device, device_name=env.device_name(device),
                                                     dtype=dtype, threads=n, tf32=tf32, **peak))
            self.bar.write(f"GEMM peak {device} {dtype} ({n} threads): {peak['gemm_peak_gflops_per_s']:.1f} GFLOP/s "
                           f"({peak['gemm_size']}^3 matmul, best of {peak['reps']})")
        self.run.save()

    # -- one comparison group of throughput cases -------------------------------------------
    def run_case(self, case: ThroughputCase, benchmark) -> None:
        """test_case's body: the first member of a group runs the whole group (rows on disk when it
        ends); every member then hands its own rounds to its benchmark fixture."""
        if case not in self.measured:
            try:
                self.run_group(self.group_of[case])
            except StoreError as exc:             # a full disk: stop; every row before it is whole
                self.fatal = exc
                pytest.exit(str(exc), returncode=pytest.ExitCode.INTERRUPTED)
        row, times = self.measured.pop(case)
        if row["status"] == "ok":
            timing.record(benchmark, times)
            benchmark.extra_info.update({k: row[k] for k in EXTRA_INFO})
        if self.stop_requested and not any(c in self.measured for c in self.group_of[case]):
            pytest.exit("interrupted", returncode=pytest.ExitCode.INTERRUPTED)
        if row["status"] == "skipped":
            pytest.skip(row["reason"])

    def _base_row(self, case: ThroughputCase) -> dict:
        gid = group_id(case)
        return {"run_id": self.run.run_id, "scenario": self.run.scenario.name, "cell": case.cell,
                "device_name": env.device_name(case.device), "host": env.short_host(), **case.as_row(),
                "case_id": case_id(case), "group_id": gid, "rounds_wanted": case.rounds, "rounds": None,
                "order_seed": timing.order_seed(gid, case.seed) if case.interleave else None}

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
            # memory pass's profile below, or from a short profiled pass here (T=2, the case's batch)
            if compiler := registry.get(case.impl).compiler:
                row["backend"] = compiler
            elif not (case.memory and case.device == "cpu"):
                row["backend"] = profiler.backend_ran(step.model, case.batch)
            self.spent["build"] += t1 - t0
            self.spent["backend"] += clock() - t1
            return step
        except Skip as exc:
            row.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            row["status"], row["reason"] = failure(exc)
        return None

    def _finish(self, case: ThroughputCase, row: dict, step: timing.Step, times: list[float]) -> None:
        """A timed member's columns, then its untimed memory and profile passes."""
        clock = time.perf_counter
        try:
            row.update(timing.stats_columns(times))
            row["median_ci_low_s"], row["median_ci_high_s"] = intervals.median_ci(times)
            work = flops.flops(case.cell, case.batch, case.seq_len, case.hidden, case.input, case.phase, case.shape,
                               tokens=step.tokens)                 # real tokens only, padding not counted
            rate = work / row["time_median_s"] / 1e9
            peak = self.peaks.get((case.device, timing.gemm_dtype(case), case.threads, case.tf32))
            row.update(flops=work, gflops_per_s=rate, tokens_per_s=step.tokens / row["time_median_s"],
                       gemm_peak_gflops_per_s=peak, peak_fraction=rate / peak if peak else None)
            if case.memory:
                t4 = clock()
                step.setup()
                row["peak_mem_bytes"], ops = memory.measure(step.run, case.device)
                if ops is not None and not registry.get(case.impl).compiler:
                    row["backend"] = profiler.backend_from_ops(ops)
                self.spent["memory"] += clock() - t4
            if case.profile:
                t5 = clock()
                profiler.profile_case(step, case, self.run.dir / "profiles", with_stack=self.with_stack)
                self.spent["profile"] += clock() - t5
            elif case in self.breakdown:
                t5 = clock()
                self._breakdown(case, step, row)
                self.spent["profile"] += clock() - t5
            row.update(status="ok", reason="")
        except Skip as exc:
            row.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            row["status"], row["reason"] = failure(exc)

    def _breakdown(self, case: ThroughputCase, step: timing.Step, row: dict) -> None:
        """The breakdown pass's rows for breakdown.csv; a pass that fails costs its rows, not the case."""
        try:
            split = profiler.breakdown_pass(step, case)
        except Exception as exc:  # noqa: BLE001 -- the case was timed; only its breakdown is lost
            self.bar.write(f"breakdown pass of {case.slug} failed ({failure(exc)[1]}); its timing stands")
            return
        case_columns = {k: row[k] for k in BREAKDOWN_COLUMNS if k in row}        # the case's own columns
        self.breakdown_rows += [{**case_columns, "category": c, "ms": ms, "source": "pass"}
                                for c, ms in split.items()]

    def run_group(self, group: list[ThroughputCase]) -> None:
        """Build, time (timing.time_group), measure and write every member of one comparison group."""
        first = group[0]
        threads = env.set_threads(first.threads or None)
        tf32 = env.tf32_for(first.device, first.tf32)
        rows = {c: {**self._base_row(c), "threads": threads, "tf32": tf32} for c in group}
        built = [(c, step) for c in group if (step := self._build(c, rows[c])) is not None]
        t0 = time.perf_counter()
        gt = timing.time_group([s for _, s in built], first.rounds, first.warmup, interleave=first.interleave,
                               seed=rows[first]["order_seed"] or 0, max_time_s=first.max_time_s)
        self.spent["timing"] += time.perf_counter() - t0
        noisy = gt.steal_fraction is not None and gt.steal_fraction > env.NOISY_STEAL
        for (c, step), times, err, first_s in zip(built, gt.times, gt.errors, gt.first_s, strict=True):
            rows[c].update(steal_fraction=gt.steal_fraction, load_avg=gt.load_avg, noisy=noisy,
                           **timing.compile_columns(step, first_s, times))
            if err is not None:
                rows[c]["status"], rows[c]["reason"] = failure(err)
            else:
                self._finish(c, rows[c], step, times)
                self.compile_fit.add(rows[c])
        times_of = {c: t for (c, _), t in zip(built, gt.times, strict=True)}
        ok = [c for c in group if rows[c].get("status") == "ok"]
        for c in ok:
            ref = reference(c, ok)
            r, lo, hi = intervals.ratio_ci(times_of[c], times_of[ref], paired=True)
            rows[c].update(ratio_ref=ref.impl, ratio=r, ratio_ci_low=lo, ratio_ci_high=hi)
        round_rows = [{"run_id": self.run.run_id, "case_id": rows[built[i][0]]["case_id"], "group_id":
                       rows[first]["group_id"], "impl": built[i][0].impl, "round": r, "position": pos, "time_s": t}
                      for i, r, pos, t in gt.rounds]
        built.clear()                               # the group's models go before the next group is built
        step = None
        now = utc_now()
        for c in group:
            rows[c]["finished_utc"] = now
        if round_rows:
            self.run.write_rows("rounds.csv", round_rows)
        if self.breakdown_rows:
            self.run.write_rows("breakdown.csv", self.breakdown_rows)
            self.breakdown_rows = []
        self.run.write_rows("timings.csv", [rows[c] for c in group])     # the group is finished: one write
        for c in group:
            self.run.count(rows[c]["status"])
            self.rows.append(rows[c])
            self.measured[c] = (rows[c], times_of.get(c, []))
            self.bar.update(1)
            if not self.quiet:
                self.bar.write(console.case_line(rows[c]))

    # -- one [[gradients]] or [[task]] case ---------------------------------------------
    def run_other(self, case: GradientCase | TaskCase) -> None:
        """Run it, write its rows (the case's final table last: --resume counts a case done by it), count it."""
        threads = env.set_threads(case.threads or None)
        env.tf32_for(case.device)
        t0 = time.perf_counter()
        status, reason, line = "ok", "", ""
        cid = {"case_id": case_id(case)}
        try:
            memory.release_cache(case.device)
            check_fits(case)
            if isinstance(case, GradientCase):
                curve_rows, decay_rows = gradients.run_case(case, self.run.run_id)
                self.run.write_rows("gradients.csv", [{**r, **cid} for r in curve_rows])
                self.run.write_rows("decay.csv", [{**r, **cid} for r in decay_rows])
                line = console.decay_line(next(r for r in decay_rows if r["wrt"] == "x"))
            else:
                train_rows, curve_rows, dyn_rows = tasks.run_case(case, self.run.run_id)
                self.run.write_rows("gradients.csv", [{**r, **cid} for r in curve_rows])
                self.run.write_rows("dynamics.csv", [{**r, **cid} for r in dyn_rows])
                self.run.write_rows("training.csv", [{**r, **cid} for r in train_rows])
                line = console.training_line(train_rows[-1])
        except Skip as exc:
            status, reason = "skipped", str(exc)
        except StoreError:
            raise                                  # the run's files, not the case: the run stops
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            status, reason = failure(exc)
        if status != "ok":
            self._write_not_ok(case, status, reason)
        self.spent[case.section] += time.perf_counter() - t0
        self.run.count(status)
        self.bar.update(1)
        if not self.quiet:
            self.bar.write(console.other_line(status, case.slug, threads, line or reason))

    def _write_not_ok(self, case: GradientCase | TaskCase, status: str, reason: str) -> None:
        cell = registry.get(case.impl).cell
        base = {"run_id": self.run.run_id, "impl": case.impl, "cell": cell, "hidden": case.hidden,
                "seq_len": case.seq_len, "batch": case.batch, "dtype": case.dtype, "device": case.device,
                "forget_bias": case.forget_bias, "status": status, "case_id": case_id(case)}
        if isinstance(case, GradientCase):
            base.update(init=case.init, nonlinearity=case.nonlinearity, seed=case.seed, input=case.input)
            self.run.write_rows("gradients.csv", [base])
            self.run.write_rows("decay.csv", [{**base, "seeds": case.seeds, "reason": reason}])
        else:
            self.run.write_rows("training.csv", [{**base, "task": case.task, "lr": case.lr, "clip": case.clip,
                                                  "seed": case.seed, "reason": reason,
                                                  "baseline_loss": tasks.baseline_loss(case.task, case.seq_len)}])


def test_case(benchmark, case, sweep):
    """The one test of a sweep's pytest session: collected from this file by _pytest_session."""
    sweep.run_case(case, benchmark)


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
        sweep.measure_peaks()
        try:
            code = pytest.ExitCode.OK if not timed else _pytest_session(sweep, run)
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
        run.meta.time_spent_s = dict(sweep.spent)
        run.meta.overhead_fraction = (wall - sum(sweep.spent[k] for k in MEASURING)) / wall if wall else None
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


def _pytest_session(sweep: Sweep, run: Run) -> int:
    """The throughput cases as one pytest session: test_case, from this file, over every case."""
    here = Path(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [str(here), "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider", "-p", "no:terminal",
                "--capture=no", "-o", f"python_files={here.name}", "--import-mode=importlib",
                "-W", "ignore::UserWarning", f"--benchmark-json={run.benchmark_json}", "--benchmark-sort=name"]
        return pytest.main(args, plugins=[sweep])
