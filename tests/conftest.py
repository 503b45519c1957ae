"""Shared test fixtures."""
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.measure import flops

SMALL_GEMM = 256     # n of the GEMM peak's matmul in tests that only need a run, not its ceiling (2048 takes ~1.5 s)


@pytest.fixture(scope="module")
def small_gemm():
    """A module's sweeps measure their GEMM peak on a 256^3 matmul: the ceiling is not what they test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flops, "gemm_peak", functools.partial(flops.gemm_peak, size=SMALL_GEMM))
        yield


PYTHON_BIN = Path(sys.executable).parent    # the venv's bin: python itself, and its scripts (tensorboard)
LIBRARY_CHILDREN = ("cpuinfo",)   # python -m cpuinfo: pytest-benchmark's machine info; and torch.compile's own
# children (its compile workers, its check that a built kernel loads: "inductor" in their arguments)


def _runs_project_code(args) -> bool:
    """Whether a child process would run Python or one of the repository's scripts (not git, squeue, mount)."""
    argv = [str(a) for a in ([args] if isinstance(args, str | os.PathLike) else args)]
    first = argv[0] if argv else ""
    if any(lib in argv for lib in LIBRARY_CHILDREN) or any("inductor" in a for a in argv):
        return False
    return first.startswith(str(PYTHON_BIN)) or first == sys.executable or "scripts/" in first or first.endswith(".sh")


@pytest.fixture(autouse=True)
def _subprocess_tests_are_marked(request, monkeypatch):
    """A test that starts Python or a script in a child must carry @pytest.mark.subprocess: mutmut leaves those
    out of its runs (its trampolines do not reach a child), and an unmarked one would fail there, not here."""
    if request.node.get_closest_marker("subprocess"):
        return
    real_init = subprocess.Popen.__init__

    def init(self, args, *a, **kw):
        if _runs_project_code(args):
            pytest.fail(f"{request.node.nodeid} starts {args!r} in a child process: mark it @pytest.mark.subprocess")
        real_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)


def _slurm_missing() -> str | None:
    """Why the `slurm` tests cannot run here, or None: make test-slurm passes its own reason on."""
    if reason := os.environ.get("LSTM_BENCH_SLURM_SKIP"):
        return reason
    try:
        ok = subprocess.run(["sinfo", "--noheader"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return None if ok else "no Slurm cluster answers sinfo (make test-slurm starts one)"


def pytest_collection_modifyitems(config, items):
    slurm = [item for item in items if item.get_closest_marker("slurm")]
    if slurm and (reason := _slurm_missing()):
        for item in slurm:
            item.add_marker(pytest.mark.skip(reason=reason))
    if "MUTANT_UNDER_TEST" in os.environ:       # under mutmut: its runs share this machine's mounts
        for item in items:
            if item.get_closest_marker("mount"):
                item.add_marker(pytest.mark.skip(reason="mounts a tmpfs: not under mutmut"))
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):   # a mutant's run stops at its first failure:
        items.sort(key=_cost)                                   # cheap tests first (not in mutmut's stats run)


SHARED_SCOPES = ("session", "package", "module", "class")
MUTMUT_STATS = Path(__file__).resolve().parent.parent / "mutmut-stats.json"   # in mutmut's copy, mutants/


def _cost(item) -> tuple[bool, float]:
    """(needs a shared fixture, such as a whole sweep; the test's own seconds in mutmut's stats run)."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    shared = any(d.scope in SHARED_SCOPES for name, ds in defs.items() if name != "small_gemm" for d in ds)
    return shared, _durations().get(item.nodeid, 0.0)


@functools.cache
def _durations() -> dict[str, float]:
    import json
    try:
        return json.loads(MUTMUT_STATS.read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}
