"""Nothing lost, nothing cryptic: bad input, memory, failures, SIGKILL, SIGINT, resume, concurrency."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import cli
from harness.config import scenario
from harness.report.render import render
from harness.run import sweep
from harness.store.runs import Run

REPO = Path(__file__).resolve().parent.parent

SLOW = """
name = "slow"
[defaults]
threads = 1
rounds = 2
warmup = 0
[[throughput]]
impl = "dummy"
hidden = [4, 5, 6, 7]
seq_len = [2, 3]
batch = 1
phase = "train"
[[gradients]]
impl = "dummy"
hidden = [4, 5]
seq_len = 3
seeds = 1
[[task]]
task = "adding"
impl = "dummy"
hidden = 4
seq_len = 3
batch = 2
steps = 2
eval_every = 1
eval_size = 2
"""
SLOW_CASES = 8 + 2 + 1


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def harness(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,args,message", [
    ('name = "x"\n[defaults\n', None, "TOML syntax error: "),
    ('name = "x"\n[[throughput]]\nimpl = "dummy"\nhiden = 4\nhidden = 4\nseq_len = 2\nbatch = 1\n', None,
     "[[throughput]] #1, key 'hiden': unknown key; did you mean 'hidden'?"),
    ('name = "x"\n[[throughput]]\nimpl = "lstm"\nhidden = 4\nseq_len = 2\nbatch = 1\n', None,
     "key 'impl': unknown implementation 'lstm'; allowed: scratch-lstm,"),
    ('name = "x"\n[[gradients]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\ninit = "xavier"\n', None,
     "[[gradients]] #1, key 'init': Input should be 'pytorch', 'seed', 'd2l', 'orthogonal' or 'identity', "
     "not 'xavier'"),
    ('name = "x"\n[[task]]\ntask = "parity"\nimpl = "dummy"\nhidden = 4\nseq_len = 2\n', None,
     "[[task]] #1, key 'task': Input should be 'adding' or 'copy', not 'parity'"),
    ('name = "x"\n[[throughput]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\nbatch = [1, 1]\n', None,
     "[[throughput]] #1, key 'batch': duplicate value 1"),
    ('name = "x"\n[defaults]\nrounds = "sometimes"\n[[throughput]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\n'
     'batch = 1\n', None, """[defaults], key 'rounds': must be a positive integer or "auto", not 'sometimes'"""),
    ('name = "x"\n[[throughput]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\nbatch = 1\nmax_time_s = 0\n', None,
     "[[throughput]] #1, key 'max_time_s': Input should be greater than 0"),
    ('name = "x"\n[[throughput]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\nbatch = 1\ninterleave = "no"\n', None,
     "[[throughput]] #1, key 'interleave': Input should be a valid boolean (true or false), not 'no'"),
    (None, ["run", "missing.toml"], "missing.toml: no such scenario file"),
    (None, ["run", "--resume", "nope"], "unknown run id 'nope'"),
    (None, ["run", "smoke", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, args, message):
    results = tmp_path / "results"
    if text is not None:
        args = ["run", str(write(tmp_path, text))]
    with pytest.raises(SystemExit) if "--bogus" in args else _nothing() as exc:
        code = cli.main([*args, "--results", str(results)])
    code = exc.value.code if exc is not None and hasattr(exc, "value") else code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not results.exists() or not any(results.iterdir())


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


@pytest.mark.subprocess
def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    p = harness("run", str(write(tmp_path, 'name = "x"\n[[throughput]]\nimpl = 3\n')), "--results", str(tmp_path / "r"))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# -- memory ---------------------------------------------------------------------------------------
def test_preflight_skips_what_cannot_fit(tmp_path):
    sc = scenario.load(write(tmp_path, """
        name = "huge"
        [defaults]
        threads = 1
        rounds = 1
        warmup = 0
        [[throughput]]
        impl = "fused-lstm"
        hidden = 65536
        seq_len = 100000
        batch = 4096
        phase = "train"
    """))
    run, out = sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    [row] = out
    assert row["status"] == "skipped" and "by the preflight estimate, but only" in row["reason"]
    assert "TiB" not in row["reason"] and "GiB" in row["reason"]


def test_failed_allocation_is_oom_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_BENCH_DUMMY_FAULT", "oom")
    sc = scenario.load(write(tmp_path, SLOW))
    run, out = sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    assert [r["status"] for r in out] == ["oom"] * 8
    assert out[0]["reason"].startswith("RuntimeError: DefaultCPUAllocator: can't allocate memory")
    assert run.meta.counts == {"oom": SLOW_CASES} and run.meta.status == "complete"
    assert [r["status"] for r in rows(run.dir / "decay.csv")] == ["oom", "oom"]


def test_other_errors_are_failed_with_their_first_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSTM_BENCH_DUMMY_FAULT", "error")
    code = cli.main(["run", str(write(tmp_path, SLOW)), "--results", str(tmp_path / "r"), "--quiet"])
    assert code == 1                                        # some cases failed
    timings = rows(tmp_path / "r" / "latest" / "timings.csv")
    assert {(r["status"], r["reason"]) for r in timings} == {("failed", "ValueError: injected fault")}


# -- interruption and resume ------------------------------------------------------------------------
def wait_for_rows(path, n, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.is_file() and len(rows(path)) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("no rows in time")


def only_run(results):
    [d] = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()]
    return d


@pytest.mark.subprocess
def test_sigkill_keeps_finished_rows_and_resume_completes_without_duplicates(tmp_path):
    results = tmp_path / "r"
    p = harness("run", str(write(tmp_path, SLOW)), "--results", str(results), "--quiet",
                env={"LSTM_BENCH_DUMMY_FAULT": "sleep:0.15"})
    run_dir = None
    try:
        t0 = time.time()
        while run_dir is None and time.time() - t0 < 60:
            time.sleep(0.05)
            if results.is_dir() and any(d.is_dir() and not d.is_symlink() for d in results.iterdir()):
                run_dir = only_run(results)
        wait_for_rows(run_dir / "timings.csv", 3, p)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        p.kill()
    before = rows(run_dir / "timings.csv")
    assert 3 <= len(before) < 8 and all(r["status"] == "ok" and r["case_id"] for r in before)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    # a half-written trailing line, as a kill in mid-write would leave
    with open(run_dir / "timings.csv", "a") as f:
        f.write(before[0]["run_id"] + ",slow,dummy,lstm,nat")
    code = cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"])
    assert code == 0
    after = rows(run_dir / "timings.csv")
    ids = [r["case_id"] for r in after]
    assert len(after) == 8 and len(set(ids)) == 8
    assert [r["finished_utc"] for r in after[: len(before)]] == [r["finished_utc"] for r in before]
    assert len(rows(run_dir / "decay.csv")) == 2 and len({r["case_id"] for r in rows(run_dir / "training.csv")}) == 1
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["counts"] == {"ok": SLOW_CASES} and len(meta["resumed_utc"]) == 1
    # nothing left to do: a second resume adds no row
    assert cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"]) == 0
    assert len(rows(run_dir / "timings.csv")) == 8


@pytest.mark.subprocess
def test_sigterm_stops_after_the_current_case(tmp_path):
    """The SIGTERM that Slurm sends before killing a cancelled or pre-empted job, handled like Ctrl-C
    (whose first press the next test sees stop gracefully too)."""
    results = tmp_path / "r"
    p = harness("run", str(write(tmp_path, SLOW)), "--results", str(results), "--quiet",
                env={"LSTM_BENCH_DUMMY_FAULT": "sleep:0.15"})
    try:
        t0 = time.time()
        while not (results / "latest").exists() and time.time() - t0 < 60:
            time.sleep(0.05)
        run_dir = (results / "latest").resolve()
        wait_for_rows(run_dir / "timings.csv", 2, p)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and f"--resume {run_dir.name}" in out
    assert "SIGTERM: stopping after this comparison group or case (SIGTERM again to stop now)" in out
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    done = rows(run_dir / "timings.csv")
    assert 2 <= len(done) < 8 and all(r["status"] == "ok" for r in done)
    assert cli.main(["run", "--resume", "latest", "--results", str(results), "--quiet"]) == 0
    assert len(rows(run_dir / "timings.csv")) == 8


@pytest.mark.subprocess
def test_a_second_sigint_stops_at_once_and_leaves_valid_files(tmp_path):
    results = tmp_path / "r"
    p = harness("run", str(write(tmp_path, SLOW)), "--results", str(results), "--quiet",
                env={"LSTM_BENCH_DUMMY_FAULT": "sleep:1.0"})
    try:
        t0 = time.time()
        while not (results / "latest").exists() and time.time() - t0 < 60:
            time.sleep(0.05)
        run_dir = (results / "latest").resolve()
        wait_for_rows(run_dir / "timings.csv", 1, p)
        p.send_signal(signal.SIGINT)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        t1 = time.time()
        out, err = p.communicate(timeout=60)
        assert time.time() - t1 < 5                       # at once, not after the case's remaining seconds
    finally:
        p.kill()
    assert p.returncode == 130, (out, err)
    assert "Ctrl-C: stopping after this comparison group or case (Ctrl-C again to stop now)" in out
    assert "Traceback" not in err, err
    meta = json.loads((run_dir / "run.json").read_text())    # valid JSON
    assert meta["status"] == "interrupted"
    done = rows(run_dir / "timings.csv")
    assert len(done) >= 1 and all(r["case_id"] and r["status"] == "ok" for r in done)


@pytest.mark.subprocess
def test_two_runs_at_once_get_two_directories(tmp_path):
    results = tmp_path / "r"
    sc = write(tmp_path, 'name = "c"\n[defaults]\nthreads = 1\nrounds = 1\nwarmup = 0\n[[throughput]]\n'
                         'impl = "dummy"\nhidden = 4\nseq_len = 2\nbatch = 1\nphase = "train"\n')
    procs = [harness("run", str(sc), "--results", str(results), "--quiet") for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    dirs = [d for d in results.iterdir() if d.is_dir() and not d.is_symlink()]
    assert len(dirs) == 2 and all(len(rows(d / "timings.csv")) == 1 for d in dirs)
    assert (results / "latest").resolve() in [d.resolve() for d in dirs]
    assert not [p for p in results.iterdir() if p.name.startswith(".latest")]


# -- broken results ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slow_results(tmp_path_factory):
    """One finished SLOW run, for the tests that break a copy of it."""
    tmp = tmp_path_factory.mktemp("slow")
    run, _ = sweep.run_sweep(scenario.load(write(tmp, SLOW)), tmp / "r", quiet=True)
    return tmp / "r", run.run_id


def copy_of(slow_results, tmp_path):
    results, run_id = slow_results
    shutil.copytree(results, tmp_path / "r", symlinks=True)
    return Run.open(tmp_path / "r" / run_id)


def test_report_skips_a_corrupted_csv_line_and_names_it(tmp_path, capsys, slow_results):
    run = copy_of(slow_results, tmp_path)
    path = run.dir / "timings.csv"
    lines = path.read_text().splitlines()
    lines.insert(3, "garbage,\x00\x01,not a row")
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])        # and a truncated last line
    out = render(run.run_id, tmp_path / "r", tmp_path / "rep", strict=True)
    err = capsys.readouterr().err
    assert f"{path}:4: skipped a broken line" in err and f"{path}:10: skipped a broken line" in err
    page = (out / "index.html").read_text()
    assert "skipped a broken line" in page and '<table id="claims"' in page


def test_report_reads_an_interrupted_run(tmp_path, slow_results):
    run = copy_of(slow_results, tmp_path)
    meta = json.loads((run.dir / "run.json").read_text())
    meta["status"] = "interrupted"
    (run.dir / "run.json").write_text(json.dumps(meta))
    (run.dir / "training.csv").unlink()
    out = render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)
    assert "interrupted" in (out / "index.html").read_text()
