"""Through a real Slurm cluster: `make test-slurm` starts one on this machine
(scripts/slurm-local.sh), runs these, and stops it. Plain `make test` deselects
them (the `slurm` marker); without a cluster they skip, with the reason."""
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
from harness.run import shards, sweep

pytestmark = [pytest.mark.slurm, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parent.parent
PARTITION = "debug"              # scripts/slurm-local.sh's one partition
WAIT_S = 300                     # the longest any of these waits on the cluster
SLOW = """
name = "slow-slurm"
[defaults]
threads = 1
rounds = 2
warmup = 0
[[throughput]]
impl = "dummy"
hidden = [{hidden}]
seq_len = 2
batch = 1
phase = "train"
"""
# The dummy sleeps SLEEP_S per forward; a case makes about 4 forwards (memory, profile, 2 rounds).
SLEEP_S = 0.75


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def slow_scenario(tmp_path, cases: int) -> Path:
    p = tmp_path / "slow.toml"
    p.write_text(SLOW.format(hidden=", ".join(str(4 + k) for k in range(cases))))
    return p


def coordinator(sc: Path, results: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(sc), "--executor", "slurm",
                             "--partition", PARTITION, "--results", str(results), "--quiet", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LSTM_BENCH_DUMMY_FAULT": f"sleep:{SLEEP_S}"})


def wait_until(p: subprocess.Popen, ready, what: str):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        if (found := ready()) is not None:
            return found
        assert p.poll() is None, (what, p.communicate())
        time.sleep(0.2)
    p.kill()
    pytest.fail(f"no {what} within {WAIT_S} s")


def jobs_of(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "run.json").read_text())["executor"]["jobs"]


def test_sharded_smoke_on_slurm_gives_the_in_process_rows_and_no_submitit_noise(tmp_path, capsys):
    assert cli.main(["run", "smoke", "--executor", "slurm", "--shards", "2", "--partition", PARTITION,
                     "--results", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "submitit WARNING" not in err and "sacct" not in err and "accounting" not in err, err
    run_dir = (tmp_path / "s" / "latest").resolve()
    plain, _ = sweep.run_sweep(scenario.load("smoke"), tmp_path / "p", quiet=True)
    keys = ["case_id", "impl", "phase", "dtype", "batch", "seq_len", "hidden", "status", "reason", "params", "flops"]
    for name in ("timings.csv", "gradients.csv", "decay.csv", "training.csv"):
        a = [tuple(r.get(k) for k in keys) for r in rows(run_dir / name)]
        b = [tuple(r.get(k) for k in keys) for r in rows(plain.dir / name)]
        assert a == b and len(a) > 0, name
    assert json.loads((run_dir / "run.json").read_text())["counts"] == {"ok": 11, "skipped": 2}
    capsys.readouterr()
    assert cli.main(["status", run_dir.name, "--results", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out.splitlines()
    ids = jobs_of(run_dir)[0]["jobs"]
    assert [line for line in out if line.startswith("  shard")] == [
        f"  shard 000  complete       7 of    7 cases  jobs: {ids['000']}  slurm COMPLETED",
        f"  shard 001  complete       6 of    6 cases  jobs: {ids['001']}  slurm COMPLETED"]


def test_a_shard_cancelled_with_scancel_is_resubmitted_by_resume(tmp_path, capsys):
    results = tmp_path / "r"
    p = coordinator(slow_scenario(tmp_path, 8), results, "--shards", "2", "--retries", "0")
    run_dir = wait_until(p, lambda: (results / "latest").resolve() if (results / "latest").exists() else None,
                         "run directory")
    shard = run_dir / "shards" / "000"
    wait_until(p, lambda: True if (shard / "timings.csv").is_file() and rows(shard / "timings.csv") else None,
               "first row of shard 000")
    job = jobs_of(run_dir)[0]["jobs"]["000"]
    subprocess.run(["scancel", job], check=True)          # SIGTERM to the shard, then SIGKILL after KillWait
    out, err = p.communicate(timeout=WAIT_S)
    assert p.returncode == 1, (out, err)
    assert "some shards are not complete" in out and "Traceback" not in err, (out, err)
    assert f"shard 000 failed: RuntimeError: shard 000 ended interrupted (log: {run_dir}/submitit/" in err, err
    assert "submitit WARNING" not in err and "submitit ERROR" not in err, err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    done = rows(shard / "timings.csv")
    assert 1 <= len(done) < 4
    capsys.readouterr()
    assert cli.main(["status", run_dir.name, "--results", str(results)]) == 0
    status = capsys.readouterr().out
    assert f"jobs: {job}  slurm CANCELLED" in status, status

    env = {"LSTM_BENCH_DUMMY_FAULT": f"sleep:{SLEEP_S}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"]) == 0
    merged = rows(run_dir / "timings.csv")
    ids = [r["case_id"] for r in merged]
    assert len(ids) == 8 and len(set(ids)) == 8 and {r["status"] for r in merged} == {"ok"}
    assert [r["finished_utc"] for r in rows(shard / "timings.csv")][: len(done)] == [r["finished_utc"] for r in done]
    assert len(jobs_of(run_dir)) == 2                     # the first submission, and resume's


def lift_requeue_hold() -> None:
    """Slurm holds a requeued job for two minutes (its BeginTime); start it now instead."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=PENDING", "--format=%i|%r"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        jid, _, reason = line.partition("|")
        if reason.strip() == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={jid.strip()}", "StartTime=now"], capture_output=True)


def test_a_shard_past_its_time_limit_is_requeued_and_finishes(tmp_path):
    # 2 minutes: Slurm warns the shard 60 s before the limit (shards.signal_delay_s), up to 30 s early
    # (slurmctld's resolution), so a shard of about 70 s of cases is warned at least once, and each start
    # gets 30 s or more of cases done. --retries 0: only the requeue can finish it.
    assert shards.signal_delay_s(2) == 60
    results = tmp_path / "r"
    p = coordinator(slow_scenario(tmp_path, 22), results, "--shards", "1", "--timeout-min", "2", "--retries", "0")
    try:
        while p.poll() is None:
            lift_requeue_hold()
            time.sleep(1)
        out, err = p.communicate(timeout=WAIT_S)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    assert p.returncode == 0, (out, err)
    run_dir = (results / "latest").resolve()
    submissions = jobs_of(run_dir)
    assert len(submissions) == 1                          # no resubmission: the same job, requeued
    log = "".join(f.read_text() for f in sorted((run_dir / "submitit").glob("*_log.out")))
    assert "Requeued job" in log and log.count("Starting with JobEnvironment") >= 2, log
    done = rows(run_dir / "timings.csv")
    ids = [r["case_id"] for r in done]
    assert len(ids) == 22 and len(set(ids)) == 22 and {r["status"] for r in done} == {"ok"}
