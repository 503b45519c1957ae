"""The GEMM libraries: the gemm axis, a ceiling per library, the shape ceiling, rows above the measured ceiling,
where a vendor's speed-up comes from, and a format-2 run (one aten peak, no gemm column) that still loads."""
import csv
import io
import json
import shutil
import textwrap
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from harness import cli
from harness.analysis import findings, ratios, summary, tables
from harness.analysis.environments import gemm_lines
from harness.config import cases, scenario
from harness.report import figures
from harness.report.render import render
from harness.run import console, sweep
from harness.store.meta import GemmPeak, read_meta
from harness.store.runs import read_rows

NEW_TIMING_COLUMNS = ("gemm", "gemm_peak_library", "shape_peak_gflops_per_s", "shape_peak_fraction")


def write(tmp_path, body: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# -- the gemm axis -----------------------------------------------------------------------------------
AXIS = """
    name = "axis"
    [[throughput]]
    impl = ["fused-lstm", "torch-lstm", "compiled-lstm"]
    hidden = 4
    seq_len = 3
    batch = 2
    phase = "train"
    gemm = ["aten", "onednn"]
"""


def test_the_gemm_axis_runs_the_models_that_call_their_own_and_collapses_the_kernels(tmp_path):
    cs = scenario.expand(scenario.load(write(tmp_path, AXIS)))
    assert [(c.impl, c.gemm) for c in cs] == [("fused-lstm", "aten"), ("fused-lstm", "onednn"), ("torch-lstm", None),
                                             ("compiled-lstm", "aten"), ("compiled-lstm", "onednn")]
    assert len({cases.group_id(c) for c in cs}) == 1                 # one comparison group: interleaved, paired
    assert cs[1].slug == "fused-lstm_cpu_b2_t3_h4_onednn_train" and cs[0].slug == "fused-lstm_cpu_b2_t3_h4_train"
    plain = scenario.expand(scenario.load(write(tmp_path, AXIS.replace('gemm = ["aten", "onednn"]', ""), "p.toml")))
    assert cases.case_id(plain[0]) == cases.case_id(cs[0])          # the default leaves a stored run's ids alone


def test_an_unknown_gemm_is_one_line(tmp_path, capsys):
    path = write(tmp_path, AXIS.replace('gemm = ["aten", "onednn"]', 'gemm = "mkl"'))
    assert cli.main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (f"error: {path}: [[throughput]] #1, key 'gemm': Input should be 'aten' or "
                                       "'onednn', not 'mkl'\n")


def test_row_gemm_reads_a_stored_rows_library_off_its_backend():
    assert cases.row_gemm({"gemm": "onednn", "backend": "native"}) == "onednn"
    assert [cases.row_gemm({"backend": b}) for b in ("onednn", "cudnn", "native", "inductor", "")] == [
        "onednn", "cudnn", "aten", "aten", "aten"]
    assert cases.row_gemm({"gemm": float("nan"), "backend": "onednn"}) == "onednn"     # a blank in a DataFrame
    assert cases.impl_label("fused-lstm", "onednn") == "fused-lstm[onednn]"
    assert [cases.impl_label(i, g) for i, g in (("fused-lstm", "aten"), ("onednn-lstm", "onednn"), ("x", "onednn"))] \
        == ["fused-lstm", "onednn-lstm", "x"]


def test_ls_names_each_implementations_gemm_libraries_in_aligned_columns(capsys):
    assert cli.main(["ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:19]}
    assert set(rows) == {"scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm", "onednn-lstm", "cudnn-lstm",
                         "scratch-rnn", "torch-rnn", "torch-gru", "compiled-lstm", "compiled-loop-lstm",
                         "scripted-lstm", "cudagraph-lstm", "mingru-scan", "mingru-loop", "minlstm-scan",
                         "minlstm-loop", "dummy"}
    assert "aten | onednn" in rows["minlstm-scan"]
    assert "aten | onednn" in rows["fused-lstm"] and " onednn " in rows["onednn-lstm"]
    assert " cudnn " in rows["cudnn-lstm"] and " aten " in rows["torch-lstm"] and "backend's" in rows["torch-gru"]
    starts = {line.index(desc) for line, desc in ((rows["compiled-loop-lstm"], "fused-lstm's whole forward"),
                                                  (rows["dummy"], "not an LSTM"), (rows["fused-lstm"], "scratch, opt"))}
    assert len(starts) == 1                                          # the descriptions line up


# -- ceilings ----------------------------------------------------------------------------------------
def test_gemm_lines_print_each_library_and_warn_when_the_ceiling_moved():
    def meta(aten, onednn=None):
        peaks = [GemmPeak(device="cpu", device_name="x", dtype="float32", threads=2, gemm_size=8, reps=5,
                          gemm_peak_gflops_per_s=aten, gemm_median_gflops_per_s=aten, library="aten")]
        if onednn is not None:
            peaks.append(peaks[0].model_copy(update={"library": "onednn", "gemm_peak_gflops_per_s": onednn}))
        return SimpleNamespace(gemm_peaks=peaks)
    assert gemm_lines(meta(200.0), meta(200.0, 450.0)) == [
        "GEMM peak cpu float32 2 threads aten: 200 -> 200 GFLOP/s (+0%)",
        "warning: the GEMM ceiling of cpu float32 2 threads moved +125% (200 GFLOP/s, aten -> 450, onednn): the "
        "machine changed, not only the code"]
    assert gemm_lines(meta(200.0, 450.0), meta(210.0, 430.0)) == [
        "GEMM peak cpu float32 2 threads aten: 200 -> 210 GFLOP/s (+5%)",
        "GEMM peak cpu float32 2 threads onednn: 450 -> 430 GFLOP/s (-4%)"]       # within CEILING_MOVED: no warning


def row(impl, ms, **kw):
    return {"status": "ok", "impl": impl, "cell": "lstm", "phase": "train", "device": "cpu",
            "device_label": "cpu: X @ h", "dtype": "float32", "batch": 8, "seq_len": 10, "hidden": 16, "input": 16,
            "stack": "", "run_id": "r", "group_id": "g", "case_id": impl, "time_median_s": ms / 1e3, **kw}


def test_attribution_walks_from_nn_lstm_to_the_vendor_and_the_finding_names_the_largest_step():
    t = pd.DataFrame([row("torch-lstm", 4.0), row("fused-lstm", 5.0), row("fused-lstm[onednn]", 2.0),
                      row("onednn-lstm", 1.0), row("bptt-lstm[onednn]", 1.5), row("scratch-lstm", 9.0)])
    att = ratios.attribution(t)
    assert [(r["from"], r["to"], round(r["factor"], 12)) for _, r in att.iterrows()] == [
        ("torch-lstm", "fused-lstm", 0.8), ("fused-lstm", "fused-lstm[onednn]", 2.5),
        ("fused-lstm[onednn]", "onednn-lstm", 2.0), ("bptt-lstm[onednn]", "onednn-lstm", 1.5),
        ("torch-lstm", "onednn-lstm", 4.0)]
    assert att["factor_ci_low"].isna().all()                        # no rounds: no interval
    assert findings.vendor_steps(att) == [
        "On cpu (X), of onednn-lstm's 4.00x over torch-lstm (train, b8 t10 h16), the largest step is the GEMM "
        "library, 2.50x (fused-lstm against fused-lstm[onednn])."]
    part = ratios.attribution(t[t["impl"] != "onednn-lstm"])         # no vendor's row: no whole way
    assert [(r["from"], r["to"]) for _, r in part.iterrows()] == [("torch-lstm", "fused-lstm"),
                                                                  ("fused-lstm", "fused-lstm[onednn]")]
    assert findings.vendor_steps(part)[0].startswith("On cpu (X), the largest step measured toward the vendor's LSTM "
                                                     "(train, b8 t10 h16) is the GEMM library, 2.50x")
    assert ratios.attribution(t[t["impl"] == "scratch-lstm"]) is None


def test_a_row_above_the_measured_ceiling_is_said_so_never_counted_a_success():
    t = pd.DataFrame([row("onednn-lstm", 1.0, peak_fraction=1.9, gflops_per_s=380.0, gemm_peak_gflops_per_s=200.0,
                          gemm_peak_library="aten"),
                      row("torch-lstm", 4.0, peak_fraction=0.5, gflops_per_s=100.0, gemm_peak_gflops_per_s=200.0,
                          gemm_peak_library="aten")])
    assert findings.peak_fraction(t) == [
        "The best fraction of the GEMM peak is 50.0% of 200 GFLOP/s (aten) on cpu (X), by torch-lstm (train, b8 t10 "
        "h16); the median over 1 cases is 50.0%.",
        "1 cases on cpu (X) read above the measured ceiling, up to 380 GFLOP/s against 200 GFLOP/s (onednn-lstm, "
        "train, b8 t10 h16): the ceiling is in doubt (a faster GEMM path than those measured, or a slower machine "
        "while they were), not a success."]
    assert list(summary.above_ceiling(t)["impl"]) == ["onednn-lstm"]
    line = console.case_line({**row("onednn-lstm", 1.0), "status": "ok", "peak_fraction": 1.9, "gflops_per_s": 380.0,
                              "gemm_peak_gflops_per_s": 200.0, "gemm_peak_library": "aten", "time_iqr_s": 1e-4,
                              "tokens_per_s": 8e4, "backend": "onednn", "gemm": "onednn"})
    assert "190% of peak ABOVE THE MEASURED CEILING (380 GFLOP/s against 200 GFLOP/s, aten)" in line
    ceilings = pd.DataFrame({"device_label": ["cpu: X @ h"] * 2, "library": ["aten", "onednn"], "of_best": [0.5, 1.0]})
    fig = figures.roofline(t.assign(flops=1e6), ceilings)
    ax = fig.axes[0]
    assert sorted(line.get_ydata()[0] for line in ax.get_lines() if len(line.get_ydata())) == [0.5, 1.0]
    odd = [c for c in ax.collections if c.get_label() == "above the measured ceiling"]
    assert len(odd) == 1 and list(odd[0].get_offsets()[:, 1]) == [1.9]
    plt.close(fig)


# -- a run: every library's peak, the shape ceiling, and a format-2 run beside it ---------------------
RUN = """
    name = "libraries"
    [defaults]
    threads = 1
    rounds = 3
    warmup = 1
    [[throughput]]
    impl = ["fused-lstm", "torch-lstm", "onednn-lstm"]
    hidden = 8
    seq_len = 4
    batch = 2
    phase = "train"
    gemm = ["aten", "onednn"]
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, small_gemm):
    tmp = tmp_path_factory.mktemp("ceilings")
    sc = scenario.load(write(tmp, RUN))
    a, _ = sweep.run_sweep(sc, tmp / "r", quiet=True)
    b, _ = sweep.run_sweep(sc, tmp / "r", quiet=True)
    return tmp / "r", a.run_id, b.run_id


def test_a_run_holds_every_librarys_peak_and_each_rows_ceilings(two_runs):
    results, a, _ = two_runs
    meta = read_meta(results / a)
    assert meta.format == 4 and [(p.library, p.blas) for p in meta.gemm_peaks] == [("aten", "mkl"), ("onednn", None)]
    rows = {(r["impl"], r["gemm"]): r for r in read_rows(results / a / "timings.csv")}
    assert set(rows) == {("fused-lstm", "aten"), ("fused-lstm", "onednn"), ("torch-lstm", "aten"),
                         ("onednn-lstm", "onednn")}
    best = max(meta.gemm_peaks, key=lambda p: p.gemm_peak_gflops_per_s)
    for r in rows.values():
        assert r["status"] == "ok" and r["gemm_peak_library"] == best.library
        assert float(r["peak_fraction"]) == pytest.approx(float(r["gflops_per_s"]) / best.gemm_peak_gflops_per_s)
    ceil = summary.ceilings(tables.load_runs([results / a]))
    assert list(ceil["library"]) == ["aten", "onednn"] and ceil["of_best"].max() == 1.0


def test_the_report_says_where_the_vendors_speed_up_comes_from(two_runs, tmp_path):
    results, a, _ = two_runs
    out = render(a, results, tmp_path, quiet=True, strict=True)
    att = pd.read_csv(out / "attribution.csv")
    assert [(r["from"], r["to"]) for _, r in att.iterrows()] == [
        ("torch-lstm", "fused-lstm"), ("fused-lstm", "fused-lstm[onednn]"), ("fused-lstm[onednn]", "onednn-lstm"),
        ("torch-lstm", "onednn-lstm")]
    assert (att["factor_ci_low"] <= att["factor"]).all() and (att["factor"] <= att["factor_ci_high"]).all()
    assert list(pd.read_csv(out / "ceilings.csv")["library"]) == ["aten", "onednn"]
    page = (out / "report.md").read_text()
    assert "## Where a vendor LSTM's speed-up comes from" in page and "| fused-lstm | fused-lstm[onednn] |" in page
    assert ", the largest step is " in page                           # the finding, from the same table
    assert "cpu float32 1 threads aten (mkl): " in page and "cpu float32 1 threads onednn: " in page   # environment


def as_format_2(run_dir) -> None:
    """Rewrite a run as the harness wrote it before the GEMM libraries: run.json format 2 with one aten peak and no
    library keys, timings.csv and breakdown.csv without the new columns, and no row of a model on oneDNN's GEMMs
    (which that harness could not run: its scenario keeps the axis, so a resume has that one case to run)."""
    data = json.loads((run_dir / "run.json").read_text())
    data["format"] = 2
    data["gemm_peaks"] = [{k: v for k, v in p.items() if k not in ("library", "blas")} for p in data["gemm_peaks"]
                          if p["library"] == "aten"]
    (run_dir / "run.json").write_text(json.dumps(data))
    gone = {r["case_id"] for r in read_rows(run_dir / "timings.csv") if r["impl"] == "fused-lstm"
            and r["gemm"] == "onednn"}
    for name in ("timings.csv", "breakdown.csv", "rounds.csv"):
        old = [r for r in read_rows(run_dir / name) if r["case_id"] not in gone]
        header = [c for c in next(csv.reader(io.StringIO((run_dir / name).read_text()))) if c not in NEW_TIMING_COLUMNS]
        buf = io.StringIO()
        w = csv.DictWriter(buf, header, lineterminator="\r\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(old)
        (run_dir / name).write_text(buf.getvalue())


def test_a_format_2_run_loads_compares_reports_and_resumes(two_runs, tmp_path, capsys):
    results, a, b = two_runs
    shutil.copytree(results, tmp_path / "r", symlinks=True)
    results = tmp_path / "r"
    as_format_2(results / a)
    meta = read_meta(results / a)
    assert meta.format == 2 and [p.library for p in meta.gemm_peaks] == ["aten"]       # its one peak: aten's
    t = tables.load_runs([results / a]).tables["timings"]
    assert sorted(zip(t["impl"], t["gemm"], strict=True)) == [          # read off each row's backend
        ("fused-lstm", "aten"), ("onednn-lstm", "onednn"), ("torch-lstm", "aten")]   # its onednn rows are gone
    assert cli.main(["compare", a, b, "--results", str(results)]) in (0, 1)
    out = capsys.readouterr().out
    assert "GEMM peak cpu float32 1 threads aten: " in out and "onednn-lstm cpu" in out      # in common with format 3
    assert cli.main(["report", a, "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    before = read_rows(results / a / "timings.csv")
    assert cli.main(["run", "--resume", a, "--results", str(results), "--quiet"]) == 0
    after = read_rows(results / a / "timings.csv")
    assert len(after) == len(before) + 1                              # only fused-lstm[onednn]'s row was missing
    assert read_meta(results / a).format == 4                        # its tables now have the new columns
    assert {r["case_id"] for r in before} <= {r["case_id"] for r in after}


def test_the_summarys_best_fraction_is_of_the_cases_within_the_ceiling():
    t = pd.DataFrame([row("onednn-lstm", 1.0, peak_fraction=1.9, backend="onednn", tokens_per_s=1.0,
                          peak_mem_bytes=1.0),
                      row("onednn-lstm", 2.0, peak_fraction=0.7, backend="onednn", tokens_per_s=1.0, peak_mem_bytes=1.0,
                          batch=16)])
    [s] = summary.summary(t).to_dict("records")
    assert (s["cases"], s["max_peak_fraction"], s["median_peak_fraction"]) == (2, 0.7, pytest.approx(1.3))
