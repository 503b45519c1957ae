"""The run store: run.json's declared format, the one CSV reader, the one run finder."""
import inspect
import json
import shutil
from pathlib import Path

import pytest
from test_sweep import write_tiny  # one tiny scenario for the tests of both

from harness import cli
from harness.analysis import tables
from harness.config import scenario
from harness.core import env
from harness.core.errors import UsageError
from harness.run import sweep
from harness.store.meta import Executor, ExecutorParams, GemmPeak, Git, RunMeta, Shard, Submission, read_meta
from harness.store.runs import Run, find_run, find_runs, read_rows


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    sweep.run_sweep(scenario.load(write_tiny(root)), root / "r", quiet=True)
    return root / "r"


@pytest.fixture
def tiny_run(tiny_results, tmp_path):
    """A copy of one finished tiny run, for a test to change."""
    results = tmp_path / "r"
    shutil.copytree(tiny_results, results, symlinks=True)
    return results, Run.open(find_run(results, "latest"))


def test_run_json_declares_its_format_and_version(tiny_run):
    results, run = tiny_run
    data = json.loads((run.dir / "run.json").read_text())
    assert data["format"] == 4 and data["harness_version"] == env.VERSION == "0.1.0"
    assert list(data) == list(RunMeta.model_fields)
    assert data["status"] == "complete" and data["counts"] == {"ok": 1} and data["shard"] is None
    assert read_meta(run.dir) == run.meta


def edit(run_dir, change):
    data = json.loads((run_dir / "run.json").read_text())
    change(data)
    (run_dir / "run.json").write_text(json.dumps(data))


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("format"), "run.json: run format None, but this harness reads formats 2, 3, 4 only"),
    (lambda d: d.update(format=1), "run.json: run format 1, but this harness reads formats 2, 3, 4 only"),
    (lambda d: d.update(format=5), "run.json: run format 5, but this harness reads formats 2, 3, 4 only"),
    (lambda d: d.update(colour="red"), "run.json: key 'colour': Extra inputs are not permitted"),
    (lambda d: d.update(status="done"), "run.json: key 'status': Input should be 'pending', 'running', 'complete'"),
    (lambda d: d["git"].pop("dirty"), "run.json: key 'git.dirty': Field required"),
])
@pytest.mark.parametrize("command", [["run", "--resume"], ["report"], ["status"], ["compare", "latest"]])
def test_a_run_of_another_format_is_refused_in_one_line(tiny_run, capsys, change, message, command):
    results, run = tiny_run
    edit(run.dir, change)
    before = sorted(p.name for p in run.dir.iterdir())
    assert cli.main([*command, run.run_id, "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run.dir / 'run.json'}: ") and message in err[0]
    assert sorted(p.name for p in run.dir.iterdir()) == before          # nothing written


def test_unreadable_run_json_is_one_line(tiny_run):
    _, run = tiny_run
    (run.dir / "run.json").write_text('{"format": 1, "run_id": ')
    with pytest.raises(UsageError, match=r"run.json: not a readable run.json \(JSONDecodeError: "):
        read_meta(run.dir)


def test_every_run_json_key_has_a_comment():
    for model in (RunMeta, Git, GemmPeak, Shard, ExecutorParams, Submission,
                  Executor):
        source = inspect.getsource(model)
        for name in model.model_fields:
            line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{name}:"))
            assert "  # " in line, f"{model.__name__}.{name} has no comment"


def test_read_rows_names_what_it_leaves_out(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,b,status\r\n1,2,ok\r\n3,4\r\n5,\xff,ok\r\n\r\n6,7,ok\r\n8,9,o")
    warnings = []
    assert read_rows(p, warnings) == [{"a": "1", "b": "2", "status": "ok"}, {"a": "6", "b": "7", "status": "ok"}]
    assert warnings == [f"{p}:3: skipped a broken line (2 fields, expected 3)",
                        f"{p}:4: skipped a broken line (3 fields, expected 3)",
                        f"{p}:7: skipped a broken line (cut short: no line end)"]
    assert read_rows(tmp_path / "missing.csv") == []


def test_read_rows_keeps_a_field_with_other_line_breaks_and_skips_an_oversized_one(tmp_path):
    """A field may hold \x0c, \x1c or \u2028 (str.splitlines would break the row there); a field over csv's
    limit (128 KiB) is one broken line, and the rows after it are still read."""
    p = tmp_path / "t.csv"
    p.write_text("a,b\r\n1,page\x0cbreak\u2028x\x1cy\r\n2," + "z" * 200_000 + "\r\n3,4\r\n", encoding="utf-8",
                 newline="")
    warnings = []
    assert read_rows(p, warnings) == [{"a": "1", "b": "page\x0cbreak\u2028x\x1cy"}, {"a": "3", "b": "4"}]
    assert warnings == [f"{p}:3: skipped a broken line (field larger than field limit (131072))"]


def test_find_run(tiny_run):
    results, run = tiny_run
    assert find_run(results, "latest") == run.dir.resolve() == find_run(results, run.run_id)
    assert find_runs(results, f"{run.run_id}, latest") == [run.dir.resolve()] * 2
    with pytest.raises(UsageError, match=rf"unknown run id 'nope' in {results}; newest runs: {run.run_id}$"):
        find_run(results, "nope")
    with pytest.raises(UsageError, match=r"no runs in .*empty yet: run one first \(make bench\)"):
        find_run(results.parent / "empty", "latest")
    with pytest.raises(UsageError) as err:
        find_runs(results, " , ")
    assert str(err.value) == "give a run id, a comma-separated list of them, or latest"


def test_an_unknown_run_id_names_the_newest_five(tmp_path):
    for name in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z",
                 "20260105T000000Z", "20260106T000000Z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(UsageError) as err:
        find_run(tmp_path, "nope")
    assert str(err.value) == (f"unknown run id 'nope' in {tmp_path}; newest runs: 20260102T000000Z, 20260103T000000Z, "
                              "20260104T000000Z, 20260105T000000Z, 20260106T000000Z")
    with pytest.raises(UsageError) as err:
        find_run(tmp_path / "missing", "nope")
    assert str(err.value) == f"unknown run id 'nope' in {tmp_path / 'missing'}; newest runs: none"


@pytest.mark.parametrize("text,found", [("[1, 2]", "None"), ('{"format": "2"}', "'2'")])
def test_a_run_json_of_no_format_it_reads_says_so_whole(tmp_path, text, found):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(UsageError) as err:
        read_meta(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'run.json'}: run format {found}, but this harness reads formats 2, 3, 4 "
                              "only (written by another version of lstm-bench)")


# -- a run an older harness stored ------------------------------------------------------------------------------
STORED = Path(__file__).parent / "data" / "format2"
FORMAT2 = "20261205T183218Z-vm-c91ce22"     # written by commit c91ce22 (format 2): its gradients case left out


def test_a_run_an_older_harness_stored_loads_compares_and_resumes_without_rerunning_a_case(tmp_path, capsys):
    """Its case ids were computed by that harness: today's must be the same (a new key at its default leaves a
    case's id alone), or --resume would run the finished cases again."""
    results = tmp_path / "r"
    shutil.copytree(STORED, results)
    run_dir = results / FORMAT2
    assert read_meta(run_dir).format == 2
    t = tables.load_runs([run_dir]).tables["timings"]
    assert sorted(zip(t["impl"], t["gemm"], strict=True)) == [("fused-lstm", "aten"), ("onednn-lstm", "onednn"),
                                                              ("torch-lstm", "aten")]     # off each row's backend
    assert cli.main(["compare", FORMAT2, FORMAT2, "--results", str(results)]) == 0
    assert "3 of 3 cases slower than" not in capsys.readouterr().out
    assert cli.main(["report", FORMAT2, "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    before = read_rows(run_dir / "timings.csv")
    assert cli.main(["run", "--resume", FORMAT2, "--results", str(results), "--quiet"]) == 0
    after = read_rows(run_dir / "timings.csv")
    assert [r["case_id"] for r in after] == [r["case_id"] for r in before]            # not one timed again
    assert [r["time_median_s"] for r in after] == [r["time_median_s"] for r in before]
    meta = read_meta(run_dir)
    assert (meta.format, meta.status, meta.counts) == (4, "complete", {"ok": 4})      # only the missing case ran
    assert len({r["case_id"] for r in read_rows(run_dir / "decay.csv")}) == 1 and "gemm" in after[0]   # format 3
