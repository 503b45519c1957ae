"""A smoke run end to end in a temporary directory: rows, columns, statuses, files."""
import csv
import json
import subprocess
import sys
import textwrap

import pytest

from harness import cli
from harness.config import scenario
from harness.run import sweep
from harness.store import columns

COLUMNS = """run_id, scenario, impl, cell, backend, device, device_name, dtype, batch, seq_len, hidden, input, layers,
phase, rounds, time_median_s, time_iqr_s, time_min_s, tokens_per_s, flops, gflops_per_s, gemm_peak_gflops_per_s,
peak_fraction, peak_mem_bytes, params, status, reason"""


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    code = cli.main(["run", "smoke", "--results", str(results), "--quiet"])
    run_dir = (results / "latest").resolve()
    with open(run_dir / "timings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return code, results, run_dir, rows


def test_exit_code_and_layout(smoke):
    code, results, run_dir, rows = smoke
    assert code == 0
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock", "benchmark.json", "breakdown.csv", "decay.csv", "dynamics.csv", "gradients.csv", "rounds.csv",
        "run.json", "timings.csv", "training.csv"]
    assert (results / "latest").is_symlink() and run_dir.parent == results.resolve()


def test_columns(smoke):
    _, _, run_dir, rows = smoke
    header = (run_dir / "timings.csv").read_text().splitlines()[0].split(",")
    required = [c.strip() for c in COLUMNS.replace("\n", " ").split(",")]
    assert header[: len(required)] == required
    assert header == columns.TIMING_COLUMNS


def test_rows_and_statuses(smoke):
    _, _, run_dir, rows = smoke
    got = [(r["impl"], r["phase"], r["status"]) for r in rows]
    assert got == [("dummy", "forward", "ok"), ("fused-lstm", "forward", "ok"), ("onednn-lstm", "forward", "ok"),
                   ("cudnn-lstm", "forward", "skipped"), ("scratch-rnn", "forward", "ok"),      # one comparison group
                   ("dummy", "train", "ok"), ("fused-lstm", "train", "ok"), ("onednn-lstm", "train", "ok"),
                   ("cudnn-lstm", "train", "skipped"), ("scratch-rnn", "train", "ok")]         # and the other
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert {r["reason"] for r in skipped} == {"cudnn-lstm runs on cuda only, not cpu"}
    assert all(r["time_median_s"] == "" for r in skipped)
    ok = [r for r in rows if r["status"] == "ok"]
    data = json.loads((run_dir / "benchmark.json").read_text())
    bench = {b["name"]: b["stats"] for b in data["benchmarks"]}
    # handed over through pytest-benchmark's public pedantic mode, timed by the replay clock (--benchmark-timer)
    assert {b["options"]["timer"] for b in data["benchmarks"]} == {"replay"}
    assert not list(run_dir.glob(".benchmark*"))                                  # renamed into place, whole
    for r in ok:
        assert r["rounds"] == "3" and r["threads"] == "1" and r["run_id"] == run_dir.name
        stats = bench[f"test_case[{r['impl']}_cpu_b2_t5_h16_{r['phase']}]"]     # pytest-benchmark's own record
        assert (float(r["time_median_s"]), float(r["time_min_s"]), float(r["time_iqr_s"])) == \
            (stats["median"], stats["min"], stats["iqr"])
        assert float(r["tokens_per_s"]) == pytest.approx(2 * 5 / stats["median"])
        assert float(r["gflops_per_s"]) == pytest.approx(int(r["flops"]) / stats["median"] / 1e9)
        assert float(r["peak_fraction"]) == pytest.approx(float(r["gflops_per_s"]) / float(r["gemm_peak_gflops_per_s"]))
    by = {(r["impl"], r["phase"]): r for r in ok}
    for impl in ("dummy", "fused-lstm", "onednn-lstm", "scratch-rnn"):       # backward keeps activations
        assert int(by[(impl, "train")]["peak_mem_bytes"]) > int(by[(impl, "forward")]["peak_mem_bytes"]) > 0
    assert by[("onednn-lstm", "train")]["backend"] == "onednn"
    assert by[("fused-lstm", "train")]["backend"] == "native"
    assert by[("fused-lstm", "train")]["params"] == str(4 * 16 * (16 + 16 + 2))
    assert by[("fused-lstm", "train")]["flops"] == str(3 * 2 * 2 * 5 * 4 * 16 * 32)
    assert int(by[("fused-lstm", "train")]["peak_mem_bytes"]) > 0


def test_run_json(smoke):
    _, _, run_dir, rows = smoke
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["run_id"] == run_dir.name
    assert meta["counts"] == {"ok": 11, "skipped": 2}
    assert meta["scenario"]["name"] == "smoke" and meta["scenario"]["cases"] == 13
    assert set(meta["environment"]) >= {"torch", "cuda", "cudnn", "onednn", "cpu_model", "physical_cores", "threads",
                                        "gpu", "python", "os", "host"}
    assert set(meta["git"]) == {"commit", "dirty"} and isinstance(meta["git"]["dirty"], bool)
    assert meta["started_utc"] < meta["finished_utc"]
    aten, onednn = meta["gemm_peaks"]                 # a peak per GEMM library, aten's naming its BLAS
    assert (aten["library"], aten["blas"], onednn["library"], onednn["blas"]) == ("aten", "mkl", "onednn", None)
    assert all(p["device"] == "cpu" and p["dtype"] == "float32" and p["gemm_peak_gflops_per_s"] > 0
               for p in (aten, onednn))
    best = max((aten, onednn), key=lambda p: p["gemm_peak_gflops_per_s"])      # the ceiling: the best library's
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["gemm_peak_gflops_per_s"]) == best["gemm_peak_gflops_per_s"] for r in ok)
    assert all(r["gemm_peak_library"] == best["library"] for r in ok)
    assert {(r["impl"], r["gemm"]) for r in ok} == {("dummy", "aten"), ("fused-lstm", "aten"), ("scratch-rnn", "aten"),
                                                    ("onednn-lstm", "onednn")}     # a kernel's: its backend's
    for r in ok:                  # against the best library at the case's own GEMM shapes: below the 2048^3 peak
        assert 0 < float(r["shape_peak_gflops_per_s"]) < float(r["gemm_peak_gflops_per_s"])
        assert float(r["shape_peak_fraction"]) == pytest.approx(float(r["gflops_per_s"])
                                                               / float(r["shape_peak_gflops_per_s"]))


@pytest.mark.subprocess
def test_benchmark_json_reads_in_pytest_benchmark(smoke):
    _, _, run_dir, rows = smoke
    data = json.loads((run_dir / "benchmark.json").read_text())
    names = [b["name"] for b in data["benchmarks"]]
    assert len(names) == 8 and "test_case[fused-lstm_cpu_b2_t5_h16_train]" in names
    fused = next(b for b in data["benchmarks"] if b["name"] == "test_case[fused-lstm_cpu_b2_t5_h16_train]")
    assert fused["extra_info"]["backend"] == "native" and fused["stats"]["rounds"] == 3
    out = subprocess.run([sys.executable, "-c", "from pytest_benchmark.cli import main; main()", "compare",
                          str(run_dir / "benchmark.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "test_case[fused-lstm_cpu_b2_t5_h16_train]" in out.stdout


def test_run_ids_are_never_reused(tmp_path):
    sc = scenario.load(write_tiny(tmp_path))
    a, _ = sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    b, _ = sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    assert a.run_id != b.run_id and a.dir.is_dir() and b.dir.is_dir()
    assert (tmp_path / "r" / "latest").resolve() == b.dir.resolve()


def write_tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(textwrap.dedent("""
        name = "tiny"
        [defaults]
        threads = 1
        rounds = 2
        warmup = 0
        [[throughput]]
        impl = "dummy"
        hidden = 4
        seq_len = 2
        batch = 1
        phase = "train"
        memory = false
    """))
    return p


def test_bptt_lstm_in_a_sweep_on_both_sides_of_its_layout_switch(tmp_path):
    text = write_tiny(tmp_path).read_text().replace('impl = "dummy"', 'impl = "bptt-lstm"')
    (tmp_path / "b.toml").write_text(text.replace("batch = 1", "batch = [15, 16]"))
    _, rows = sweep.run_sweep(scenario.load(tmp_path / "b.toml"), tmp_path / "r", quiet=True)
    assert [(r["batch"], r["status"], r["backend"], r["params"]) for r in rows] == \
        [(15, "ok", "native", 4 * 4 * (4 + 4 + 2)), (16, "ok", "native", 4 * 4 * (4 + 4 + 2))]


def test_failure_becomes_a_row(tmp_path, monkeypatch):
    from harness.measure import timing

    real = timing.build_step

    def broken(case):
        step = real(case)
        step.run = lambda: (_ for _ in ()).throw(ValueError("boom\nsecond line"))
        return step

    monkeypatch.setattr(timing, "build_step", broken)
    run, rows = sweep.run_sweep(scenario.load(write_tiny(tmp_path)), tmp_path / "r", quiet=True)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", "ValueError: boom")]
    assert run.meta.status == "complete" and run.meta.counts == {"failed": 1}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_gradient_and_task_tables(smoke):
    _, _, run_dir, _ = smoke
    curves, decay, training = (read(run_dir / n) for n in ("gradients.csv", "decay.csv", "training.csv"))
    assert list(curves[0]) == columns.GRADIENT_COLUMNS and list(decay[0]) == columns.DECAY_COLUMNS
    assert list(training[0]) == columns.TRAINING_COLUMNS
    from_sections = [r for r in curves if r["task"] == ""]
    # scratch-lstm: x, h, c; torch-rnn: x only -- 2 seeds, 10 steps each
    assert len(from_sections) == 2 * 10 * 3 + 2 * 10 * 1
    assert [(r["impl"], r["wrt"]) for r in decay] == [("scratch-lstm", "x"), ("scratch-lstm", "h"),
                                                      ("scratch-lstm", "c"), ("torch-rnn", "x")]
    assert all(r["status"] == "ok" and 0 < float(r["decay_factor"]) for r in decay)
    assert [r["step"] for r in training] == ["0", "5", "10"]
    assert {r["train_step"] for r in curves if r["task"] == "adding"} == {"0", "5", "10"}
