"""The pytest-benchmark side of a sweep: the throughput cases as one pytest session, one test per case.

The session's only test is `test_case` below, parametrised over the cases by `SweepPlugin`, a
comparison group's members one after another (cases.groups). The first member's test has the sweep
run and write the whole group; each member's test then hands its own rounds to its pytest-benchmark
fixture (`record`), which writes benchmark.json: one benchmark per case, with its stats, its raw
`data` and extra_info (EXTRA_INFO), that `pytest-benchmark compare` reads.

Only pytest-benchmark's public interface is used. Its timer is a command-line option
(--benchmark-timer): the session's is `replay`, a clock that makes benchmark.pedantic's rounds last
exactly the rounds timing.time_group measured, in their order. pytest-benchmark writes its JSON
beside the run's, and the session renames it into place when it is whole (a full disk never leaves
a truncated benchmark.json).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from harness.config.cases import ThroughputCase
from harness.core.errors import StoreError
from harness.store.atomic import finish_file

_ROUNDS: list[float] = []    # what `replay` answers next, from the end: 0, then a round's time, per round


def replay() -> float:
    """pytest-benchmark's timer while a member's rounds are handed over (--benchmark-timer=...replay; a function,
    so that pytest-benchmark can name and import it): benchmark.pedantic calls it twice a round, before and
    after the round's empty target, and it answers 0 and then that round's time, so each round lasts exactly
    what time_group measured (no float error: the time minus 0 is the time)."""
    return _ROUNDS.pop()


def record(benchmark, times: list[float]) -> None:
    """Hand rounds timed by time_group to a test's pytest-benchmark fixture through its public pedantic mode
    (one iteration a round, no warm-up), timed by `replay`: benchmark.json holds their stats and raw `data`."""
    _ROUNDS[:] = [x for t in times for x in (0.0, float(t))][::-1]
    benchmark.pedantic(lambda: None, rounds=len(times), iterations=1, warmup_rounds=0)


EXTRA_INFO = ("impl", "cell", "backend", "device", "dtype", "batch", "seq_len", "hidden", "input", "phase",
              "threads", "group_id", "ratio_ref", "ratio")      # benchmark.json's extra_info of each case


class SweepPlugin:
    """A pytest plugin: parametrises test_case over the sweep's throughput cases, and runs each group (through
    the sweep, which writes its rows) when its first member's test starts."""

    def __init__(self, sweep):
        self.sweep = sweep                                # run/sweep.py's Sweep: runs and writes a group
        self.cases = [c for g in sweep.groups for c in g]  # pytest's order: a group's members one after another
        self.group_of = {c: g for g in sweep.groups for c in g}
        self.measured: dict[ThroughputCase, tuple[dict, list[float]]] = {}  # rows whose tests have not run

    def pytest_generate_tests(self, metafunc):
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", self.cases, ids=[c.slug for c in self.cases])

    @pytest.fixture
    def plugin(self):
        return self

    def run_case(self, case: ThroughputCase, benchmark) -> None:
        """test_case's body: the first member of a group runs the whole group (rows on disk when it
        ends); every member then hands its own rounds to its benchmark fixture."""
        if case not in self.measured:
            try:
                result = self.sweep.run_group(self.group_of[case])
            except StoreError as exc:             # a full disk: stop; every row before it is whole
                self.sweep.fatal = exc
                pytest.exit(str(exc), returncode=pytest.ExitCode.INTERRUPTED)
            for c, row in result.rows.items():
                self.measured[c] = (row, result.times.get(c, []))
        row, times = self.measured.pop(case)
        if row["status"] == "ok":
            record(benchmark, times)
            benchmark.extra_info.update({k: row[k] for k in EXTRA_INFO})
        if self.sweep.stop_requested and not any(c in self.measured for c in self.group_of[case]):
            pytest.exit("interrupted", returncode=pytest.ExitCode.INTERRUPTED)
        if row["status"] == "skipped":
            pytest.skip(row["reason"])


def test_case(benchmark, case, plugin):
    """The one test of a sweep's pytest session: collected from this file by `session`."""
    plugin.run_case(case, benchmark)


def session(plugin: SweepPlugin, benchmark_json: Path) -> int:
    """The throughput cases as one pytest session: test_case, from this file, over every case. benchmark.json is
    written beside its place and renamed into it whole; an OSError writing it is raised (the sweep's StoreError)."""
    here = Path(__file__)
    partial = benchmark_json.with_name(f".{benchmark_json.name}.partial")
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [str(here), "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider", "-p", "no:terminal",
                "--capture=no", "-o", f"python_files={here.name}", "--import-mode=importlib",
                "-W", "ignore::UserWarning", f"--benchmark-json={partial}", "--benchmark-sort=name",
                f"--benchmark-timer={__name__}.{replay.__name__}"]
        try:
            code = pytest.main(args, plugins=[plugin])
            if partial.exists():
                finish_file(partial, benchmark_json)
        finally:
            partial.unlink(missing_ok=True)
        return code
