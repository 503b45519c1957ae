"""Shards through submitit's local executor: the same rows as in-process, and resumable."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cli
from harness.config import scenario
from harness.config.cases import case_id, groups
from harness.run import shards, sweep
from harness.store.meta import Executor, ExecutorParams, Shard, Submission
from harness.store.runs import Run, select

REPO = Path(__file__).resolve().parent.parent
KEYS = {"timings.csv": ["case_id", "impl", "phase", "dtype", "batch", "seq_len", "hidden", "status", "reason",
                        "backend", "params", "flops"],
        "gradients.csv": ["case_id", "impl", "wrt", "step", "distance", "seed", "status", "task", "train_step"],
        "decay.csv": ["case_id", "impl", "wrt", "seeds", "status"],
        "training.csv": ["case_id", "task", "impl", "step", "status"]}


def table(path, keys):
    with open(path, newline="") as f:
        return [tuple(r[k] for k in keys) for r in csv.DictReader(f)]


@pytest.mark.subprocess
def test_two_local_shards_give_the_rows_of_an_in_process_run(tmp_path, capsys):
    assert cli.main(["run", "smoke", "--executor", "local", "--shards", "2", "--results", str(tmp_path / "s"),
                     "--quiet"]) == 0
    sharded = (tmp_path / "s" / "latest").resolve()
    plain, _ = sweep.run_sweep(scenario.load("smoke"), tmp_path / "p", quiet=True)
    for name, keys in KEYS.items():
        a, b = table(sharded / name, keys), table(plain.dir / name, keys)
        assert a == b and len(a) > 0, name
    meta = json.loads((sharded / "run.json").read_text())
    assert meta["status"] == "complete" and meta["counts"] == {"ok": 11, "skipped": 2}
    assert [d.name for d in shards.shard_dirs(sharded)] == ["000", "001"]
    states = [shards.shard_state(d) for d in shards.shard_dirs(sharded)]
    assert [(s["status"], s["done"], s["cases"]) for s in states] == [("complete", 7, 7), ("complete", 6, 6)]
    capsys.readouterr()
    assert cli.main(["status", sharded.name, "--results", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "executor local, 2 shards" in out and "shard 001  complete       6 of    6 cases" in out


def test_shards_partition_the_cases():
    cases = scenario.expand(scenario.load("quick"))
    parts = [select(cases, Shard(index=k, count=3)) for k in range(3)]
    assert sorted(case_id(c) for p in parts for c in p) == sorted(case_id(c) for c in cases)
    assert [len(p) for p in parts] == [142, 139, 133]    # 32 groups of 9, 12 of 4, 1 of 6, 3 of 3, 63 single cases
    for g in groups(cases):                             # a comparison group is never split between shards
        assert sum(all(c in p for c in g) for p in parts) == 1


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli.main(["run", "smoke", "--executor", "slurm", "--results", str(tmp_path / "r")]) == 2
    assert "sbatch is not on this machine's PATH" in capsys.readouterr().err


def test_slurm_executor_gets_the_command_lines_parameters(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("sbatch", "srun"):                                  # present on PATH; never run here
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    params = ExecutorParams(partition="gpu", gpus_per_task=1, timeout_min=240, max_parallel=8)
    ex = shards.make_executor(tmp_path / "run", "slurm", params)
    assert ex.folder == (tmp_path / "run" / "submitit").absolute() and ex.max_num_timeout == 3
    assert {k: ex.parameters[k] for k in ("partition", "gpus_per_task", "time", "array_parallelism",
                                          "ntasks_per_node")} == {"partition": "gpu", "gpus_per_task": 1, "time": 240,
                                                                  "array_parallelism": 8, "ntasks_per_node": 1}
    bare = shards.make_executor(tmp_path / "run", "slurm", ExecutorParams())
    assert bare.parameters["time"] == 60 and bare.parameters["array_parallelism"] == 256
    assert "partition" not in bare.parameters and "gpus_per_task" not in bare.parameters


SLOW = """
name = "slow-shards"
[defaults]
threads = 1
rounds = 2
warmup = 0
[[throughput]]
impl = "dummy"
hidden = [4, 5, 6, 7, 8, 9]
seq_len = 2
batch = 1
phase = "train"
"""


@pytest.mark.subprocess
def test_a_shard_killed_midway_is_resumed(tmp_path):
    sc = tmp_path / "slow.toml"
    sc.write_text(SLOW)
    results = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "harness", "run", str(sc), "--executor", "local", "--shards", "2",
                          "--results", str(results), "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         env={**os.environ, "LSTM_BENCH_DUMMY_FAULT": "sleep:0.3"})
    try:
        deadline = time.time() + 120
        run_dir = None
        while time.time() < deadline:
            if (results / "latest").exists():
                run_dir = (results / "latest").resolve()
                t = run_dir / "shards" / "000" / "timings.csv"
                if t.is_file() and len(t.read_text().splitlines()) >= 2:
                    break
            assert p.poll() is None, p.communicate()
            time.sleep(0.1)
        os.killpg(p.pid, signal.SIGKILL)                  # the coordinator and its shard processes
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    states = [shards.shard_state(d) for d in shards.shard_dirs(run_dir)]
    assert any(s["status"] != "complete" for s in states)
    assert cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"]) == 0
    rows = table(run_dir / "timings.csv", ["case_id", "status"])
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6 and {r[1] for r in rows} == {"ok"}
    for d in shards.shard_dirs(run_dir):
        ids = [r[0] for r in table(d / "timings.csv", ["case_id"])]
        assert len(ids) == 3 and len(set(ids)) == 3          # no duplicate row inside a shard either
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and len(meta["executor"]["jobs"]) >= 2


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_bad_shard_count(tmp_path, capsys, bad):
    assert cli.main(["run", "smoke", "--executor", "local", "--shards", bad, "--results", str(tmp_path)]) == 2
    assert "--shards must be a positive integer" in capsys.readouterr().err


def fake_squeue(tmp_path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "squeue").write_text("#!/bin/sh\n" + script)
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_slurm_states_read_squeue_arrays_and_call_what_it_no_longer_lists_finished(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, "printf '12_[1-2,4]|PENDING\\n12_0|RUNNING\\n13|CANCELLED\\n"
                                       "garbage line\\n99_3|RUNNING\\n'\n")
    got = shards.slurm_states(["12_0", "12_1", "12_2", "12_3", "12_4", "13", "14"])
    assert got == {"12_0": "RUNNING", "12_1": "PENDING", "12_2": "PENDING", "12_3": "FINISHED", "12_4": "PENDING",
                   "13": "CANCELLED", "14": "FINISHED"}
    assert shards.slurm_states([]) == {}


def test_slurm_states_are_unknown_when_squeue_fails(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
    assert shards.slurm_states(["5_0", "6"]) == {"5_0": "UNKNOWN", "6": "UNKNOWN"}


def test_status_names_each_shards_slurm_state(tmp_path, capsys, monkeypatch):
    results = tmp_path / "r"
    run = Run.create(results, scenario.load("smoke"))
    run.meta.executor = Executor(kind="slurm", shards=2, params=ExecutorParams(),
                                       jobs=[Submission(attempt=0, jobs={"000": "7_0", "001": "7_1"}),
                                             Submission(attempt=1, jobs={"000": "9_0"})])
    for k in range(2):
        run.new_shard(k, 2)
    run.save()
    fake_squeue(tmp_path, monkeypatch, "printf '9_0|RUNNING\\n7_1|TIMEOUT\\n'\n")
    assert cli.main(["status", run.run_id, "--results", str(results)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  shard")]
    assert lines == ["  shard 000  pending        0 of    7 cases  jobs: 7_0, 9_0  slurm RUNNING",
                     "  shard 001  pending        0 of    6 cases  jobs: 7_1  slurm TIMEOUT"]


@pytest.mark.parametrize(("minutes", "delay"), [(1, 30), (2, 60), (3, 90), (240, 90)])
def test_slurm_warns_a_shard_before_its_limit_never_past_half_of_it(minutes, delay):
    assert shards.signal_delay_s(minutes) == delay


def test_submitit_log_goes_to_the_run_not_the_terminal(tmp_path, capsys):
    import logging

    import submitit  # noqa: F401 -- configures submitit's logger, as in a real run

    log = tmp_path / "submitit" / "coordinator.log"
    with shards.submitit_log(log):
        logging.getLogger("submitit").warning("Bypassing sacct error, status may be inaccurate.")
    captured = capsys.readouterr()
    assert "Bypassing" not in captured.err + captured.out
    assert log.read_text().endswith("WARNING Bypassing sacct error, status may be inaccurate.\n")
    assert [type(h).__name__ for h in logging.getLogger("submitit").handlers] == ["StreamHandler", "StreamHandler"]


def test_a_failed_shard_is_named_by_the_exception_its_job_raised():
    trace = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent "
             "call last):\n  File \"x.py\", line 1, in <module>\nRuntimeError: shard 000 ended interrupted\n"
             "----------------------\nYou can check full logs with 'job.stderr(0)'\n  - /r/submitit/11_0_0_log.err\n")
    assert shards.why_failed(RuntimeError(trace)) == "RuntimeError: shard 000 ended interrupted"
    assert shards.why_failed(OSError("submitit could not read\nthe result file")) == "the result file"
    assert shards.why_failed(ValueError()) == "ValueError"
