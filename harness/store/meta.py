"""run.json, declared once: every key a run's record holds, and the one reader of it.

    meta = read_meta(run_dir)        # RunMeta, or UsageError in one line naming the file

RunMeta is the result file's shape: the format, the harness version, the resolved scenario,
the environment (env.environment()), the git commit, the start and end times (UTC), the
measured GEMM peaks, the case counts and the status. A run.json of another format, or one
that does not validate, is refused in one line that names the file. runs.py writes it.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.errors import UsageError
from harness.store.columns import RUN_STATUSES

FORMAT = 4               # run.json's "format": bumped whenever a file of the run directory changes shape
# 1: no rounds.csv, throughput cases timed one block each; 2: comparison groups, rounds.csv, ratio columns;
# 3: a GEMM peak per library (GemmPeak.library, .blas), and timings' gemm, gemm_peak_library and shape_peak_*
# 4: timings' error columns (numerics, out_err, grad_err, err_tol, err_ref, err_reason): blank in older runs
READS = (2, 3, 4)           # the formats this harness reads: a format-2 run's one peak per (device, dtype) is aten's

# -- run.json, declared once ----------------------------------------------------------------------
class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Git(_Declared):
    commit: str                    # the harness checkout's HEAD, or "unknown" outside git
    dirty: bool                    # tracked files differ from that commit


class GemmPeak(_Declared):
    device: str                    # as in the scenario: cpu, cuda, cuda:N
    device_name: str               # env.device_name(device)
    dtype: str                     # float32, ...
    threads: int                   # torch intra-op threads while measuring
    gemm_size: int                 # n of the n x n x n matmul
    gemm_peak_gflops_per_s: float  # best of `reps`: the ceiling of peak_fraction
    gemm_median_gflops_per_s: float  # the median of the same reps
    reps: int                      # timed matmuls, after one warm-up
    tf32: bool | None = None       # CUDA: the TF32 flags it ran under (the cases' own); None on CPU
    library: str = "aten"          # the GEMM library it measured (implementations/gemm.py); format 2: aten
    blas: str | None = None        # aten's BLAS on a CPU (mkl, openblas: the build's), cublas on CUDA


class Shard(_Declared):
    index: int                     # this shard holds the cases at positions index, index + count, ...
    count: int                     # of the scenario's expansion


class ExecutorParams(_Declared):
    partition: str | None = None   # Slurm partition
    gpus_per_task: int | None = None  # Slurm --gpus-per-task
    timeout_min: int | None = None  # per-shard time limit, minutes
    max_parallel: int | None = None  # Slurm array parallelism
    retries: int = 2               # resubmissions of a failed shard


class Submission(_Declared):
    attempt: int                   # 0 for the first submission
    jobs: dict[str, str]           # shard name (000, ...) -> submitit job id


class Executor(_Declared):
    kind: Literal["local", "slurm"]  # submitit's LocalExecutor or SlurmExecutor
    shards: int                    # how many shards the cases were split into
    params: ExecutorParams         # as given on the command line
    jobs: list[Submission] = []    # every submission, in order


class RunMeta(_Declared):
    """run.json. Every key is declared here; a file with another key, or without `format`, is refused."""

    format: Literal[READS] = FORMAT  # the layout of the whole run directory (FORMAT; an older one: READS)
    harness_version: str           # lstm-bench's version that wrote the run (env.VERSION)
    run_id: str                    # the directory's name
    status: Literal[RUN_STATUSES]  # pending (a shard not started), running, complete, interrupted, failed
    scenario: dict[str, Any]       # scenario.resolved(): every default filled in, plus "cases"; --resume reads it
    environment: dict[str, Any]    # env.environment(): versions, CPU, GPU, threads, host
    git: Git                       # the harness's own checkout
    argv: list[str]                # the command line that started the run
    started_utc: str               # ISO 8601, UTC
    finished_utc: str | None = None  # when the last (re)start ended
    resumed_utc: list[str] = []    # when each --resume began
    gemm_peaks: list[GemmPeak] = []  # the measured ceilings, one per (device, dtype, threads)
    counts: dict[str, int] = {}    # cases finished, by status (STATUSES)
    wall_s: float | None = None    # seconds, all (re)starts together
    time_spent_s: dict[str, float] = {}  # seconds by activity (timing, memory, peaks, build, ...)
    overhead_fraction: float | None = None  # share of wall_s not spent measuring
    error: str | None = None       # why a failed run stopped (a file it could not write), where it could say
    shard: Shard | None = None     # set in a shard's own run.json (results/<run_id>/shards/NNN/)
    executor: Executor | None = None  # set in a sharded run's run.json


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_meta(run_dir: Path) -> RunMeta:
    """run.json of `run_dir`; UsageError (one line, naming the file) when it is not a run of a format in READS."""
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable run.json ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") not in READS:
        found = data.get("format") if isinstance(data, dict) else None
        raise UsageError(f"{path}: run format {found!r}, but this harness reads formats "
                         f"{', '.join(map(str, READS))} only (written by another version of lstm-bench)")
    try:
        return RunMeta.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"])     # never empty: RunMeta has no model-wide validator
        raise UsageError(f"{path}: key {key!r}: {err['msg']}") from None
