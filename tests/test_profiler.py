"""Profiles: trace files per case, labels, the op table, and TensorBoard's plugin API."""
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch

from harness import cli
from harness.config import scenario
from harness.report.render import render
from harness.run import sweep
from harness.run.breakdown import breakdown_cases
from harness.store.traces import kernel_category, op_category, self_times, step_breakdown, trace_files


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("prof")
    sc = scenario.profiled(scenario.load("smoke"))
    run, rows = sweep.run_sweep(sc, root / "results", quiet=True)
    return root, run, rows


def test_profiling_writes_one_trace_per_case(profiled_run):
    _, run, rows = profiled_run
    files = trace_files(run.dir)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(files) == len(ok) == 8
    assert sorted(f.parent.name for f in files) == sorted(
        f"{r['impl']}_cpu_b2_t5_h16_{r['phase']}" for r in ok)
    assert all(f.name.endswith(".pt.trace.json") for f in files)


def test_labels_mark_forward_backward_and_steps(profiled_run):
    _, run, _ = profiled_run
    trace = json.loads(next((run.dir / "profiles" / "fused-lstm_cpu_b2_t5_h16_train").glob("*.json")).read_text())
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"forward", "backward", "step 0", "step 4"} <= names
    trace = json.loads(next((run.dir / "profiles" / "onednn-lstm_cpu_b2_t5_h16_train").glob("*.json")).read_text())
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert "aten::mkldnn_rnn_layer" in names and "step 0" not in names    # library kernels have no step labels


@pytest.mark.parametrize("flag,stacks", [([], False), (["--with-stack"], True)])
def test_profile_with_stack_records_python_frames(tmp_path, capsys, flag, stacks):
    from test_sweep import write_tiny

    assert cli.main(["profile", str(write_tiny(tmp_path)), "--results", str(tmp_path / "r"), "--quiet", *flag]) == 0
    [trace] = trace_files((tmp_path / "r" / "latest").resolve())
    cats = {e.get("cat") for e in json.loads(trace.read_text())["traceEvents"]}
    assert ("python_function" in cats) is stacks and "cpu_op" in cats
    assert "complete: 1 profiled cases in" in capsys.readouterr().out


def test_self_times_nest():
    trace = {"traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": "A", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "B", "ts": 2, "dur": 3, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "B", "ts": 6, "dur": 1, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "C", "ts": 20, "dur": 5, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "user_annotation", "name": "forward", "ts": 0, "dur": 30, "pid": 1, "tid": 1},
    ]}
    t = self_times(trace).set_index("op")
    assert t.loc["A", "self_ms"] == pytest.approx(0.006) and t.loc["A", "total_ms"] == pytest.approx(0.010)
    assert t.loc["B", "calls"] == 2 and t.loc["B", "self_ms"] == pytest.approx(0.004)
    assert t.loc["C", "self_ms"] == pytest.approx(0.005) and "forward" not in t.index


def test_report_has_the_op_table(profiled_run):
    root, run, _ = profiled_run
    out = render(run.run_id, root / "results", root / "reports", quiet=True, strict=True)
    page = (out / "index.html").read_text()
    assert '<table id="top-ops">' in page and "aten::mkldnn_rnn_layer" in page


def test_tensorboard_without_profiles_is_one_line(tmp_path, capsys):
    run, _ = sweep.run_sweep(scenario.load("smoke").model_copy(update={"gradients": [], "task": []}),
                              tmp_path / "r", quiet=True)
    assert cli.main(["tensorboard", run.run_id, "--results", str(tmp_path / "r")]) == 2
    assert "has no profiles: make profile" in capsys.readouterr().err


def test_tensorboard_binds_loopback_by_default():
    args = cli.build_parser().parse_args(["tensorboard"])
    assert args.host == "127.0.0.1" and args.port == 6006 and args.run == "latest"
    cmd = cli.tensorboard_command(Path("/x"), 1234)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


@pytest.mark.subprocess
def test_tensorboard_plugin_api_finds_the_case(profiled_run):
    _, run, _ = profiled_run
    port = free_port()
    proc = subprocess.Popen(cli.tensorboard_command(run.dir / "profiles", port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"
    case = "fused-lstm_cpu_b2_t5_h16_train"
    try:
        deadline, runs = time.time() + 120, []
        while time.time() < deadline:
            try:
                runs = get(f"{base}/runs")["runs"]
                if case in runs:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "tensorboard exited"
            time.sleep(0.5)
        assert case in runs
        q = urllib.parse.quote
        views = get(f"{base}/views?run={q(case)}")
        assert "Overview" in views and "Operator" in views
        [worker] = get(f"{base}/workers?run={q(case)}&view=Overview")
        spans = get(f"{base}/spans?run={q(case)}&worker={q(worker)}")
        overview = get(f"{base}/overview?run={q(case)}&worker={q(worker)}&span={q(spans[0])}")
        assert "steps" in overview and overview["environments"][1]["value"] == "CPU"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# -- where the time goes ------------------------------------------------------------------------------
def test_ops_fall_into_categories():
    assert [op_category(n) for n in ("aten::addmm", "aten::mkldnn_rnn_layer", "aten::sigmoid",
                                              "aten::tanh_backward", "aten::cat", "aten::as_strided",
                                              "autograd::engine::evaluate_function: MulBackward0", "MulBackward0",
                                              "torch::autograd::AccumulateGrad")] == \
        ["GEMM", "GEMM", "elementwise", "elementwise", "other ops", "other ops", "overhead", "overhead", "overhead"]
    assert [kernel_category(n) for n in ("ampere_sgemm_128x64_nn", "void at::native::vectorized_elementwise"
                                                  "_kernel<4>", "void at::native::reduce_kernel")] == \
        ["GEMM", "elementwise", "other ops"]


def test_step_breakdown_of_a_literal_trace():
    def op(name, ts, dur):
        return {"ph": "X", "cat": "cpu_op", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1}
    trace = {"traceEvents": [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#2", "ts": 0, "dur": 1000, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#3", "ts": 1000, "dur": 1000, "pid": 1, "tid": 1},
        op("aten::linear", 0, 300), op("aten::addmm", 10, 280),        # linear's self: 20 us, addmm's 280
        op("aten::sigmoid", 400, 100),
        op("aten::cat", 600, 50),
        op("autograd::engine::evaluate_function: MulBackward0", 1000, 400), op("aten::mul", 1100, 200),
    ]}
    split = step_breakdown(trace)
    # per step (2 steps): GEMM (300 + 0) / 2, elementwise (100 + 200) / 2, other 50 / 2; overhead: 2000 us of
    # wall minus the 650 us in GEMM, elementwise and other ops, over 2 steps (the engine's 200 us self inside it)
    assert split == pytest.approx({"GEMM": 0.150, "elementwise": 0.150, "other ops": 0.025, "overhead": 0.675})
    assert step_breakdown({"traceEvents": [op("aten::mm", 0, 5)]}) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="counts the groups of a machine without CUDA")
def test_breakdown_cases_pick_one_train_group():
    from harness.config.cases import groups

    sc = scenario.load("quick")
    gs = groups([c for c in scenario.expand(sc) if c.section == "throughput"])
    picked = breakdown_cases(gs)
    sizes = {(c.hidden, c.batch, c.seq_len, c.phase, c.device) for c in picked}
    # quick on a CPU machine: 8 train groups of 9 members on cpu (cuda is missing); the middle one by work
    assert sizes == {(64, 32, 100, "train", "cpu")} and len(picked) == 9
    assert breakdown_cases([[c.__class__(**{**c.as_row(), "profile": True}) for c in g] for g in gs]) == set()
