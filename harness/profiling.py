"""torch.profiler, without the profiler's own chatter.

Kineto prints "USDT: ... profiler_start/stop" lines straight to file
descriptor 2 when a profile starts and stops; `quiet_profile` sends just those
moments to /dev/null, so the progress bar and the per-case lines stay readable.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from torch.profiler import profile


@contextlib.contextmanager
def _fd2_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_profile(**kwargs) -> Iterator[profile]:
    """torch.profiler.profile(**kwargs), silent while it starts and stops."""
    prof = profile(**kwargs)
    with _fd2_to_devnull():
        prof.__enter__()
    try:
        yield prof
    finally:
        with _fd2_to_devnull():
            prof.__exit__(None, None, None)
