"""Run directories: made, opened, resumed and written; their tables read back; runs found again.

    results/<run_id>/run.json          meta.RunMeta: scenario, environment, commit, times, status
    results/<run_id>/timings.csv       one row per [[throughput]] case       (each table's columns: columns.py)
    results/<run_id>/rounds.csv        every timed round of every throughput case
    results/<run_id>/breakdown.csv     where one step's time goes, per implementation at one size
    results/<run_id>/gradients.csv     ||dL/dx_t|| per step, seed and case
    results/<run_id>/decay.csv         the fitted decay of each [[gradients]] case
    results/<run_id>/training.csv      each [[task]] case's evaluations
    results/<run_id>/dynamics.csv      each [[task]] case's one-step Jacobian and forget gate, as it trains
    results/<run_id>/benchmark.json    pytest-benchmark's JSON (benchmark-resume-N.json after a resume)
    results/latest                     a link to the newest run

The run id is <UTC time>-<short host>-<short commit>; a run directory is
created exclusively and never reused. Rows are appended, flushed and fsynced
as each case finishes; run.json and whole tables are replaced atomically
(written beside, fsynced, renamed: atomic.py). A case is finished when its rows
are in one of FINAL_TABLES, which the sweep writes last; a comparison group's
members are written together, after its rounds, and --resume re-runs a group
whole unless all of its members are finished.

The store package is the only one that writes or reads these files: `read_rows`
is the one CSV reader (for resume, compare and the report), `find_run` and
`find_runs` the one run finder, meta.RunMeta the one declaration of run.json.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from harness.config import scenario
from harness.config.cases import ThroughputCase, canary_id, case_id, group_id, groups
from harness.core import env
from harness.core.errors import UsageError
from harness.store.atomic import append_whole, atomic_write_text, take_lock, writer_pid
from harness.store.columns import (
    BREAKDOWN,
    DECAY,
    DYNAMICS,
    FINAL_TABLES,
    GRADIENTS,
    ROUNDS,
    STATUSES,
    TABLES,
    TIMINGS,
    TRAINING,
)
from harness.store.meta import FORMAT, Git, RunMeta, Shard, read_meta, utc_now


# -- the one CSV reader ---------------------------------------------------------------------------
def read_rows(path: Path, warnings: list[str] | None = None) -> list[dict[str, str]]:
    """The whole rows of a table, as dicts of strings keyed by its header.

    A line that is not whole is left out, and named in `warnings` when given:
    one cut short (no line end: a kill in mid-write), one with the wrong number
    of fields, or one with bytes that are not UTF-8. A missing file has no rows.
    """
    note = warnings.append if warnings is not None else (lambda _: None)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        note(f"{path}: cannot read ({exc})")
        return []
    lines = text.split("\n")                    # "\n" only: splitlines would also split at \x0c or \u2028 in a field
    lines = [x + "\n" for x in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if not lines:
        note(f"{path}: empty file")
        return []
    header = next(csv.reader([lines[0]]))
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if not line.endswith("\n"):
            note(f"{path}:{n}: skipped a broken line (cut short: no line end)")
            continue
        try:
            fields = next(csv.reader([line]))
        except csv.Error as exc:
            note(f"{path}:{n}: skipped a broken line ({exc})")
            continue
        if len(fields) != len(header) or "\ufffd" in line:
            note(f"{path}:{n}: skipped a broken line ({len(fields)} fields, expected {len(header)})")
            continue
        rows.append(dict(zip(header, fields, strict=True)))
    return rows


# -- the one run finder ---------------------------------------------------------------------------
def find_run(results: Path, run_id: str) -> Path:
    """The directory of run `run_id` (or `latest`) under `results`, resolved; its run.json is read,
    so that a run of another format is refused here, before anything uses it."""
    d = results / run_id
    if (d / "run.json").is_file():
        read_meta(d.resolve())
        return d.resolve()
    if run_id == "latest":
        raise UsageError(f"no runs in {results} yet: run one first (make bench)")
    runs = sorted(p.name for p in results.iterdir() if not p.is_symlink() and (p / "run.json").is_file()) \
        if results.is_dir() else []
    raise UsageError(f"unknown run id {run_id!r} in {results}; newest runs: {', '.join(runs[-5:]) or 'none'}")


def find_runs(results: Path, spec: str) -> list[Path]:
    """The directories of a comma-separated list of run ids."""
    ids = [s.strip() for s in spec.split(",") if s.strip()]
    if not ids:
        raise UsageError("give a run id, a comma-separated list of them, or latest")
    return [find_run(results, run_id) for run_id in ids]


# -- a run directory ------------------------------------------------------------------------------
def tables_for(sc: scenario.Scenario) -> dict[str, list[str]]:
    """file name -> columns, for every table this scenario writes."""
    wanted = {TIMINGS: sc.throughput, ROUNDS: sc.throughput, BREAKDOWN: sc.throughput,
              GRADIENTS: sc.gradients or sc.task, DECAY: sc.gradients, TRAINING: sc.task, DYNAMICS: sc.task}
    return {name: TABLES[name] for name, sections in wanted.items() if sections}


def select(cases: list, shard: Shard | None) -> list:
    """A shard's share of a scenario's cases: the comparison groups (cases.groups: a throughput group, or
    one other case) at positions index, index + count, ... (all of them for None). A group is never split."""
    if shard is None:
        return cases
    return [c for i, g in enumerate(groups(cases)) if i % shard.count == shard.index for c in g]


class Run:
    """One run directory: run.json kept current (replaced atomically), rows appended and fsynced."""

    def __init__(self, run_dir: Path, meta: RunMeta, sc: scenario.Scenario, benchmark_json: Path):
        self.dir, self.meta, self.scenario = run_dir, meta, sc
        self.tables = tables_for(sc)
        self.benchmark_json = benchmark_json
        self.lock_fd: int | None = None      # held while this process writes the run (lock)

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    @classmethod
    def create(cls, results: Path, sc: scenario.Scenario) -> Run:
        """A new run directory under `results`, its empty tables, and results/latest pointing at it."""
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
        meta = RunMeta(harness_version=env.VERSION, run_id=run_id, status="running",
                       scenario=scenario.resolved(sc), environment=env.environment(),
                       git=Git(commit=commit, dirty=dirty), argv=sys.argv, started_utc=utc_now())
        run = cls(run_dir, meta, sc, run_dir / "benchmark.json")
        run.lock()
        run.start_tables()
        run.save()
        run.point_latest(results)
        return run

    def new_shard(self, index: int, count: int) -> Run:
        """results/<run_id>/shards/NNN/: a run of its own, pending, holding every count-th case from index."""
        d = self.dir / "shards" / f"{index:03d}"
        d.mkdir(parents=True)
        meta = self.meta.model_copy(deep=True, update={"status": "pending", "shard": Shard(index=index, count=count),
                                                       "counts": {}, "gemm_peaks": [], "executor": None})
        shard = Run(d, meta, self.scenario, d / "benchmark.json")
        shard.start_tables()
        shard.save()
        return shard

    @classmethod
    def open(cls, run_dir: Path) -> Run:
        """An existing run, as it is on disk (nothing is written)."""
        meta = read_meta(run_dir)
        try:
            sc = scenario.from_resolved(meta.scenario)
        except (ValidationError, TypeError) as exc:
            raise UsageError(f"{run_dir / 'run.json'}: key 'scenario' does not describe a scenario ({exc})") from None
        n = len(list(run_dir.glob("benchmark*.json")))
        return cls(run_dir, meta, sc, run_dir / (f"benchmark-resume-{n}.json" if n else "benchmark.json"))

    def cases(self) -> list:
        """The cases this run holds: its scenario's expansion, or a shard's share of it."""
        return select(scenario.expand(self.scenario), self.meta.shard)

    def resume(self) -> set[str]:
        """Ready the run to go on: drop broken lines and the rows of half-written cases and of groups
        not wholly finished, recount, mark it running. Returns the ids of the cases it has finished."""
        kept = {name: [r for r in read_rows(self.dir / name) if r.get("case_id")] for name in self.tables}
        done = {r["case_id"] for name in FINAL_TABLES for r in kept.get(name, [])}
        for g in groups(self.cases()):
            ids = {case_id(c) for c in g}
            if not ids <= done:
                done -= ids                       # a half-finished group is re-run whole
        finished = {canary_id(group_id(g[0])) for g in groups(self.cases()) if isinstance(g[0], ThroughputCase)
                    and {case_id(c) for c in g} <= done}      # the canary's rounds of a finished group stay too
        for name in self.tables:
            self.rewrite_table(name, [r for r in kept[name] if r["case_id"] in done or r["case_id"] in finished])
        self.meta.format = FORMAT                 # its tables have this format's columns now (an older run's too)
        statuses: dict[str, str] = {}
        for name in FINAL_TABLES:
            for r in kept.get(name, []):
                if r["case_id"] in done:
                    statuses.setdefault(r["case_id"], r["status"] if r["status"] in STATUSES else "ok")
        counts: dict[str, int] = {}
        for st in statuses.values():
            counts[st] = counts.get(st, 0) + 1
        self.meta.counts = counts
        self.mark_running()
        return done

    def mark_running(self) -> None:
        self.meta.status = "running"
        self.meta.resumed_utc.append(utc_now())
        self.save()

    def save(self) -> None:
        atomic_write_text(self.dir / "run.json", self.meta.model_dump_json(indent=2) + "\n")

    def point_latest(self, results: Path) -> None:
        """results/latest -> this run, replaced atomically (a new link renamed over the old)."""
        link = results / "latest"
        tmp = results / f".latest.{os.getpid()}.{self.run_id}"
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
        w = csv.DictWriter(buf, self.tables[name], lineterminator="\r\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.dir / name, buf.getvalue())

    def write_rows(self, name: str, rows: list[dict]) -> None:
        """Append rows to a table, whole (append_whole) and fsynced before returning."""
        columns = self.tables[name]
        buf = io.StringIO()
        w = csv.DictWriter(buf, columns, lineterminator="\r\n")
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        append_whole(self.dir / name, buf.getvalue().encode())

    def lock(self) -> None:
        """Hold the run directory's lock while this process writes it (take_lock)."""
        if self.lock_fd is None:
            self.lock_fd = take_lock(self.dir)

    def unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def count(self, status: str) -> None:
        self.meta.counts[status] = self.meta.counts.get(status, 0) + 1
        self.save()

    def finish(self, status: str) -> None:
        self.meta.status = status
        self.meta.finished_utc = utc_now()
        self.save()


def writer_gone(run_dir: Path, meta: RunMeta) -> str | None:
    """Why a run that says `running` is not: no process holds its lock (it was killed, or the disk was too full
    for run.json to say failed), so it reads as interrupted. The line names the last case it finished. None for
    a run that says otherwise, or whose writer is alive."""
    if meta.status != "running" or writer_pid(run_dir) is not None:
        return None
    done = {r["case_id"] for name in FINAL_TABLES for r in read_rows(run_dir / name) if r.get("case_id")}
    cases = Run.open(run_dir).cases()          # a run.json whose scenario no longer expands: one line, from the top
    last = next((c.slug for c in reversed(cases) if case_id(c) in done), None)
    return (f"run {run_dir.name} says running, but no process writes it (killed, or a full disk kept run.json from "
            f"saying why): it reads as interrupted, " + (f"after {len(done)} cases, the last {last}" if last else
                                                        "before its first case finished")
            + f"; resume it with python -m harness run --resume {run_dir.name}")


def read_status(run_dir: Path, meta: RunMeta) -> str:
    """A run's status as it stands: run.json's, or interrupted where its writer is gone (writer_gone)."""
    return "interrupted" if writer_gone(run_dir, meta) else meta.status
