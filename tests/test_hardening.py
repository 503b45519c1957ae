"""A disk that fills up, bad results paths, two writers, a grid too large to start, nan and inf.

Inputs nobody wrote by hand (hypothesis's fuzzing) are in test_fuzz.py.
"""
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import cli
from harness.config import scenario
from harness.core.errors import StoreError, UsageError
from harness.run import sweep
from harness.store import atomic
from harness.store.meta import read_meta
from harness.store.runs import read_rows

REPO = Path(__file__).resolve().parent.parent
def test_nan_and_inf_are_no_setting(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[[task]]\ntask = "adding"\nimpl = "torch-lstm"\nhidden = 4\nseq_len = 5\nclip = nan\n')
    with pytest.raises(UsageError, match=r"\[\[task\]\] #1, key 'clip': Input should be a finite number"):
        scenario.load(p)


# -- a grid too large to start -------------------------------------------------------------------------
def big(tmp_path) -> Path:
    axis = ", ".join(str(n) for n in range(1, 101))
    p = tmp_path / "big.toml"
    p.write_text(f'name = "big"\n[[throughput]]\nimpl = "dummy"\nhidden = [{axis}]\nseq_len = [{axis}]\n'
                 f'batch = [{axis}]\nphase = "train"\n')
    return p


def test_a_million_cases_are_refused_before_a_run_directory(tmp_path, capsys):
    p = big(tmp_path)
    assert cli.main(["run", str(p), "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == (f"error: {p}: 1,000,000 cases, more than 100,000: at least 75.0 h at 0.27 s a "
                                       "case; run it with --yes to start it anyway, or make the grid smaller\n")
    assert not (tmp_path / "r").exists()
    assert cli.main(["validate", str(p)]) == 0
    assert capsys.readouterr().out == f"ok: {p} (1000000 cases; more than 100000: run asks for --yes)\n"


def test_yes_starts_a_grid_over_the_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scenario, "MAX_CASES", 2)
    started = []
    monkeypatch.setattr(sweep, "run_sweep", lambda sc, *a, **k: started.append(len(scenario.expand(sc))) or 1 / 0)
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\n[[throughput]]\nimpl = "dummy"\nhidden = [4, 8, 16]\nseq_len = 2\nbatch = 1\n'
                 'phase = "train"\n')
    assert cli.main(["run", str(p), "--results", str(tmp_path / "r"), "--quiet"]) == 2
    assert "3 cases, more than 2" in capsys.readouterr().err and started == []
    with pytest.raises(ZeroDivisionError):                 # the sweep was started, with all three cases
        cli.main(["run", str(p), "--results", str(tmp_path / "r"), "--quiet", "--yes"])
    assert started == [3]


# -- results paths ------------------------------------------------------------------------------------------
TINY = 'name = "t"\n[defaults]\nthreads = 1\nrounds = 1\nwarmup = 0\n[[throughput]]\nimpl = "dummy"\nhidden = 4\n' \
       'seq_len = 2\nbatch = 1\nphase = "train"\nmemory = false\n'


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs at `path` (root only); skips the test where it cannot be mounted."""
    path.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("kind", ["file", "missing parent", pytest.param("read-only", marks=pytest.mark.mount)])
def test_a_results_path_that_cannot_be_written_is_one_line(tmp_path, capsys, kind):
    (tmp_path / "s.toml").write_text(TINY)
    if kind == "file":
        results = tmp_path / "a-file"
        results.write_text("x")
        message = f"error: --results {results}: is a file, not a directory\n"
    elif kind == "missing parent":
        results = tmp_path / "no" / "such" / "r"
        message = f"error: --results {results}: its parent {results.parent} does not exist\n"
    else:
        stack = contextlib.ExitStack()
        results = stack.enter_context(tmpfs(tmp_path / "ro", "ro,size=1m"))
        message = f"error: --results {results}: cannot write there: Read-only file system\n"
    try:
        assert cli.main(["run", str(tmp_path / "s.toml"), "--results", str(results)]) == 2
        assert capsys.readouterr().err == message
    finally:
        if kind == "read-only":
            stack.close()


# -- a full disk -----------------------------------------------------------------------------------------------
def harness(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.mount
def test_a_full_disk_stops_the_run_in_one_line_and_resume_completes(tmp_path, capsys):
    many = TINY.replace("hidden = 4", "hidden = [" + ", ".join(str(n) for n in range(1, 61)) + "]")
    (tmp_path / "s.toml").write_text(many)
    with tmpfs(tmp_path / "disk", "size=32k") as disk:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "s.toml"), "--results", str(disk), "--quiet"]) == 1
        err = capsys.readouterr().err.splitlines()
        lines = [ln for ln in err if ln.startswith("error:")]
        assert len(lines) == 1 and not any("Traceback" in ln for ln in err)
        run_dir = next(d for d in disk.iterdir() if (d / "run.json").exists() and not d.is_symlink())
        assert lines[0].startswith(f"error: {run_dir}/")                       # it names the file
        assert "cannot write: No space left on device; every row written before it is whole: free space, then " \
               f"python -m harness run --resume {run_dir.name}" in lines[0]
        warnings: list[str] = []
        before = read_rows(run_dir / "timings.csv", warnings)
        assert warnings == [] and 0 < len(before) < 60                          # every row before it is whole
        assert read_meta(run_dir).status in ("failed", "running")               # failed, where run.json could say
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)   # space is back
        assert cli.main(["run", "--resume", run_dir.name, "--results", str(disk), "--quiet"]) == 0
        rows = read_rows(run_dir / "timings.csv")
        assert sorted(int(r["hidden"]) for r in rows) == list(range(1, 61))     # every case exactly once
        assert read_meta(run_dir).status == "complete"


FILE_LIMIT = 16 * 1024    # bytes: RLIMIT_FSIZE of the child below; timings.csv passes it after about 20 of 60 rows


def file_size_limit(nbytes: int):
    """A child's preexec: no file may grow past `nbytes` (RLIMIT_FSIZE), and SIGXFSZ is ignored, so that a write past
    it fails with EFBIG as a full disk fails with ENOSPC. No root, no mount: it runs on any Linux machine."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return limit


@pytest.mark.subprocess
def test_a_write_that_fails_for_want_of_room_stops_the_run_in_one_line_and_resume_completes(tmp_path):
    """The full-disk promises without root: one line naming the file, every row before it whole, benchmark.json
    whole or absent (never truncated), and a resume that runs each case once."""
    many = TINY.replace("hidden = 4", "hidden = [" + ", ".join(str(n) for n in range(1, 61)) + "]")
    (tmp_path / "s.toml").write_text(many)
    results = tmp_path / "r"
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "s.toml"), "--results", str(results),
                          "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=file_size_limit(FILE_LIMIT))
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    run_dir = next(d for d in results.iterdir() if (d / "run.json").exists() and not d.is_symlink())
    assert lines[0].startswith(f"error: {run_dir}/") and "cannot write: File too large; every row written before " \
        f"it is whole: free space, then python -m harness run --resume {run_dir.name}" in lines[0]
    warnings: list[str] = []
    before = read_rows(run_dir / "timings.csv", warnings)
    assert warnings == [] and 0 < len(before) < 60
    assert not list(run_dir.glob(".*partial")) and not (run_dir / "benchmark.json").exists()   # never half there
    assert cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"]) == 0
    rows = read_rows(run_dir / "timings.csv")
    assert sorted(int(r["hidden"]) for r in rows) == list(range(1, 61))     # every case exactly once
    assert read_meta(run_dir).status == "complete"
    json.loads((run_dir / "benchmark.json").read_text())          # the resume writes the first one: whole


def test_a_failed_append_leaves_the_table_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    real = os.write

    def half(fd, data):                         # the disk fills after a few bytes of the row
        if len(data) > 3:
            real(fd, bytes(data[:3]))
            raise OSError(28, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(atomic.os, "write", half)
    with pytest.raises(StoreError, match=rf"^{path}: cannot write: No space left on device$"):
        atomic.append_whole(path, b"3,4\r\n5,6\r\n")
    assert path.read_bytes() == b"a,b\r\n1,2\r\n"


# -- two writers -------------------------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_a_second_writer_is_refused_and_a_killed_one_is_not(tmp_path, capsys):
    slow = TINY.replace("hidden = 4", "hidden = [4, 5, 6, 7, 8, 9]")
    (tmp_path / "s.toml").write_text(slow)
    results = tmp_path / "r"
    first = harness("run", str(tmp_path / "s.toml"), "--results", str(results), "--quiet",
                    env={"LSTM_BENCH_DUMMY_FAULT": "sleep:0.3"})
    deadline = time.time() + 60
    while not list(results.glob("*/timings.csv")) and time.time() < deadline:
        time.sleep(0.2)
    run_dir = next(d for d in results.iterdir() if not d.is_symlink())
    assert atomic.writer_pid(run_dir) == str(first.pid)
    capsys.readouterr()
    assert cli.main(["run", "--resume", run_dir.name, "--results", str(results)]) == 2
    assert capsys.readouterr().err == (
        f"error: run {run_dir.name} is being written by another process (pid {first.pid}; its lock is "
        f"{run_dir / '.lock'}): wait for it to end, or stop it and run --resume\n")
    assert cli.main(["report", run_dir.name, "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    assert f"warning: run {run_dir.name} is still running (pid {first.pid}): this report has the cases it has " \
           "finished so far" in capsys.readouterr().err
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert atomic.writer_pid(run_dir) is None                                    # the OS let the lock go
    # run.json still says running: wherever the run is read, it reads as interrupted, naming its last case
    gone = (rf"run {run_dir.name} says running, but no process writes it \(killed, or a full disk kept run.json from "
            rf"saying why\): it reads as interrupted, (after \d cases, the last dummy_cpu_b1_t2_h\d_train|before its "
            rf"first case finished)")
    assert read_meta(run_dir).status == "running"
    assert cli.main(["status", run_dir.name, "--results", str(results)]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].startswith(f"{run_dir.name}: interrupted  (") and re.match("  " + gone, status[1])
    assert cli.main(["report", run_dir.name, "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    assert re.search("warning: " + gone + f"; resume it with python -m harness run --resume {run_dir.name}",
                     capsys.readouterr().err)
    if read_rows(run_dir / "timings.csv"):                       # a case finished before the kill: compare says so
        assert cli.main(["compare", run_dir.name, run_dir.name, "--results", str(results)]) in (0, 1)
        assert len([ln for ln in capsys.readouterr().out.splitlines() if re.match("warning: " + gone, ln)]) == 2
    assert cli.main(["run", "--resume", run_dir.name, "--results", str(results), "--quiet"]) == 0
    assert re.match(gone + ": resuming it$", capsys.readouterr().out.splitlines()[0])
    rows = read_rows(run_dir / "timings.csv")
    assert sorted(int(r["hidden"]) for r in rows) == list(range(4, 10))         # never two of one case


def test_the_lock_refuses_a_second_holder_in_one_process(tmp_path):
    fd = atomic.take_lock(tmp_path)
    try:
        with pytest.raises(UsageError, match=f"is being written by another process \\(pid {os.getpid()};"):
            atomic.take_lock(tmp_path)
    finally:
        os.close(fd)
    os.close(atomic.take_lock(tmp_path))
