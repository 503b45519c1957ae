"""The sweep runner: run directories, rows on disk as each case finishes, and the
run / validate / compare commands.

    python -m harness run quick            # make bench
    results/<run_id>/run.json              # scenario, environment, commit, times, status
    results/<run_id>/timings.csv           # one row per case, flushed as it finishes
    results/<run_id>/benchmark.json        # pytest-benchmark's JSON

The run id is <UTC time>-<short host>-<short commit>; a run directory is created
exclusively and never reused. results/latest points at the newest run.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from harness import env, flops, gradients, memory, profiles, registry, scenario, shards, tasks, timing
from harness.cli import UsageError
from harness.scenario import GradientCase, TaskCase, ThroughputCase

RESULTS = env.REPO / "results"

TIMING_COLUMNS = [
    "run_id", "scenario", "impl", "cell", "backend", "device", "device_name", "dtype", "batch", "seq_len", "hidden",
    "input", "layers", "phase", "rounds", "time_median_s", "time_iqr_s", "time_min_s", "tokens_per_s", "flops",
    "gflops_per_s", "gemm_peak_gflops_per_s", "peak_fraction", "peak_mem_bytes", "params", "status", "reason",
    # beyond the required columns
    "warmup", "threads", "seed", "time_mean_s", "time_max_s", "time_stddev_s", "host", "finished_utc", "case_id",
]
STATUSES = ("ok", "skipped", "failed", "oom")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, fsync, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, reason) of a case that raised: oom or failed, with the error's first line."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ("oom" if is_oom(exc) else "failed"), f"{type(exc).__name__}: {first}"[:500]


def _tables_for(sc: scenario.Scenario) -> dict[str, list[str]]:
    """file name -> columns, for every table this scenario writes."""
    tables = {}
    if sc.throughput:
        tables["timings.csv"] = TIMING_COLUMNS
    if sc.gradients or sc.task:
        tables["gradients.csv"] = gradients.GRADIENT_COLUMNS
    if sc.gradients:
        tables["decay.csv"] = gradients.DECAY_COLUMNS
    if sc.task:
        tables["training.csv"] = tasks.TRAINING_COLUMNS
    return tables


FINAL_TABLES = ("timings.csv", "decay.csv", "training.csv")   # a case is done when its rows are in one of these


class Run:
    """One run directory: run.json kept current (replaced atomically), rows appended and fsynced."""

    def __init__(self, results: Path, sc: scenario.Scenario, run_dir: Path, meta: dict, benchmark_json: Path):
        self.results, self.scenario, self.dir, self.meta = results, sc, run_dir, meta
        self.run_id = meta["run_id"]
        self.tables = _tables_for(sc)
        self.benchmark_json = benchmark_json

    @classmethod
    def create(cls, results: Path, sc: scenario.Scenario) -> Run:
        commit, dirty = env.git_commit()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{stamp}-{env.short_host()}-{commit[:7] if commit != 'unknown' else 'nogit'}"
        results.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            run_id = base if n == 0 else f"{base}-{n}"
            run_dir = results / run_id
            try:
                run_dir.mkdir()          # exclusive: two runs at once never share a directory
                break
            except FileExistsError:
                continue
        meta = {
            "run_id": run_id, "status": "running", "scenario": scenario.resolved(sc),
            "environment": env.environment(), "git": {"commit": commit, "dirty": dirty},
            "started_utc": utc_now(), "finished_utc": None, "gemm_peaks": [], "counts": {},
            "argv": sys.argv,
        }
        run = cls(results, sc, run_dir, meta, run_dir / "benchmark.json")
        run.start_tables()
        run.save()
        run.point_latest()
        return run

    @classmethod
    def reopen(cls, results: Path, run_dir: Path) -> tuple[Run, set[str]]:
        """An earlier run, to resume: drops broken lines and the rows of half-written cases,
        and returns the ids of the cases it finished."""
        try:
            meta = json.loads((run_dir / "run.json").read_text())
            sc = scenario.from_resolved(meta["scenario"])
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{run_dir / 'run.json'}: cannot resume from it ({exc})") from None
        n = len(list(run_dir.glob("benchmark*.json")))
        run = cls(results, sc, run_dir, meta, run_dir / f"benchmark-resume-{n}.json")
        kept = {name: read_complete_rows(run_dir / name, columns) for name, columns in run.tables.items()}
        done = {r["case_id"] for name in FINAL_TABLES for r in kept.get(name, [])}
        for name in run.tables:
            run.rewrite_table(name, [r for r in kept[name] if r["case_id"] in done])
        statuses: dict[str, str] = {}
        for name in FINAL_TABLES:
            for r in kept.get(name, []):
                statuses.setdefault(r["case_id"], r["status"] if r["status"] in STATUSES else "ok")
        meta["counts"] = {}
        for st in statuses.values():
            meta["counts"][st] = meta["counts"].get(st, 0) + 1
        meta["status"] = "running"
        meta.setdefault("resumed_utc", []).append(utc_now())
        run.save()
        return run, done

    def save(self) -> None:
        atomic_write_text(self.dir / "run.json", json.dumps(self.meta, indent=2, default=str) + "\n")

    def point_latest(self) -> None:
        """results/latest -> this run, replaced atomically (a new link renamed over the old)."""
        link = self.results / "latest"
        tmp = self.results / f".latest.{os.getpid()}.{self.run_id}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.run_id)
        os.replace(tmp, link)

    def start_tables(self) -> None:
        """Every table of the scenario, with its header and no row."""
        for name in self.tables:
            self.rewrite_table(name, [])

    def rewrite_table(self, name: str, rows: list[dict]) -> None:
        """Replace a table, atomically, by its header and these rows."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.tables[name], lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.dir / name, buf.getvalue())

    def write_rows(self, name: str, rows: list[dict]) -> None:
        """Append rows to a table, flushed and fsynced before returning."""
        columns = self.tables[name]
        with open(self.dir / name, "a", newline="") as f:
            w = csv.DictWriter(f, columns)
            for row in rows:
                w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
            f.flush()
            os.fsync(f.fileno())

    def count(self, status: str) -> None:
        self.meta["counts"][status] = self.meta["counts"].get(status, 0) + 1
        self.save()

    def append(self, row: dict) -> None:
        self.write_rows("timings.csv", [row])
        self.count(row["status"])

    def finish(self, status: str) -> None:
        self.meta["status"] = status
        self.meta["finished_utc"] = utc_now()
        self.save()


def read_complete_rows(path: Path, columns: list[str]) -> list[dict]:
    """Rows of a table that are whole: a line cut short by a kill is dropped."""
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    out = []
    lines = text.splitlines(keepends=True)
    for line in lines[1:]:
        if not line.endswith("\n"):
            continue                     # the last line, cut short
        try:
            fields = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        if len(fields) == len(columns) and fields[columns.index("case_id")]:
            out.append(dict(zip(columns, fields, strict=True)))
    return out


def preflight(case) -> None:
    """Raise registry.Skip when a case that could run here would not fit in free memory."""
    if registry.skip_reason(case.impl, case.device, case.dtype) is not None:
        return                          # the case's own skip (device, dtype) is reported when it is built
    cell = registry.get(case.impl).cell
    if isinstance(case, ThroughputCase):
        est = memory.estimate_bytes(cell, case.dtype, case.batch, case.seq_len, case.hidden, case.input,
                                    train=case.phase == "train")
    elif isinstance(case, GradientCase):
        est = memory.estimate_bytes(cell, case.dtype, case.batch, case.seq_len, case.hidden, case.input)
    else:
        T, I = tasks.sequence_length(case.task, case.seq_len), tasks.input_size(case.task)
        est = max(memory.estimate_bytes(cell, case.dtype, case.batch, T, case.hidden, I),
                  memory.estimate_bytes(cell, case.dtype, case.eval_size, T, case.hidden, I, train=False))
    if reason := memory.preflight(est, case.device):
        raise registry.Skip(reason)


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return env.cpu_model()


class Sweep:
    """A pytest plugin: parametrises timing.test_case over the cases, and turns each
    finished case into a row on disk before the next one starts."""

    def __init__(self, run: Run, cases: list[ThroughputCase], quiet: bool = False):
        self.run, self.cases, self.quiet = run, cases, quiet
        self.rows: list[dict] = []
        self.peaks: dict[tuple, float] = {}
        # seconds spent in: the timed passes (warm-up + rounds), the memory passes, the
        # GEMM peaks -- the measurements -- and in building models and detecting backends
        self.spent = {"timing": 0.0, "memory": 0.0, "peaks": 0.0, "gradients": 0.0, "task": 0.0, "profile": 0.0,
                      "build": 0.0, "backend": 0.0}
        self.with_stack = False       # profile with Python stacks (python -m harness profile --with-stack)
        self.stop_requested = False
        self.bar = tqdm(total=len(cases), unit="case", file=sys.stderr, dynamic_ncols=True, disable=quiet,
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
        wanted = sorted({(c.device, c.dtype, c.threads) for c in self.cases
                         if isinstance(c, ThroughputCase) and registry.device_missing(c.device) is None})
        for device, dtype, threads in wanted:
            n = env.set_threads(threads or None)
            t0 = time.perf_counter()
            peak = flops.gemm_peak(device, registry.DTYPES[dtype])
            self.spent["peaks"] += time.perf_counter() - t0
            self.peaks[(device, dtype, threads)] = peak["gemm_peak_gflops_per_s"]
            self.run.meta["gemm_peaks"].append({"device": device, "device_name": device_name(device),
                                                "dtype": dtype, "threads": n, **peak})
            self.bar.write(f"GEMM peak {device} {dtype} ({n} threads): {peak['gemm_peak_gflops_per_s']:.1f} GFLOP/s "
                           f"({peak['gemm_size']}^3 matmul, best of {peak['reps']})")
        self.run.save()

    # -- one case ----------------------------------------------------------------------
    def run_case(self, case: ThroughputCase, benchmark) -> None:
        row = {"run_id": self.run.run_id, "scenario": self.run.scenario.name, "cell": case.cell,
               "device_name": device_name(case.device), "host": env.short_host(), **case.as_row(),
               "case_id": scenario.case_id(case)}
        threads = env.set_threads(case.threads or None)
        row["threads"] = threads
        clock = time.perf_counter
        try:
            preflight(case)
            t0 = clock()
            step = timing.build_step(case)
            row["params"] = step.params
            t1 = clock()
            # which backend ran: read off the CPU memory pass's profile below, or else from
            # a short profiled pass here (T=2, the case's batch)
            if not (case.memory and case.device == "cpu"):
                row["backend"] = registry.backend_ran(step.model, case.batch)
            t2 = clock()
            self.spent["build"] += t1 - t0
            self.spent["backend"] += t2 - t1
            t = timing.time_step(step, benchmark, case.rounds, case.warmup)
            t.pop("timed_s")
            t3 = clock()
            self.spent["timing"] += t3 - t2
            row.update(t)
            work = flops.flops(case.cell, case.batch, case.seq_len, case.hidden, case.input, case.phase)
            rate = work / t["time_median_s"] / 1e9
            peak = self.peaks.get((case.device, case.dtype, case.threads))
            row.update(flops=work, gflops_per_s=rate, tokens_per_s=case.batch * case.seq_len / t["time_median_s"],
                       gemm_peak_gflops_per_s=peak, peak_fraction=rate / peak if peak else None)
            if case.memory:
                t4 = clock()
                step.setup()
                row["peak_mem_bytes"], ops = memory.measure(step.run, case.device)
                if ops is not None:
                    row["backend"] = registry.backend_from_ops(ops)
                self.spent["memory"] += clock() - t4
            if case.profile:
                t5 = clock()
                profiles.profile_case(step, case, self.run.dir / "profiles", with_stack=self.with_stack)
                self.spent["profile"] += clock() - t5
            benchmark.extra_info.update({k: row[k] for k in ("impl", "cell", "backend", "device", "dtype", "batch",
                                                             "seq_len", "hidden", "input", "phase", "threads")})
            row.update(status="ok", reason="")
        except registry.Skip as exc:
            row.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            row["status"], row["reason"] = failure(exc)
        row["finished_utc"] = utc_now()
        self.run.append(row)
        self.rows.append(row)
        self.bar.update(1)
        if not self.quiet:
            self.bar.write(summary_line(row))
        if self.stop_requested:
            pytest.exit("interrupted by Ctrl-C", returncode=pytest.ExitCode.INTERRUPTED)
        if row["status"] == "skipped":
            pytest.skip(row["reason"])


    def run_other(self, case: GradientCase | TaskCase) -> None:
        """A [[gradients]] or [[task]] case: run it, write its rows, count its status."""
        threads = env.set_threads(case.threads or None)
        t0 = time.perf_counter()
        status, reason, line = "ok", "", ""
        try:
            preflight(case)
            cid = {"case_id": scenario.case_id(case)}
            if isinstance(case, GradientCase):
                curve_rows, decay_rows = gradients.run_case(case, self.run.run_id)
                # the case's last table is written last: --resume counts a case done by it
                self.run.write_rows("gradients.csv", [{**r, **cid} for r in curve_rows])
                self.run.write_rows("decay.csv", [{**r, **cid} for r in decay_rows])
                x = next(r for r in decay_rows if r["wrt"] == "x")
                vanish = (f"below 1e-3 at distance {x['vanish_distance']}" if x["vanishes_within_T"]
                          else "not below 1e-3 within T")
                line = (f"decay factor {_num(x['decay_factor'])} [{_num(x['decay_ci_low'])}, "
                        f"{_num(x['decay_ci_high'])}]/step, {vanish}")
            else:
                train_rows, curve_rows = tasks.run_case(case, self.run.run_id)
                self.run.write_rows("gradients.csv", [{**r, **cid} for r in curve_rows])
                self.run.write_rows("training.csv", [{**r, **cid} for r in train_rows])
                last = train_rows[-1]
                line = (f"eval loss {_num(last['eval_loss'])} (baseline {last['baseline_loss']:.4g}), "
                        f"accuracy {last['eval_accuracy']:.3f}, {last['wall_s']:.1f} s")
        except registry.Skip as exc:
            status, reason = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 -- any failure becomes a row; the sweep goes on
            status, reason = failure(exc)
        if status != "ok":
            self._write_not_ok(case, status, reason)
        self.spent[case.section] += time.perf_counter() - t0
        self.run.count(status)
        self.bar.update(1)
        if not self.quiet:
            self.bar.write(f"{status:7s} {case.slug:50s} ({threads} threads) {line or reason}")

    def _write_not_ok(self, case, status: str, reason: str) -> None:
        cell = registry.get(case.impl).cell
        base = {"run_id": self.run.run_id, "impl": case.impl, "cell": cell, "hidden": case.hidden,
                "seq_len": case.seq_len, "batch": case.batch, "dtype": case.dtype, "device": case.device,
                "forget_bias": case.forget_bias, "status": status, "case_id": scenario.case_id(case)}
        if isinstance(case, GradientCase):
            base.update(init=case.init, nonlinearity=case.nonlinearity, seed=case.seed, input=case.input)
            self.run.write_rows("gradients.csv", [base])
            self.run.write_rows("decay.csv", [{**base, "seeds": case.seeds, "reason": reason}])
        else:
            self.run.write_rows("training.csv", [{**base, "task": case.task, "lr": case.lr, "clip": case.clip,
                                                  "seed": case.seed, "baseline_loss":
                                                  tasks.baseline_loss(case.task, case.seq_len)}])


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("n/a" if v in ("", None) else str(v))


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:8.2f} ms" if s < 10 else f"{s:8.2f} s "


def summary_line(row: dict) -> str:
    what = (f"{row['impl']:12s} {row['device']:6s} {row['dtype']:8s} b{row['batch']:<4d} t{row['seq_len']:<4d} "
            f"h{row['hidden']:<5d} {row['phase']:7s}")
    if row["status"] != "ok":
        return f"{row['status']:7s} {what} {row['reason']}"
    mem = f"  mem {row['peak_mem_bytes'] / 2**20:8.2f} MiB" if row.get("peak_mem_bytes") not in (None, "") else ""
    frac = f"  {100 * row['peak_fraction']:5.1f}% of peak" if row.get("peak_fraction") else ""
    return (f"ok      {what} {_fmt_time(row['time_median_s'])} (IQR {row['time_iqr_s'] * 1e3:.2f} ms)  "
            f"{row['tokens_per_s']:11.0f} tok/s{frac}{mem}  [{row['backend']}]")


def fastest_table(rows: list[dict]) -> list[str]:
    """One line per size: the fastest implementation and its lead over torch-lstm."""
    ok = [r for r in rows if r["status"] == "ok"]
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["device"], r["dtype"], r["phase"], r["hidden"], r["batch"], r["seq_len"], r["cell"]),
                          []).append(r)
    lines = []
    for (device, dtype, phase, hidden, batch, seq_len, cell), rs in sorted(groups.items()):
        best = min(rs, key=lambda r: r["time_median_s"])
        ref = next((r for r in rs if r["impl"] in ("torch-lstm", "torch-rnn")), None)
        vs = (f"  {ref['time_median_s'] / best['time_median_s']:.2f}x of {ref['impl']}"
              if ref and ref is not best else "")
        lines.append(f"  {device:6s} {dtype:8s} {phase:7s} {cell:4s} h{hidden:<5d} b{batch:<4d} t{seq_len:<4d} "
                     f"{best['impl']:13s} {_fmt_time(best['time_median_s'])}{vs}")
    return lines


def run_sweep(sc: scenario.Scenario, results: Path = RESULTS, quiet: bool = False,
              resume: Path | None = None, with_stack: bool = False) -> tuple[Run, list[dict]]:
    """Run every case of `sc` into a new run directory, or the missing cases of `resume`.

    Ctrl-C stops after the current case and marks the run interrupted; a second
    Ctrl-C stops at once. Every finished case is on disk before the next starts.
    """
    wall0 = time.perf_counter()
    if resume is None:
        run = Run.create(results, sc)
        cases = scenario.expand(sc)
    else:
        run, done = Run.reopen(results, resume)
        sc = run.scenario
        if "shard" in run.meta:                   # a shard of a sharded run, on whichever machine runs it
            run.meta["environment"] = env.environment()
        cases = [c for c in shards.select(scenario.expand(sc), run.meta.get("shard"))
                 if scenario.case_id(c) not in done]
    timed = [c for c in cases if isinstance(c, ThroughputCase)]
    others = [c for c in cases if not isinstance(c, ThroughputCase)]
    sweep = Sweep(run, timed, quiet=quiet)
    sweep.bar.total = len(cases)
    sweep.with_stack = with_stack

    def on_sigint(signum, frame):
        sweep.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)     # a second Ctrl-C stops at once
        sweep.bar.write("Ctrl-C: stopping after this case (Ctrl-C again to stop now)")

    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    status = "failed"
    try:
        sweep.measure_peaks()
        try:
            code = pytest.ExitCode.OK if not timed else _pytest_session(sweep, run)
        except Exception:
            # A second Ctrl-C inside a timed case leaves pytest-benchmark a benchmark without data,
            # which it fails on as the session ends; every finished row is already on disk.
            if not sweep.stop_requested:
                raise
            code = pytest.ExitCode.INTERRUPTED
        if code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            for case in others:
                if sweep.stop_requested:
                    break
                sweep.run_other(case)
        if code == pytest.ExitCode.INTERRUPTED or sweep.stop_requested:
            status = "interrupted"
        elif code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
            status = "complete"
        else:
            print(f"error: pytest stopped the sweep (exit code {int(code)})", file=sys.stderr)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        sweep.bar.close()
        wall = time.perf_counter() - wall0
        run.meta["wall_s"] = run.meta.get("wall_s", 0.0) + wall if resume else wall
        measured = sum(sweep.spent[k] for k in ("timing", "memory", "peaks", "gradients", "task", "profile"))
        run.meta["time_spent_s"] = dict(sweep.spent)
        run.meta["overhead_fraction"] = (wall - measured) / wall if wall else None
        run.finish(status)
    return run, sweep.rows


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _pytest_session(sweep: Sweep, run: Run) -> int:
    """The throughput cases as one pytest session: timing.test_case over every case."""
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [str(Path(timing.__file__)), "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider",
                "-p", "no:terminal", "--capture=no", "-o", "python_files=timing.py", "--import-mode=importlib",
                "-W", "ignore::UserWarning", f"--benchmark-json={run.benchmark_json}",
                "--benchmark-sort=name"]
        return pytest.main(args, plugins=[sweep])


# -- commands --------------------------------------------------------------------------------
def run_sharded(sc: scenario.Scenario | None, results: Path, args, resume: Path | None = None) -> Run:
    """A run whose cases go to submitit shards (harness/shards.py)."""
    if resume is None:
        run = Run.create(results, sc)
        params = {"partition": args.partition, "gpus_per_task": args.gpus_per_task, "timeout_min": args.timeout_min,
                  "max_parallel": args.max_parallel, "retries": args.retries}
        run.meta["executor"] = {"kind": args.executor, "shards": args.shards, "params": params}
        shards.create_shards(run, args.shards)
        run.save()
    else:
        meta = json.loads((resume / "run.json").read_text())
        run = Run(results, scenario.from_resolved(meta["scenario"]), resume, meta, resume / "benchmark.json")
        run.meta["status"] = "running"
        run.meta.setdefault("resumed_utc", []).append(utc_now())
        run.save()
    wall0 = time.perf_counter()
    status = "failed"
    try:
        status = shards.drive(run, quiet=args.quiet)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        run.meta["wall_s"] = run.meta.get("wall_s", 0.0) + time.perf_counter() - wall0
        run.finish(status)
    return run


def cmd_run(args) -> int:
    results = Path(args.results)
    if args.executor != "inprocess" and args.shards < 1:
        raise UsageError(f"run: --shards must be a positive integer, not {args.shards}")
    if args.resume:
        if args.scenario:
            raise UsageError("run: give a scenario or --resume RUN_ID, not both")
        run_dir = find_run(results, args.resume)
        if "executor" in json.loads((run_dir / "run.json").read_text()):
            run = run_sharded(None, results, args, resume=run_dir)
            return _report_sharded(run)
        run, rows = run_sweep(None, results, quiet=args.quiet, resume=run_dir)
    else:
        if not args.scenario:
            raise UsageError("run: give a scenario (smoke, quick, full, fastrnns, deepbench, goals, or a path) "
                             "or --resume RUN_ID")
        sc = scenario.load(args.scenario)
        if args.executor != "inprocess":
            return _report_sharded(run_sharded(sc, results, args))
        run, rows = run_sweep(sc, results, quiet=args.quiet)
    print("fastest per size:")
    print("\n".join(fastest_table(rows)) or "  (no case ran)")
    print(f"{run.meta['status']}: {counts_text(run.meta['counts'])} in {run.meta['wall_s']:.1f} s, "
          f"harness overhead {100 * run.meta['overhead_fraction']:.1f}%")
    print(f"results: {run.dir}")
    if run.meta["status"] == "interrupted":
        print(f"interrupted: resume with  python -m harness run --resume {run.run_id}")
        return 130
    return exit_code(run)


def counts_text(counts: dict) -> str:
    """'13 cases (11 ok, 2 skipped, 0 failed, 0 oom)'"""
    return f"{sum(counts.values())} cases (" + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ")"


def exit_code(run: Run) -> int:
    """0 when the run is complete and no case failed; 1 otherwise."""
    counts = run.meta["counts"]
    return 0 if run.meta["status"] == "complete" and not (counts.get("failed") or counts.get("oom")) else 1


def profiled(sc: scenario.Scenario) -> scenario.Scenario:
    """The scenario's throughput sections with profile = true (and no other section)."""
    return sc.model_copy(update={"throughput": [t.model_copy(update={"profile": True}) for t in sc.throughput],
                                 "gradients": [], "task": []})


def cmd_profile(args) -> int:
    sc = scenario.load(args.scenario)
    if not sc.throughput:
        raise UsageError(f"{sc.path}: no [[throughput]] section to profile")
    run, rows = run_sweep(profiled(sc), Path(args.results), quiet=args.quiet, with_stack=args.with_stack)
    n = len(profiles.trace_files(run.dir))
    print(f"{run.meta['status']}: {n} profiled cases in {run.dir / 'profiles'}")
    print(f"open them: make tensorboard RUN={run.run_id}  (or any *.pt.trace.json in https://ui.perfetto.dev)")
    return 0 if run.meta["status"] == "complete" else 1


def _report_sharded(run: Run) -> int:
    print(f"{run.meta['status']}: {counts_text(run.meta['counts'])} in {run.meta['executor']['shards']} shards")
    print(f"results: {run.dir}")
    if run.meta["status"] != "complete":
        print(f"some shards are not complete: python -m harness status {run.run_id}; "
              f"python -m harness run --resume {run.run_id}")
    return exit_code(run)


def cmd_validate(args) -> int:
    paths = args.files or [str(p) for p in scenario.shipped()]
    bad = 0
    for p in paths:
        try:
            sc = scenario.load(p)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"ok: {sc.path} ({len(scenario.expand(sc))} cases)")
    return 2 if bad else 0


def find_run(results: Path, run_id: str) -> Path:
    d = results / run_id
    if not (d / "run.json").is_file():
        runs = sorted(p.name for p in results.iterdir() if (p / "run.json").is_file()) if results.is_dir() else []
        shown = ", ".join(runs[-5:]) or "none"
        raise UsageError(f"unknown run id {run_id!r} in {results}; newest runs: {shown}")
    return d.resolve()


def read_timings(run_dir: Path) -> list[dict]:
    with open(run_dir / "timings.csv", newline="") as f:
        return list(csv.DictReader(f))


def cmd_compare(args) -> int:
    if not args.base:
        raise UsageError("compare: give BASE, a run id in results/ (make bench-compare BASE=<run_id>)")
    results = Path(args.results)
    base, new = find_run(results, args.base), find_run(results, args.run)
    key = scenario.KEY_COLUMNS

    def index(rows):
        return {tuple(r[k] for k in key): float(r["time_median_s"]) for r in rows if r["status"] == "ok"}

    for d in (base, new):
        if not (d / "timings.csv").is_file():
            raise UsageError(f"run {d.name} has no timings.csv: compare needs [[throughput]] results")
    b, n = index(read_timings(base)), index(read_timings(new))
    common = sorted(set(b) & set(n))
    if not common:
        raise UsageError(f"runs {base.name} and {new.name} have no successful case in common")
    slower = []
    for k in common:
        change = 100 * (n[k] / b[k] - 1)
        mark = "SLOWER" if change > args.threshold else ""
        if mark:
            slower.append(k)
        print(f"{' '.join(str(x) for x in k):60s} {b[k] * 1e3:9.2f} ms -> {n[k] * 1e3:9.2f} ms {change:+6.1f}% {mark}")
    print(f"{len(slower)} of {len(common)} cases slower than {base.name} by more than {args.threshold}%")
    return 1 if slower else 0


def add_commands(sub) -> None:
    p = sub.add_parser("run", help="run a scenario's sweep (make bench)",
                       description="Run every case of a scenario and write results/<run_id>/.",
                       epilog="examples:\n  python -m harness run quick\n  python -m harness run scenarios/my.toml\n"
                              "  python -m harness run smoke --results /tmp/results\n"
                              "  python -m harness run --resume latest\n"
                              "  python -m harness run full --executor slurm --shards 16 --partition gpu "
                              "--gpus-per-task 1 --timeout-min 240\n"
                              "  python -m harness run smoke --executor local --shards 2",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", help="short name (smoke, quick, full, fastrnns, deepbench, goals) or a path")
    p.add_argument("--resume", metavar="RUN_ID", help="run only the missing cases of an earlier run (or latest)")
    g = p.add_argument_group("shards (harness/shards.py)")
    g.add_argument("--executor", choices=shards.EXECUTORS, default="inprocess",
                   help="inprocess (default), local (submitit's local processes) or slurm (a job array)")
    g.add_argument("--shards", type=int, default=2, help="how many shards (default 2)")
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument("--gpus-per-task", type=int, help="Slurm GPUs per task")
    g.add_argument("--timeout-min", type=int, help="per-shard time limit in minutes")
    g.add_argument("--max-parallel", type=int, help="Slurm array parallelism")
    g.add_argument("--retries", type=int, default=2, help="resubmissions of a failed shard (default 2)")
    p.add_argument("--results", default=str(RESULTS), help="results directory (default: results/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-case lines")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("profile", help="run a scenario's throughput cases under torch.profiler (make profile)",
                       epilog="examples:\n  python -m harness profile smoke\n  python -m harness profile quick",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--with-stack", action="store_true", help="record Python stacks too (bigger traces)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("validate", help="check scenario files",
                       epilog="examples:\n  python -m harness validate\n  python -m harness validate scenarios/my.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="scenario files or names (default: every shipped scenario)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("compare", help="fail when a run is slower than a base run",
                       epilog="example:\n  python -m harness compare 20261201T080102Z-vm-1a2b3c4 latest --threshold 10",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", nargs="?", help="the base run id")
    p.add_argument("run", nargs="?", default="latest", help="the run to check (default: latest)")
    p.add_argument("--threshold", type=float, default=10.0, help="percent slower that fails (default 10)")
    p.add_argument("--results", default=str(RESULTS))
    p.set_defaults(func=cmd_compare)

