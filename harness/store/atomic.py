"""The run's files on disk, written so that nothing is ever half there.

- atomic_write_text: a whole file replaced at once (a temporary file, fsync, rename);
- finish_file: the same for a file another library wrote beside its place (benchmark.json);
- append_whole: rows appended in full or not at all (cut back to the old end on failure);
- take_lock / writer_pid: one writer per run directory, by flock on its `.lock`, which the
  OS releases when the process dies, so a killed run can be resumed at once;
- check_results: a results directory a run can be written in, or one line saying why not.

A write that fails raises errors.StoreError naming the file (cli: one line, exit 1).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from harness.core.errors import StoreError, UsageError


def cannot_write(path: Path, exc: OSError) -> StoreError:
    """The one line a failed write gives: the file, and why."""
    return StoreError(f"{path}: cannot write: {exc.strerror or exc}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, fsync, then rename: the old file stays whole
    if anything fails (StoreError, naming the file)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise


def finish_file(written: Path, path: Path) -> None:
    """A file another library wrote (`written`, beside `path`) fsynced and renamed into place: `path` is whole,
    or as it was (OSError)."""
    fd = os.open(written, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(written, path)


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` in full, fsynced, or not at all: a write that fails (a full disk) is cut back to
    the file's old end, so a table never holds part of a row (StoreError, naming the file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise cannot_write(path, exc) from None
    finally:
        os.close(fd)


LOCK = ".lock"   # in a run directory: held (flock) by the one process writing the run; the OS drops it at exit


def take_lock(run_dir: Path) -> int:
    """Hold run_dir's lock for this process (the fd to keep open), or UsageError naming who holds it."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UsageError(f"run {run_dir.name} is being written by another process (pid {holder}; its lock is "
                         f"{run_dir / LOCK}): wait for it to end, or stop it and run --resume") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """The pid its holder wrote into a lock file ("?" when it has not written it yet)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"


def writer_pid(run_dir: Path) -> str | None:
    """The pid of the process writing run_dir now, or None when no process holds its lock."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)


def check_results(results: Path) -> None:
    """UsageError, in one line, for a results directory a run cannot be written in: a path that is a file,
    one whose parent does not exist, or one that cannot be written (read-only, no permission)."""
    if results.exists() and not results.is_dir():
        raise UsageError(f"--results {results}: is a file, not a directory")
    if not results.exists():
        if not results.parent.is_dir():
            raise UsageError(f"--results {results}: its parent {results.parent} does not exist")
        if not os.access(results.parent, os.W_OK | os.X_OK):      # read-only, or not ours: nothing is made
            raise UsageError(f"--results {results}: cannot be made: {results.parent} is not writable")
        return
    try:
        tempfile.TemporaryFile(dir=results).close()              # what a run will do there first
    except OSError as exc:
        raise UsageError(f"--results {results}: cannot write there: {exc.strerror or exc}") from None
