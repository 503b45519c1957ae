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
the shard count. Each shard writes only inside its own directory, so shards
never write one file at once. A shard is a resumable run: started again (after
a failure, a pre-emption -- ShardJob is Checkpointable, so Slurm requeues it --
or a kill), it runs only its missing cases. When every shard is complete, their
rows are merged, in the scenario's case order, into the run directory's own
tables, which then hold exactly the rows an in-process run would.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from harness import scenario
from harness.cli import UsageError

EXECUTORS = ("inprocess", "local", "slurm")


def shard_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in (run_dir / "shards").glob("[0-9][0-9][0-9]") if (p / "run.json").is_file())


def create_shards(run, count: int) -> list[Path]:
    """One directory per shard, each a run of its own that --resume semantics can continue."""
    from harness import runner

    dirs = []
    for k in range(count):
        d = run.dir / "shards" / f"{k:03d}"
        d.mkdir(parents=True)
        meta = {**run.meta, "status": "pending", "shard": {"index": k, "count": count}, "counts": {},
                "gemm_peaks": []}
        meta.pop("executor", None)
        shard = runner.Run(run.results, run.scenario, d, meta, d / "benchmark.json")
        shard.start_tables()
        shard.save()
        dirs.append(d)
    return dirs


def shard_size(cases: int, shard: dict) -> int:
    """How many of `cases` cases fall to this shard: the positions k, k + n, k + 2n, ..."""
    return max(0, (cases - shard["index"] + shard["count"] - 1) // shard["count"])


def select(cases: list, shard: dict | None) -> list:
    if not shard:
        return cases
    return [c for i, c in enumerate(cases) if i % shard["count"] == shard["index"]]


class ShardJob:
    """What a submitit job runs: one shard, resumed from whatever it has on disk."""

    def __call__(self, shard_dir: str) -> dict:
        from harness import runner

        d = Path(shard_dir)
        run, _ = runner.run_sweep(None, d.parent.parent.parent, quiet=True, resume=d)
        if run.meta["status"] != "complete":
            raise RuntimeError(f"shard {d.name} ended {run.meta['status']}")
        return {"shard": d.name, "counts": run.meta["counts"]}

    def checkpoint(self, shard_dir: str):
        """Pre-empted or timed out on Slurm: requeue the same shard; it resumes from disk."""
        import submitit

        return submitit.helpers.DelayedSubmission(ShardJob(), shard_dir)


def make_executor(run_dir: Path, kind: str, params: dict):
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor needs submitit (pip install submitit)") from None
    folder = run_dir / "submitit"
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=params.get("timeout_min") or 60 * 24)
        return ex
    if shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: sbatch is not on this machine's PATH (use --executor local to test)")
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=3)
    update = {"time": params.get("timeout_min") or 60, "ntasks_per_node": 1,
              "array_parallelism": params.get("max_parallel") or 256}
    if params.get("partition"):
        update["partition"] = params["partition"]
    if params.get("gpus_per_task"):
        update["gpus_per_task"] = params["gpus_per_task"]
    ex.update_parameters(**update)
    return ex


def shard_state(d: Path) -> dict:
    try:
        meta = json.loads((d / "run.json").read_text())
    except (OSError, ValueError):
        return {"shard": d.name, "status": "unreadable", "done": 0, "cases": 0}
    # the size from arithmetic, not by expanding the scenario: drive() polls this twice a second
    return {"shard": d.name, "status": meta.get("status"), "done": sum(meta.get("counts", {}).values()),
            "cases": shard_size(meta["scenario"]["cases"], meta["shard"])}


def drive(run, quiet: bool = False) -> str:
    """Submit every shard that is not complete, wait, resubmit failures, merge. Returns the run status."""
    info = run.meta["executor"]
    retries = info["params"].get("retries", 2)
    ex = make_executor(run.dir, info["kind"], info["params"])
    for attempt in range(retries + 1):
        pending = [d for d in shard_dirs(run.dir) if shard_state(d)["status"] != "complete"]
        if not pending:
            break
        jobs = ex.map_array(ShardJob(), [str(d) for d in pending])
        info.setdefault("jobs", []).append({"attempt": attempt, "jobs": {d.name: j.job_id for d, j in
                                                                         zip(pending, jobs, strict=True)}})
        run.save()
        if not quiet:
            print(f"submitted {len(jobs)} shard(s) to {info['kind']} (attempt {attempt + 1} of {retries + 1}): "
                  + ", ".join(str(j.job_id) for j in jobs), file=sys.stderr)
        last = None
        while not all(j.done() for j in jobs):
            time.sleep(0.5)
            states = [shard_state(d) for d in pending]
            line = "  ".join(f"{s['shard']}:{s['done']}/{s['cases']}" for s in states)
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


def merge(run) -> None:
    """The shards' rows, in the scenario's case order, into the run directory's own tables."""
    from harness import runner

    order = {scenario.case_id(c): i for i, c in enumerate(scenario.expand(run.scenario))}
    dirs = shard_dirs(run.dir)
    for name, columns in run.tables.items():
        rows = [r for d in dirs for r in runner.read_complete_rows(d / name, columns)]
        rows.sort(key=lambda r: order.get(r["case_id"], len(order)))      # stable: a case's rows keep their order
        run.rewrite_table(name, rows)
    counts: dict[str, int] = {}
    peaks = []
    for d in dirs:
        meta = json.loads((d / "run.json").read_text())
        for k, v in meta.get("counts", {}).items():
            counts[k] = counts.get(k, 0) + v
        peaks += meta.get("gemm_peaks", [])
    run.meta["counts"] = counts
    run.meta["gemm_peaks"] = peaks


def cmd_status(args) -> int:
    from harness.runner import find_run

    d = find_run(Path(args.results), args.run)
    meta = json.loads((d / "run.json").read_text())
    total = meta.get("scenario", {}).get("cases", "?")
    print(f"{meta['run_id']}: {meta.get('status')}  ({sum(meta.get('counts', {}).values())} of {total} cases, "
          + ", ".join(f"{v} {k}" for k, v in sorted(meta.get("counts", {}).items())) + ")")
    info = meta.get("executor")
    if not info:
        print("  in-process run (no shards)")
        return 0
    jobs: dict[str, list] = {}
    for attempt in info.get("jobs", []):
        for shard, job in attempt["jobs"].items():
            jobs.setdefault(shard, []).append(str(job))
    print(f"  executor {info['kind']}, {info['shards']} shards")
    for s in (shard_state(p) for p in shard_dirs(d)):
        print(f"  shard {s['shard']}  {s['status']:11s} {s['done']:4d} of {s['cases']:4d} cases  "
              f"jobs: {', '.join(jobs.get(s['shard'], [])) or '-'}")
    return 0


def add_commands(sub) -> None:
    import argparse

    from harness.env import REPO

    p = sub.add_parser("status", help="a run's status, and its shards' (done, running, failed)",
                       epilog="example:\n  python -m harness status latest",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--results", default=str(REPO / "results"))
    p.set_defaults(func=cmd_status)
