"""Sweeps beyond one process: shards through submitit, on Slurm or locally.

    python -m harness run full --executor slurm --shards 16 --partition gpu --gpus-per-task 1 \\
        --timeout-min 240 --max-parallel 8
    python -m harness run smoke --executor local --shards 2      # the same path, local processes
    python -m harness status RUN_ID                              # which shards are done, running, failed,
                                                                 # and their Slurm jobs' states
    python -m harness run --resume RUN_ID                        # resubmit what is not done

Layout: the run directory is made as usual, plus one directory per shard,

    results/<run_id>/shards/000/  run.json + its own tables (timings.csv, ...)
    results/<run_id>/submitit/     submitit's job files and logs (its own pickles: job
                                   state, never read by the report)

Shard k runs the cases whose position in the scenario's expansion is k modulo
the shard count (runs.Run.cases). Each shard writes only inside its own
directory, so shards never write one file at once. A shard is a resumable run:
started again (after a failure, a pre-emption -- ShardJob is Checkpointable, so
Slurm requeues it -- or a kill), it runs only its missing cases. When every
shard is complete, their rows are merged, in the scenario's case order, into
the run directory's own tables, which then hold exactly the rows an in-process
run would.

On Slurm, job states come from squeue (`slurm_states`), not sacct: a cluster
without accounting (no slurmdbd) has no sacct to ask, and submitit's own
watcher then never sees a cancelled job end. submitit's log goes to
results/<run_id>/submitit/coordinator.log, not the terminal. Slurm warns a
shard `signal_delay_s` before its time limit (submitit's USR2); the shard
requeues itself and resumes from disk, up to SLURM_TIMEOUT_REQUEUES times.
SIGTERM (scancel, or a pre-emption) stops the coordinator like Ctrl-C: the run
is marked interrupted, and `run --resume` continues it.
"""
from __future__ import annotations

import contextlib
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.config import scenario
from harness.config.cases import case_id, groups
from harness.core.errors import UsageError
from harness.run import sweep
from harness.store.meta import Executor, ExecutorParams, Submission, read_meta
from harness.store.runs import Run, read_rows

KINDS = ("local", "slurm")          # submitit's executors; "inprocess" (no shards) is the sweep itself
POLL_S = 0.5                        # seconds between looks at the shards' progress
SLURM_TIMEOUT_REQUEUES = 3          # submitit's max_num_timeout: requeues of a shard that hit its time limit
LOCAL_TIMEOUT_MIN = 60 * 24         # the local executor's time limit when --timeout-min is not given
SLURM_TIMEOUT_MIN = 60              # Slurm's, likewise
SLURM_MAX_PARALLEL = 256            # array parallelism when --max-parallel is not given
SLURM_SIGNAL_DELAY_S = 90           # seconds before its time limit that Slurm warns a shard (submitit's default),
                                    # halved while it is more than half the limit (a 1-minute limit: 30 s)
SQUEUE_EVERY_S = 10                 # the longest wait between two squeue calls while shards run
SQUEUE_TIMEOUT_S = 60               # squeue's own time limit; past it, every state reads UNKNOWN
FINISHED = "FINISHED"               # a job squeue no longer lists: it ended (its result file says how)


def shard_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in (run_dir / "shards").glob("[0-9][0-9][0-9]") if (p / "run.json").is_file())


def shard_size(cases: int, index: int, count: int) -> int:
    """How many of `cases` cases fall to shard `index` of `count`: the positions index, index + count, ..."""
    return max(0, (cases - index + count - 1) // count)


def shard_state(d: Path) -> dict:
    """A shard's status and progress, from its run.json alone (drive() polls it twice a second)."""
    meta = read_meta(d)
    return {"shard": d.name, "status": meta.status, "done": sum(meta.counts.values()),
            "cases": shard_size(meta.scenario["cases"], meta.shard.index, meta.shard.count)}


class ShardJob:
    """What a submitit job runs: one shard, resumed from whatever it has on disk."""

    requeued = False            # set by checkpoint: Slurm runs this shard again, so its stop is not a failure

    def __call__(self, shard_dir: str) -> dict:
        d = Path(shard_dir)
        run, _ = sweep.run_sweep(None, quiet=True, resume=d)
        if run.meta.status != "complete":
            if self.requeued:   # not an Exception: submitit writes no result, and the coordinator waits on
                raise SystemExit(f"shard {d.name} requeued")         # the same job's next start
            raise RuntimeError(f"shard {d.name} ended {run.meta.status}")
        return {"shard": d.name, "counts": run.meta.counts}

    def checkpoint(self, shard_dir: str):
        """Slurm's warning before the time limit, or a pre-emption (submitit's USR2, in a signal
        handler): requeue the same shard; it resumes from disk."""
        import submitit

        self.requeued = True
        return submitit.helpers.DelayedSubmission(ShardJob(), shard_dir)


def check_executor(kind: str) -> None:
    """UsageError, before anything is created, when this machine cannot use submitit's `kind` executor."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UsageError("--executor needs submitit (pip install submitit)") from None
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: sbatch is not on this machine's PATH (use --executor local to test)")


def signal_delay_s(timeout_min: int) -> int:
    """Seconds before a `timeout_min` limit at which Slurm sends submitit's requeue signal."""
    return min(SLURM_SIGNAL_DELAY_S, timeout_min * 60 // 2)


def slurm_states(job_ids) -> dict[str, str]:
    """Slurm's state of each job id (an array element is 12_0), from one squeue call: PENDING, RUNNING,
    COMPLETED, CANCELLED, TIMEOUT, ... while Slurm holds the job (MinJobAge, 300 s by default, after it
    ends), then FINISHED. UNKNOWN for every id when squeue itself fails."""
    ids = {str(j) for j in job_ids}
    if not ids:
        return {}
    from submitit.slurm.slurm import read_job_id

    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"],
                             capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return dict.fromkeys(ids, "UNKNOWN")
    listed: dict[str, str] = {}
    for line in out.splitlines():
        jid, _, state = line.strip().partition("|")
        try:
            parts = read_job_id(jid)           # 12, 12_3, or a pending array's 12_[0-3,5]
        except Exception:  # noqa: BLE001 -- a line squeue wrote that is not one of ours
            continue
        for p in parts:
            if len(p) == 3:
                listed.update({f"{p[0]}_{k}": state for k in range(int(p[1]), int(p[2]) + 1)})
            else:
                listed["_".join(p[:2])] = state
    return {j: listed.get(j, FINISHED) for j in ids}


def watch_through_squeue(jobs: list) -> None:
    """Have submitit's Slurm jobs ask squeue (slurm_states) for their state, not sacct."""
    from submitit.core.core import InfoWatcher

    class SqueueWatcher(InfoWatcher):
        def get_state(self, job_id: str, mode: str = "standard") -> str:
            return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

        def update(self) -> None:
            pending = self._registered - self._finished
            if not pending:
                return
            self._num_calls += 1
            self._info_dict.update({j: {"JobID": j, "State": s} for j, s in slurm_states(pending).items()})
            self._last_status_check = time.time()
            self._finished |= {j for j in pending if self.is_done(j, mode="cache")}

    watcher = SqueueWatcher(delay_s=SQUEUE_EVERY_S)
    for job in jobs:
        job.watcher = watcher                  # the class's sacct watcher is left alone (an array's
        watcher.register_job(job.job_id)       # elements are made as submitit's own SlurmJob)


@contextlib.contextmanager
def submitit_log(path: Path):
    """submitit's log messages into `path` instead of the terminal, while the block runs."""
    log = logging.getLogger("submitit")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    before, propagate = log.handlers[:], log.propagate
    log.handlers, log.propagate = [handler], False
    try:
        yield
    finally:
        log.handlers, log.propagate = before, propagate
        handler.close()


def make_executor(run_dir: Path, kind: str, params: ExecutorParams):
    """submitit's executor, its files in results/<run_id>/submitit/."""
    check_executor(kind)
    import submitit

    folder = run_dir / "submitit"
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=params.timeout_min or LOCAL_TIMEOUT_MIN)
        return ex
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=SLURM_TIMEOUT_REQUEUES)
    minutes = params.timeout_min or SLURM_TIMEOUT_MIN
    update = {"time": minutes, "ntasks_per_node": 1, "signal_delay_s": signal_delay_s(minutes),
              "array_parallelism": params.max_parallel or SLURM_MAX_PARALLEL}
    if params.partition:
        update["partition"] = params.partition
    if params.gpus_per_task:
        update["gpus_per_task"] = params.gpus_per_task
    ex.update_parameters(**update)
    return ex


def run_sharded(sc: scenario.Scenario | None, results: Path, kind: str = "local", shards: int = 2,
                params: ExecutorParams | None = None, resume: Path | None = None, quiet: bool = False) -> Run:
    """A new run of `sc` whose cases go to `shards` shards on submitit's `kind` executor,
    or (resume) the shards of an earlier sharded run that are not complete."""
    if resume is None:
        if shards < 1:
            raise UsageError(f"run: --shards must be a positive integer, not {shards}")
        check_executor(kind)                # refuse before creating anything
        run = Run.create(results, sc)
        run.meta.executor = Executor(kind=kind, shards=shards, params=params or ExecutorParams())
        for k in range(shards):
            run.new_shard(k, shards)
        run.save()
    else:
        run = Run.open(resume)
        run.lock()                          # one coordinator: a second --resume is refused in one line
        run.mark_running()
    wall0 = time.perf_counter()
    status = "failed"
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        with submitit_log(run.dir / "submitit" / "coordinator.log"):
            status = drive(run, quiet=quiet)
    except KeyboardInterrupt:               # Ctrl-C, or SIGTERM: the shards keep what they finished
        status = "interrupted"
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        run.meta.wall_s = (run.meta.wall_s or 0.0) + time.perf_counter() - wall0
        run.finish(status)
        run.unlock()
    return run


def drive(run: Run, quiet: bool = False) -> str:
    """Submit every shard that is not complete, wait, resubmit failures, merge. Returns the run status."""
    info = run.meta.executor
    ex = make_executor(run.dir, info.kind, info.params)
    for attempt in range(info.params.retries + 1):
        pending = [d for d in shard_dirs(run.dir) if shard_state(d)["status"] != "complete"]
        if not pending:
            break
        jobs = ex.map_array(ShardJob(), [str(d) for d in pending])
        if info.kind == "slurm":
            watch_through_squeue(jobs)
        info.jobs.append(Submission(attempt=attempt, jobs={d.name: str(j.job_id) for d, j in
                                                           zip(pending, jobs, strict=True)}))
        run.save()
        if not quiet:
            print(f"submitted {len(jobs)} shard(s) to {info.kind} (attempt {attempt + 1} of "
                  f"{info.params.retries + 1}): " + ", ".join(str(j.job_id) for j in jobs), file=sys.stderr)
        last = None
        while not all(j.done() for j in jobs):
            time.sleep(POLL_S)
            line = "  ".join(f"{s['shard']}:{s['done']}/{s['cases']}" for s in map(shard_state, pending))
            if not quiet and line != last:
                print(f"shards  {line}", file=sys.stderr)
                last = line
        for d, j in zip(pending, jobs, strict=True):
            try:
                j.result()
            except Exception as exc:  # noqa: BLE001 -- a failed shard is resubmitted, not fatal
                print(f"shard {d.name} failed: {why_failed(exc)[:300]} (log: {j.paths.stderr})", file=sys.stderr)
    states = [shard_state(d) for d in shard_dirs(run.dir)]
    merge(run)
    return "complete" if all(s["status"] == "complete" for s in states) else "failed"


def why_failed(exc: Exception) -> str:
    """One line for a shard's failure: the exception its job raised (the last line of the trace
    that submitit's error quotes), else the error's last line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", ln)]
    return (raised or lines or [type(exc).__name__])[-1]


def merge(run: Run) -> None:
    """The shards' rows, in the order of the scenario's comparison groups (the order an unsharded
    run writes them), into the run directory's own tables."""
    order = {case_id(c): i for i, g in enumerate(groups(run.cases())) for c in g}
    dirs = shard_dirs(run.dir)
    for name in run.tables:
        rows = [r for d in dirs for r in read_rows(d / name) if r.get("case_id")]
        rows.sort(key=lambda r: order.get(r["case_id"], len(order)))      # stable: a group's rows keep their order
        run.rewrite_table(name, rows)
    counts: dict[str, int] = {}
    peaks = []
    for d in dirs:
        meta = read_meta(d)
        for k, v in meta.counts.items():
            counts[k] = counts.get(k, 0) + v
        peaks += meta.gemm_peaks
    run.meta.counts = counts
    run.meta.gemm_peaks = peaks
