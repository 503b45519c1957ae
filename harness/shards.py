"""Sweeps beyond one process: shards through submitit, on Slurm or locally.

    python -m harness run full --executor slurm --shards 16 --partition gpu --gpus-per-task 1 \\
        --timeout-min 240 --max-parallel 8
    python -m harness run smoke --executor local --shards 2      # the same path, local processes
    python -m harness status RUN_ID                              # which shards are done, running, failed
    python -m harness run --resume RUN_ID                        # resubmit what is not done

Layout: the run directory is made as usual, plus one directory per shard,

    results/<run_id>/shards/000/  run.json + its own tables (timings.csv, ...)
    results/<run_id>/submitit/     submitit's job files and logs (its own pickles: job
                                   state, never read by the report)

Shard k runs the cases whose position in the scenario's expansion is k modulo
the shard count (store.Run.cases). Each shard writes only inside its own
directory, so shards never write one file at once. A shard is a resumable run:
started again (after a failure, a pre-emption -- ShardJob is Checkpointable, so
Slurm requeues it -- or a kill), it runs only its missing cases. When every
shard is complete, their rows are merged, in the scenario's case order, into
the run directory's own tables, which then hold exactly the rows an in-process
run would.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from harness import scenario, sweep
from harness.cases import case_id, groups
from harness.errors import UsageError
from harness.store import Executor, ExecutorParams, Run, Submission, read_meta, read_rows

KINDS = ("local", "slurm")          # submitit's executors; "inprocess" (no shards) is the sweep itself
POLL_S = 0.5                        # seconds between looks at the shards' progress
SLURM_TIMEOUT_REQUEUES = 3          # submitit's max_num_timeout: requeues of a shard that hit its time limit
LOCAL_TIMEOUT_MIN = 60 * 24         # the local executor's time limit when --timeout-min is not given
SLURM_TIMEOUT_MIN = 60              # Slurm's, likewise
SLURM_MAX_PARALLEL = 256            # array parallelism when --max-parallel is not given


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

    def __call__(self, shard_dir: str) -> dict:
        d = Path(shard_dir)
        run, _ = sweep.run_sweep(None, quiet=True, resume=d)
        if run.meta.status != "complete":
            raise RuntimeError(f"shard {d.name} ended {run.meta.status}")
        return {"shard": d.name, "counts": run.meta.counts}

    def checkpoint(self, shard_dir: str):
        """Pre-empted or timed out on Slurm: requeue the same shard; it resumes from disk."""
        import submitit

        return submitit.helpers.DelayedSubmission(ShardJob(), shard_dir)


def check_executor(kind: str) -> None:
    """UsageError, before anything is created, when this machine cannot use submitit's `kind` executor."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UsageError("--executor needs submitit (pip install submitit)") from None
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: sbatch is not on this machine's PATH (use --executor local to test)")


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
    update = {"time": params.timeout_min or SLURM_TIMEOUT_MIN, "ntasks_per_node": 1,
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
    try:
        status = drive(run, quiet=quiet)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
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
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                print(f"shard {d.name} failed: {first[:300]}", file=sys.stderr)
    states = [shard_state(d) for d in shard_dirs(run.dir)]
    merge(run)
    return "complete" if all(s["status"] == "complete" for s in states) else "failed"


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
