"""The two exceptions every layer may raise; the bottom of the import graph.

- `UsageError`: bad input from the user (a scenario file, a run id, a flag).
  cli.main catches it, once, and prints it as one line with exit status 2.
- `StoreError`: a run's files cannot be written (a full disk, a file gone).
  cli.main catches it, once, and prints it as one line with exit status 1; the
  rows written before it are whole, and --resume goes on from them.
- `Skip`: this case cannot run here (a device or dtype the implementation
  lacks, a device this machine lacks, a case too large to fit). The sweep turns
  it into a `skipped` row whose reason is str(exc).

`failure(exc)` turns any other exception of a case into its row's (status, reason).
Nothing here imports anything from harness/.
"""
from __future__ import annotations

import torch


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class StoreError(Exception):
    """A run's file cannot be written: printed as one line, exit status 1."""


class Skip(Exception):
    """This case cannot run here; str(exc) says why."""


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, reason) of a case that raised: oom or failed, with the error's first line."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ("oom" if is_oom(exc) else "failed"), f"{type(exc).__name__}: {first}"[:500]
