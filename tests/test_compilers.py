"""Compilers and mixed precision: compiled-lstm, compiled-loop-lstm, scripted-lstm and cudagraph-lstm
against float64 nn.LSTM; the compile columns, the compile-time fit and its preflight skip; autocast's
probe; the report's break-even. torch.compile is slow on a CPU (seconds per graph), so each compiled
implementation compiles once here, at a small size."""
import re
import textwrap

import pandas as pd
import pytest
import torch
from test_equivalence import CUDA, SIZES, assert_same, full_float32, run_case  # noqa: F401 -- a fixture

from harness import cli
from harness.analysis import ratios
from harness.config import scenario
from harness.config.cases import ThroughputCase
from harness.core import env
from harness.core.errors import Skip
from harness.implementations import registry
from harness.implementations.compiled import CompileStats
from harness.measure import timing
from harness.report import views
from harness.run import preflight, sweep

SIZE = (6, 3, 4, 5)                # T, B, I, H
FLOAT32 = 1e-5                     # relative, against float64: 24 significand bits over a few steps
AUTOCAST_BF16 = 10 * 2.0 ** -8     # relative: 10 units of bfloat16's roundoff (its GEMMs; state and gates stay
# float32), test_equivalence's HALF_TOLERANCE; torch-lstm's worst here is 0.012 (the initial state's gradient)


# -- equivalence ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["compiled-lstm", "compiled-loop-lstm", "scripted-lstm"])
def test_compiled_implementations_match_torch_lstm_float64(name):
    ref = run_case("torch-lstm", "lstm", *SIZE, seed=2000)
    assert_same(run_case(name, "lstm", *SIZE, seed=2000), ref, 1e-10)


def test_scripted_lstm_in_float32_matches_float64():
    ref = run_case("torch-lstm", "lstm", *SIZES[3], seed=2001)
    assert_same(run_case("scripted-lstm", "lstm", *SIZES[3], seed=2001, dtype="float32"), ref, FLOAT32)


@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm", "onednn-lstm",
                                  "scripted-lstm"])
def test_bfloat16_autocast_matches_float64(name):
    ref = run_case("torch-lstm", "lstm", 9, 4, 8, 8, seed=2002)
    got = run_case(name, "lstm", 9, 4, 8, 8, seed=2002, dtype="float32", autocast="bfloat16")
    assert_same(got, ref, AUTOCAST_BF16)


def test_compiled_cell_under_bfloat16_autocast_matches_float64():
    """inductor compiles the cell with autocast's casts in it: float32 parameters, bfloat16 GEMMs."""
    ref = run_case("torch-lstm", "lstm", *SIZE, seed=2004)
    got = run_case("compiled-lstm", "lstm", *SIZE, seed=2004, dtype="float32", autocast="bfloat16")
    assert_same(got, ref, AUTOCAST_BF16)


def test_scripted_lstm_without_torchscript_is_a_skip(monkeypatch):
    monkeypatch.delattr(torch.jit, "script")
    with pytest.raises(Skip, match=re.escape(f"torch {torch.__version__} has no TorchScript (torch.jit.script)")):
        registry.create("scripted-lstm", 3, 4)


def test_bfloat16_autocast_is_not_float32():
    """The autocast tolerance is not vacuous: the same case in float32 is 100 times closer."""
    ref = run_case("torch-lstm", "lstm", 9, 4, 8, 8, seed=2002)
    from test_equivalence import max_rel
    half = run_case("fused-lstm", "lstm", 9, 4, 8, 8, seed=2002, dtype="float32", autocast="bfloat16")
    full = run_case("fused-lstm", "lstm", 9, 4, 8, 8, seed=2002, dtype="float32")
    assert max_rel(half["y"], ref["y"]) > 100 * max_rel(full["y"], ref["y"])


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["compiled-lstm", "scripted-lstm", "cudagraph-lstm"])
def test_cuda_compiled_implementations_match_cpu_float64(name, full_float32):  # noqa: F811
    ref = run_case("torch-lstm", "lstm", 6, 20, 3, 7, seed=2003)
    assert_same(run_case(name, "lstm", 6, 20, 3, 7, seed=2003, device="cuda"), ref, 1e-10)


def test_cudagraph_lstm_is_a_skip_on_a_cpu():
    assert registry.skip_reason("cudagraph-lstm") == "cudagraph-lstm runs on cuda only, not cpu"
    with pytest.raises(Skip, match="cudagraph-lstm runs on cuda only, not cpu"):
        registry.create("cudagraph-lstm", 3, 4)


def test_compile_mode_applies_to_torch_compile_only():
    with pytest.raises(ValueError, match="compile_mode applies to torch.compile's implementations only, not "
                                         "scripted-lstm"):
        registry.create("scripted-lstm", 3, 4, compile_mode="default")
    with pytest.raises(ValueError, match="unknown compile_mode 'fast'; allowed: default, "
                                         "max-autotune-no-cudagraphs, reduce-overhead"):
        registry.create("compiled-lstm", 3, 4, compile_mode="fast")


# -- dynamo's counters ------------------------------------------------------------------------------------
def test_compile_stats_count_frames_after_the_first_call_as_recompiles(monkeypatch):
    from collections import Counter, defaultdict

    fake = defaultdict(Counter)
    monkeypatch.setattr("torch._dynamo.utils.counters", fake)
    stats = CompileStats()
    for frames, breaks in [(2, 1), (0, 0), (1, 0)]:           # first call, a steady one, a recompile
        with stats.counting():
            fake["frames"]["total"] += frames
            fake["graph_break"]["a reason"] += breaks
    assert stats == CompileStats(calls=3, frames=3, recompiles=1, graph_breaks=1)


class _Model:
    compiler, compile_mode = "inductor", "default"
    compile_stats = CompileStats(calls=4, frames=2, recompiles=1, graph_breaks=3)


def test_compile_columns_are_the_first_call_less_the_steady_median():
    step = timing.Step(_Model(), run=None, setup=None, sync=None, params=0)
    cols = timing.compile_columns(step, 1.5, [0.3, 0.1, 0.2, 0.4])
    assert cols == {"compile_backend": "inductor", "compile_mode": "default", "compile_s": pytest.approx(1.25),
                    "recompiles": 1, "graph_breaks": 3}
    eager = timing.Step(registry.create("fused-lstm", 3, 4), run=None, setup=None, sync=None, params=0)
    assert timing.compile_columns(eager, 1.5, [0.1]) == {}


def test_time_group_keeps_each_members_first_call_apart():
    ticks = iter(range(1000))
    calls = []
    steps = [timing.Step(None, run=lambda i=i: calls.append(i), setup=lambda: None, sync=lambda: None, params=0)
             for i in range(2)]
    gt = timing.time_group(steps, rounds=2, warmup=1, clock=lambda: float(next(ticks)))
    assert calls == [0, 1, 0, 1, 0, 1]          # warm-up in order, then two rounds in orders drawn from seed 0
    assert gt.first_s == [1.0, 1.0]             # each call takes one tick of the fake clock
    assert gt.times == [[1.0, 1.0], [1.0, 1.0]]


# -- the compile-time fit and its preflight ----------------------------------------------------------------
def _case(seq_len, impl="compiled-loop-lstm", max_compile_s=30.0):
    return ThroughputCase(impl=impl, device="cpu", dtype="float32", hidden=8, input=8, seq_len=seq_len, batch=2,
                          phase="train", seed=0, threads=1, rounds=3, warmup=1, memory=False,
                          compile_mode="default", max_compile_s=max_compile_s)


def _row(seq_len, compile_s, impl="compiled-loop-lstm", host="vm"):
    return {"impl": impl, "device": "cpu", "phase": "train", "compile_mode": "default", "autocast": "none",
            "seq_len": str(seq_len), "compile_s": str(compile_s), "status": "ok", "host": host}


def test_power_fit_recovers_a_known_law():
    a, b = preflight.power_fit([(25, 2.0), (100, 8.0), (50, 4.0)])
    assert (a, b) == (pytest.approx(0.08), pytest.approx(1.0))
    assert preflight.power_fit([(25, 2.0), (25, 3.0)]) is None            # one length: no fit


def test_preflight_skips_a_compile_fitted_to_take_too_long():
    fit = preflight.CompileFit()
    fit.check(_case(400))                                  # no rows yet: no estimate, the case runs
    fit.add(_row(25, 2.0))
    fit.check(_case(400))                                  # one length: still none
    fit.add(_row(100, 8.0))
    fit.add(_row(200, 99.0, impl="compiled-lstm"))         # another implementation's fit
    assert fit.estimate(_case(400)) == (pytest.approx(32.0), 2)
    fit.check(_case(300))                                  # 24 s: under 30
    with pytest.raises(Skip) as exc:
        fit.check(_case(400))
    assert str(exc.value) == ("compile expected to take 32 s at seq_len 400 (compile_s = 0.08 * T^1.00, fitted to "
                              "2 measured cases), over max_compile_s = 30 s")
    fit.check(_case(400, impl="scripted-lstm"))           # TorchScript is not torch.compile: never skipped


def test_the_fit_reads_this_hosts_earlier_runs(tmp_path):
    from harness.store.columns import TIMING_COLUMNS
    for name, rows in [("a", [_row(25, 2.0), _row(100, 8.0, host="elsewhere")]), ("b", [_row(100, 8.0)])]:
        (tmp_path / name).mkdir()
        pd.DataFrame(rows, columns=TIMING_COLUMNS).to_csv(tmp_path / name / "timings.csv", index=False)
    fit = preflight.CompileFit.from_results(tmp_path, "vm")
    assert fit.points == {("compiled-loop-lstm", "cpu", "train", "default", "none"): [(25.0, 2.0), (100.0, 8.0)]}


# -- autocast's probe ---------------------------------------------------------------------------------------
class _Float32Gemm(torch.nn.Module):
    """A model whose GEMM leaves autocast's dtype: it turns autocast off around its matmul."""
    compiler = ""

    def forward(self, x, lengths=None):
        with torch.autocast("cpu", enabled=False):
            return x.float() @ torch.ones(x.shape[-1], 2), None


class _Raises(torch.nn.Module):
    compiler = ""

    def forward(self, x, lengths=None):
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive\nmore")


def test_bptt_lstm_under_autocast_casts_its_own_gemms():
    """Its autograd Function casts every product's operands as autocast would (gemm.cast), both ways and in both
    layouts (B >= 16: transposed), with its state float32: the probe sees bfloat16 GEMMs and the row runs."""
    case = ThroughputCase(**{**_case(3).as_row(), "impl": "bptt-lstm", "compile_mode": None, "autocast": "bfloat16"})
    assert timing.build_step(case).compute_dtype == "bfloat16"
    ref = run_case("torch-lstm", "lstm", 9, 16, 8, 8, seed=2003)
    got = run_case("bptt-lstm", "lstm", 9, 16, 8, 8, seed=2003, dtype="float32", autocast="bfloat16")
    assert_same(got, ref, AUTOCAST_BF16)
    full = run_case("bptt-lstm", "lstm", 9, 16, 8, 8, seed=2003, dtype="float32")
    from test_equivalence import max_rel
    assert max_rel(got["y"], ref["y"]) > 100 * max_rel(full["y"], ref["y"])      # it did run in bfloat16


def test_autocast_probe_names_what_the_gemms_ran_in():
    case = ThroughputCase(**{**_case(3).as_row(), "impl": "onednn-lstm", "compile_mode": None,
                             "autocast": "bfloat16"})
    x = torch.randn(3, 2, 4)
    with pytest.raises(Skip) as exc:
        timing.probe_autocast(_Float32Gemm(), x, None, case)
    assert str(exc.value) == ("onednn-lstm's GEMMs run in float32 under bfloat16 autocast on cpu (its kernels are "
                              "not on autocast's list): no bfloat16 row")
    with pytest.raises(Skip) as exc:
        timing.probe_autocast(_Raises(), x, None, case)
    assert str(exc.value) == ("onednn-lstm fails under bfloat16 autocast on cpu: could not create a primitive "
                              "descriptor for the LSTM forward propagation primitive")
    model = registry.create("fused-lstm", 4, 4)
    assert timing.probe_autocast(model, x, None, case) == "bfloat16"


# -- scenarios: bad input, and what this machine lacks ------------------------------------------------------
BASE = 'name = "x"\n[[throughput]]\nimpl = "{impl}"\nhidden = 4\nseq_len = 2\nbatch = 1\n'


@pytest.mark.parametrize("impl,extra,message", [
    ("fused-lstm", 'autocast = "float16"\n',
     "[[throughput]] #1, key 'autocast': 'float16' does not run on cpu; allowed there: none, bfloat16"),
    ("fused-lstm", "tf32 = true\n", "[[throughput]] #1, key 'tf32': applies to CUDA cases only, not cpu "
     "(allowed: false)"),
    ("compiled-lstm", 'compile_mode = "fast"\n', "[[throughput]] #1, key 'compile_mode': Input should be 'default', "
     "'max-autotune-no-cudagraphs' or 'reduce-overhead', not 'fast'"),
    ("compiled-lstm", "warmup = 0\n", "[[throughput]] #1, key 'warmup': compiled-lstm compiles on its first call, "
     "which is timed apart: warmup must be >= 1, not 0"),
    ("fused-lstm", 'autocast = "bfloat16"\ndtype = "float64"\n', "[[throughput]] #1, key 'autocast': applies to "
     "float32 parameters, not float64 (dtype float64 alone computes in float64)"),
    ("fused-lstm", "max_compile_s = 0\n", "[[throughput]] #1, key 'max_compile_s': Input should be greater than 0"),
])
def test_bad_precision_and_compiler_input_is_one_line_exit_2(tmp_path, capsys, impl, extra, message):
    path = tmp_path / "s.toml"
    path.write_text(BASE.format(impl=impl) + extra)
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: {path}: {message}\n"
    assert not (tmp_path / "r").exists()


def test_compile_mode_and_tf32_collapse_where_they_do_not_apply(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace('"{impl}"', '["fused-lstm", "compiled-lstm"]') +
                    'compile_mode = ["default", "max-autotune-no-cudagraphs"]\nwarmup = 1\n')
    cases = scenario.expand(scenario.load(path))
    assert [(c.impl, c.compile_mode, c.tf32) for c in cases if c.phase == "train"] == [
        ("fused-lstm", None, None), ("compiled-lstm", "default", None),
        ("compiled-lstm", "max-autotune-no-cudagraphs", None)]
    from harness.config.cases import group_id
    assert len({group_id(c) for c in cases if c.phase == "train"}) == 1   # one comparison group


def test_tf32_is_set_per_case_on_cuda_and_never_on_a_cpu():
    before = env.tf32_flags()
    try:
        assert env.tf32_for("cuda:0", True) is True and env.tf32_flags() == (True, True)
        assert env.tf32_for("cuda:0", False) is False and env.tf32_flags() == (False, False)
        assert env.tf32_for("cuda:0") is False                       # the default: full float32
        assert env.tf32_for("cpu", True) is None and env.tf32_flags() == (False, False)
    finally:
        env.restore_tf32(before)


# -- a sweep with compiled cases, and the report's break-even ------------------------------------------------
SWEEP = """
name = "c"
[defaults]
threads = 1
rounds = 3
warmup = 1
[[throughput]]
impl = ["fused-lstm", "compiled-lstm", "scripted-lstm", "cudagraph-lstm"]
hidden = 4
seq_len = 3
batch = 2
phase = "train"
memory = false
[[throughput]]
impl = ["fused-lstm", "onednn-lstm"]
hidden = 4
seq_len = 3
batch = 2
phase = "forward"
memory = false
autocast = "bfloat16"
"""


def test_a_sweep_records_compile_columns_and_what_each_row_computed_in(tmp_path):
    (tmp_path / "c.toml").write_text(textwrap.dedent(SWEEP))
    run, rows = sweep.run_sweep(scenario.load(tmp_path / "c.toml"), tmp_path / "r", quiet=True)
    by = {(r["impl"], r["phase"]): r for r in rows}
    compiled, scripted, eager = by[("compiled-lstm", "train")], by[("scripted-lstm", "train")], by[("fused-lstm",
                                                                                                      "train")]
    assert (compiled["status"], compiled["backend"], compiled["compile_backend"], compiled["compile_mode"],
            compiled["recompiles"], compiled["graph_breaks"]) == ("ok", "inductor", "inductor", "default", 0, 0)
    assert compiled["compile_s"] > 1.0 > compiled["time_median_s"]          # a cold inductor compile: seconds
    assert (scripted["backend"], scripted["compile_backend"], scripted["recompiles"]) == ("torchscript",
                                                                                          "torchscript", None)
    assert "compile_s" not in eager and eager["compute_dtype"] == "float32"
    assert (by[("cudagraph-lstm", "train")]["status"], by[("cudagraph-lstm", "train")]["reason"]) == (
        "skipped", "cudagraph-lstm runs on cuda only, not cpu")
    assert [by[(i, "forward")]["compute_dtype"] for i in ("fused-lstm", "onednn-lstm")] == ["bfloat16", "bfloat16"]
    assert {(p.dtype, p.library) for p in run.meta.gemm_peaks} == {(d, lib) for d in ("float32", "bfloat16")
                                                                     for lib in ("aten", "onednn")}
    peaks = {d: max(p.gemm_peak_gflops_per_s for p in run.meta.gemm_peaks if p.dtype == d)    # the best library's
             for d in ("float32", "bfloat16")}                                                # autocast's GEMMs: its
    assert by[("onednn-lstm", "forward")]["gemm_peak_gflops_per_s"] == peaks["bfloat16"]
    assert eager["gemm_peak_gflops_per_s"] == peaks["float32"]
    on_disk = pd.read_csv(run.dir / "timings.csv")
    assert on_disk.set_index("impl").loc["compiled-lstm", "compile_backend"] == "inductor"


def _timings(compiled_s: float, compile_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = {"run_id": "r", "group_id": "g", "status": "ok", "stack": "", "bidirectional": False,
            "device_label": "cpu: x @ vm", "dtype": "float32", "phase": "train", "batch": 2, "seq_len": 3,
            "hidden": 4, "autocast": "none", "recompiles": None, "graph_breaks": None}
    rows = [{**base, "impl": "fused-lstm", "case_id": "e", "time_median_s": 2.0, "compile_backend": None,
             "compile_mode": None, "compile_s": None},
            {**base, "impl": "compiled-lstm", "case_id": "c", "time_median_s": compiled_s,
             "compile_backend": "inductor", "compile_mode": "default", "compile_s": compile_s}]
    eager = [2.0, 2.1, 1.9, 2.0, 2.2, 1.8, 2.0]
    rounds = [{"run_id": "r", "case_id": "e", "round": i, "time_s": t} for i, t in enumerate(eager)]
    rounds += [{"run_id": "r", "case_id": "c", "round": i, "time_s": t * compiled_s / 2.0}
               for i, t in enumerate([2.0, 2.0, 2.05, 1.95, 2.0, 2.1, 1.9])]
    return pd.DataFrame(rows), pd.DataFrame(rounds)


def test_break_even_is_compile_time_over_the_saving_per_step():
    cc = ratios.compile_costs(*_timings(compiled_s=1.0, compile_s=5.0))
    row = cc.iloc[0]
    assert (row["impl"], row["ref"], row["speedup"], row["break_even_steps"]) == ("compiled-lstm", "fused-lstm",
                                                                                  2.0, 5.0)
    assert row["speedup_ci_low"] > 1
    assert views.compile_view(cc)["break-even"].tolist() == ["5 steps"]


def test_a_compiled_step_that_is_not_faster_never_breaks_even():
    cc = ratios.compile_costs(*_timings(compiled_s=2.5, compile_s=5.0))
    assert cc.iloc[0]["speedup"] == 0.8
    assert views.compile_view(cc)["break-even"].tolist() == ["never"]
    no_rounds = ratios.compile_costs(_timings(compiled_s=1.0, compile_s=5.0)[0], None)
    assert views.compile_view(no_rounds)["break-even"].tolist() == ["no interval"]
    assert ratios.compile_costs(_timings(1.0, 5.0)[0].iloc[:1], None) is None       # no compiled row


def test_the_findings_say_whether_a_compile_pays_back():
    from harness.analysis import findings
    pays = ratios.compile_costs(*_timings(compiled_s=1.0, compile_s=5.0))
    assert findings.compilers(pays) == ["On cpu (x), compiled-lstm compiles in 5.00 s (median of 1 cases) and "
                                        "runs at 2.00x fused-lstm's speed: its compile pays back after 5 steps at "
                                        "best (1 of 1 cases)."]
    never = ratios.compile_costs(*_timings(compiled_s=2.5, compile_s=5.0))
    assert findings.compilers(never)[0].endswith("runs at 0.800x fused-lstm's speed: it is never measurably faster, "
                                                 "so its compile never pays back.")
    assert findings.compilers(None) == []
