"""The pytest-benchmark side of a sweep: the throughput cases as one pytest session, one test per case.

The session's only test is `test_case` below, parametrised over the cases by `SweepPlugin`, a
comparison group's members one after another (cases.groups). The first member's test has the sweep
run and write the whole group; each member's test then hands its own rounds to its pytest-benchmark
fixture (timing.record), which writes benchmark.json: one benchmark per case, with its stats, its raw
`data` and extra_info (EXTRA_INFO), that `pytest-benchmark compare` reads.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from harness.config.cases import ThroughputCase
from harness.core.errors import StoreError
from harness.measure import timing

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
            timing.record(benchmark, times)
            benchmark.extra_info.update({k: row[k] for k in EXTRA_INFO})
        if self.sweep.stop_requested and not any(c in self.measured for c in self.group_of[case]):
            pytest.exit("interrupted", returncode=pytest.ExitCode.INTERRUPTED)
        if row["status"] == "skipped":
            pytest.skip(row["reason"])


def test_case(benchmark, case, plugin):
    """The one test of a sweep's pytest session: collected from this file by `session`."""
    plugin.run_case(case, benchmark)


def session(plugin: SweepPlugin, benchmark_json: Path) -> int:
    """The throughput cases as one pytest session: test_case, from this file, over every case."""
    here = Path(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [str(here), "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider", "-p", "no:terminal",
                "--capture=no", "-o", f"python_files={here.name}", "--import-mode=importlib",
                "-W", "ignore::UserWarning", f"--benchmark-json={benchmark_json}", "--benchmark-sort=name"]
        return pytest.main(args, plugins=[plugin])
