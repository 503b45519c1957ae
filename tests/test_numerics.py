"""Speed beside accuracy, on synthetic tables (analysis/numerics.py), and the terminal's numerics lines."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import numerics
from harness.run import console

DEV = "cpu: Xeon @ vm"


def _row(impl, time_s, out_err, autocast="none", numerics_="ok", cell="lstm", phase="train", hidden=64, tol=None):
    return {"run_id": "r", "case_id": f"{impl}-{autocast}-{hidden}", "group_id": f"g-{autocast}-{hidden}",
            "status": "ok", "impl": impl, "cell": cell, "device_label": DEV, "phase": phase, "batch": 16,
            "seq_len": 25, "hidden": hidden, "input": hidden, "layers": 1, "bidirectional": False, "proj_size": 0,
            "dropout": 0.0, "lengths": "fixed", "lengths_mode": "", "dtype": "float32", "autocast": autocast,
            "tf32": "", "stack": "" if autocast == "none" else f"autocast {autocast}", "time_median_s": time_s,
            "numerics": numerics_, "out_err": out_err, "grad_err": out_err / 2,
            "err_tol": tol or (1e-4 if autocast == "none" else 5e-2),
            "compute_dtype": "float32" if autocast == "none" else autocast, "err_ref": "torch-lstm float64 cpu"}


TIMINGS = pd.DataFrame([
    _row("torch-lstm", 4e-3, 3e-7), _row("onednn-lstm", 2e-3, 4e-7),
    _row("torch-lstm", 8e-3, 7e-3, "bfloat16"), _row("onednn-lstm", 1e-3, 5e-3, "bfloat16"),
    _row("fused-lstm", 5e-3, 3e-7, numerics_="unchecked"),          # not checked: no error row
])


def test_error_rows_hold_every_precision_against_the_float32_reference():
    e = numerics.error_rows(TIMINGS).set_index(["impl", "precision"])
    assert len(e) == 4
    assert e.loc[("onednn-lstm", "bfloat16 autocast"), "speed"] == pytest.approx(4.0)     # 4 ms / 1 ms
    assert e.loc[("torch-lstm", "bfloat16 autocast"), "speed"] == pytest.approx(0.5)
    assert e.loc[("onednn-lstm", "float32"), "speed"] == pytest.approx(2.0)
    assert e.loc[("onednn-lstm", "bfloat16 autocast"), "shape"] == ""                       # the stack, precision apart
    assert e.loc[("torch-lstm", "bfloat16 autocast"), "worst_err"] == pytest.approx(7e-3)


def test_the_precision_finding_names_the_fastest_row_beyond_float32s_tolerance_and_its_error():
    (s,) = numerics.precision_sentences(TIMINGS)
    assert s == ("At b16 t25 h64 train on cpu (Xeon), onednn-lstm under bfloat16 autocast is 2.00x as fast as the "
                 "fastest row within float32's tolerance (onednn-lstm in float32; one round: no interval) and 0.005 "
                 "off float64 (the largest such gain of 1 sizes where a row beyond float32's tolerance was the "
                 "fastest).")


def test_where_lower_precision_is_never_fastest_the_finding_says_so():
    slow = TIMINGS.assign(time_median_s=[4e-3, 2e-3, 8e-3, 3e-3, 5e-3])
    assert numerics.precision_sentences(slow) == [
        "On cpu (Xeon), no row beyond float32's tolerance (0.0001) was the fastest at its size: lower precision "
        "(bfloat16 autocast) bought no speed here."]


def test_rows_off_are_listed_first_and_in_their_own_table():
    bad = pd.concat([TIMINGS, pd.DataFrame([_row("fused-lstm", 3e-3, 2e-3, numerics_="off", hidden=128)])],
                    ignore_index=True)
    first = numerics.precision_sentences(bad)[0]
    assert first == ("1 timed rows are off their float64 reference by more than the tolerance of what they computed "
                     "in: fused-lstm in float32 (train, b16 t25 h128) 0.002 against 0.0001.")
    off = numerics.off_rows(bad)
    assert list(off["impl"]) == ["fused-lstm"] and off.iloc[0]["out_err"] == 2e-3
    assert numerics.off_rows(TIMINGS) is None
    summary = numerics.error_summary(numerics.error_rows(bad)).set_index(["impl", "precision"])
    assert summary.loc[("fused-lstm", "float32"), "off"] == 1
    assert summary.loc[("torch-lstm", "bfloat16 autocast"), "max_out_err"] == 7e-3


def _curve(case_id, seed, factor, autocast, T=30):
    return [{"run_id": "r", "case_id": case_id, "seed": seed, "impl": "scratch-rnn", "cell": "rnn", "init": "pytorch",
             "forget_bias": "", "nonlinearity": "tanh", "hidden": 8, "seq_len": T, "batch": 2, "layers": 1,
             "spectral_radius": "", "device": "cpu", "dtype": "float32", "wrt": "x", "task": "", "step": t,
             "distance": T - t, "grad_norm": factor ** (T - t), "status": "ok", "autocast": autocast}
            for t in range(1, T + 1)]


def test_precision_decay_pairs_seeds_and_gives_the_difference_with_its_interval():
    rows = []
    for seed, (f32, f16) in enumerate([(0.5, 0.6), (0.5, 0.62), (0.5, 0.58)]):
        rows += _curve("a", seed, f32, "none") + _curve("b", seed, f16, "bfloat16")
    (r,) = numerics.precision_decay(pd.DataFrame(rows)).to_dict("records")
    assert (r["model"], r["autocast"], r["seeds"]) == ("scratch-rnn tanh", "bfloat16", 3)
    assert r["factor_float32"] == pytest.approx(0.5) and r["factor_autocast"] == pytest.approx(0.6)
    assert r["difference"] == pytest.approx(0.1)
    assert r["diff_ci_low"] == pytest.approx(0.1 - 4.303 * 0.02 / 3 ** 0.5, abs=1e-3)    # t(2) = 4.303, sd 0.02
    assert r["vanish_float32"] == 10                                                     # 0.5**10 < 1e-3 <= 0.5**9
    assert r["vanish_autocast"] == pytest.approx((14 + 15 + 13) / 3)
    (s,) = numerics.decay_sentence(pd.DataFrame([r]))
    assert s.startswith("Under bfloat16 autocast the per-step gradient decay factor moved measurably in 1 of 1 models")


def test_no_autocast_cases_no_precision_decay():
    assert numerics.precision_decay(pd.DataFrame(_curve("a", 0, 0.5, "none"))) is None
    assert numerics.precision_decay(None) is None


def test_the_terminal_names_a_row_off_and_its_tolerance(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    row = {"status": "ok", "numerics": "off", "out_err": 2e-3, "grad_err": None, "err_tol": 1e-4,
           "compute_dtype": "float32", "impl": "fused-lstm", "gemm": "aten", "batch": 2, "seq_len": 3, "hidden": 4,
           "phase": "train"}
    assert console.numerics_note(row) == "  NUMERICS OFF (out_err 0.002 > 0.0001 for float32)"
    assert console.numerics_note({**row, "numerics": "ok"}) == ""
    assert console.numerics_lines([row, {**row, "numerics": "ok"}]) == [
        "1 timed rows are off their float64 reference (numerics in timings.csv):",
        "  fused-lstm         b2 t3 h4          train    NUMERICS OFF (out_err 0.002 > 0.0001 for float32)"]
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert console.numerics_note(row) == "  \x1b[31mNUMERICS OFF (out_err 0.002 > 0.0001 for float32)\x1b[0m"
