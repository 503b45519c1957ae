"""The report's opening sentences, the scaling fits, run-to-run ratios and human units, on literal data."""
import numpy as np
import pandas as pd
import pytest

from harness.analysis import findings, ratios, summary
from harness.core import units

LABEL = "cpu: Test CPU @ host"


# -- units ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, text", [(0.008318, "8.32 ms"), (1.5, "1.50 s"), (0.0009997, "1.00 ms"),
                                     (2e-7, "200 ns"), (123.456, "123 s"), (0.9996, "1.00 s"), (float("nan"), "")])
def test_seconds(x, text):
    assert units.seconds(x) == text


@pytest.mark.parametrize("x, text", [(5.151e6, "4.91 MiB"), (1023, "1020 B"), (3.2e9, "2.98 GiB"), (0, "0 B"),
                                     (2**20 - 1, "1020 KiB")])
def test_mebibytes(x, text):
    assert units.mebibytes(x) == text


def test_rates_percent_ratio_and_significant_figures():
    assert units.rate(1.6e11, "FLOP/s") == "160 GFLOP/s"
    assert units.rate(2.1e5, "tokens/s") == "210 ktokens/s"
    assert units.percent(0.853) == "85.3%" and units.percent(0.0123) == "1.23%"
    assert units.times(3.2149) == "3.21x"
    assert [units.sig(x) for x in (99.96, 0.5, 0.0012345, 12345678, -2.5, 0)] == \
        ["100", "0.500", "0.00123", "1.23e+07", "-2.50", "0"]


# -- derived tables ---------------------------------------------------------------------------------------
def grid_timings(time_of) -> pd.DataFrame:
    rows = []
    for impl in ("torch-lstm", "scratch-lstm"):
        for h in (64, 256):
            for T in (25, 100):
                for b in (8, 32):
                    rows.append({"status": "ok", "impl": impl, "cell": "lstm", "phase": "train", "device_label": LABEL,
                                 "dtype": "float32", "hidden": h, "seq_len": T, "batch": b, "input": h,
                                 "time_median_s": time_of(impl, h, T, b), "run_id": "r", "group_id": f"g{h}{T}{b}",
                                 "case_id": f"{impl}-{h}-{T}-{b}"})
    return pd.DataFrame(rows)


def test_scaling_recovers_exact_exponents():
    t = grid_timings(lambda impl, h, T, b: (3e-9 if impl == "torch-lstm" else 1e-8) * h ** 2 * T * b ** 0.5)
    fits = summary.scaling(t).set_index("impl")
    assert fits.loc["torch-lstm", ["exp_hidden", "exp_seq_len", "exp_batch"]].tolist() == pytest.approx([2, 1, 0.5])
    assert fits.loc["torch-lstm", "r2"] == pytest.approx(1.0)
    assert fits.loc["torch-lstm", "range"] == "hidden 64–256, seq_len 25–100, batch 8–32"
    assert fits.loc["torch-lstm", "points"] == 8
    one_axis = t[(t["hidden"] == 64) & (t["batch"] == 8)]         # only seq_len varies: 2 points, 2 unknowns
    assert summary.scaling(one_axis) is None


def test_fastest_names_the_winner_and_its_speed_up():
    t = grid_timings(lambda impl, h, T, b: (0.001 if impl == "torch-lstm" else 0.004) * T / 25)
    (s,) = findings.fastest(t, None)
    assert s.startswith("On cpu (Test CPU), torch-lstm is the fastest LSTM for a train step at 8 of 8 sizes (b8 t25 "
                        "h64, b8 t25 h256, b8 t100 h64, b8 t100 h256, ...)")
    assert "it is 4.00x as fast as the tutorial's scratch-lstm (median over 8 sizes, range 4.00x–4.00x" in s


def test_task_and_cost_sentences():
    training = pd.DataFrame([
        {"status": "ok", "task": "adding", "impl": impl, "cell": cell, "forget_bias": fb, "seq_len": 50, "step": 100,
         "eval_loss": loss, "baseline_loss": 1 / 6, "run_id": "r", "hidden": 8, "seed": 0, "lr": 1e-3, "batch": 8,
         "case_id": impl, "eval_accuracy": 0.5, "wall_s": 1.0}
        for impl, cell, fb, loss in (("torch-lstm", "lstm", 1.0, 0.01), ("torch-rnn", "rnn", np.nan, 0.17))])
    assert findings.tasks(training) == [
        "On the adding task (T=50, 100 steps), seeds solved: torch-lstm fb=1.0 1 of 1, torch-rnn tanh 0 of 1 (solved: "
        "the final held-out loss below 0.1 x the task's baseline (1/6 for adding, 10 ln 8 / (T + 20) for copy))."]
    ratios = pd.DataFrame([{"kind": "params", "ratio": 4.0, "pair": "params LSTM/RNN"},
                           {"kind": "time", "ratio": 2.0, "pair": "time torch-lstm/torch-rnn"},
                           {"kind": "time", "ratio": 3.0, "pair": "time torch-lstm/torch-rnn"}])
    assert findings.lstm_rnn_cost(ratios) == [
        "LSTM/RNN train-step time on one backend: torch-lstm/torch-rnn 2.50x (range 2.00x–3.00x over 2 sizes); the "
        "LSTM has exactly 4x the parameters."]


def test_run_ratios_between_two_runs():
    a = grid_timings(lambda impl, h, T, b: 0.010)
    b = a.assign(run_id="s", time_median_s=0.012, case_id=a["case_id"] + "-s")
    rr = ratios.run_ratios(pd.concat([a, b]), None, ["r", "s"])
    assert len(rr) == 16 and rr["ratio"].tolist() == pytest.approx([1.2] * 16)
    assert rr["ratio_ci_low"].isna().all()                      # no rounds: no interval
    (s,) = findings.between_runs(rr)
    assert s == ("Run s took a median 1.20x the time of r over their 16 common cases (range 1.20x–1.20x): measurably "
                 "slower at 0, faster at 0.")
    assert ratios.run_ratios(a, None, ["r"]) is None


def test_breakdown_sentence():
    rows = [{"device": "cpu", "phase": "train", "batch": 8, "seq_len": 25, "hidden": 64, "impl": impl, "category": c,
             "ms": ms} for impl, split in (("scratch-lstm", (2, 1, 1, 6)), ("onednn-lstm", (9, 0, 0.5, 0.5)))
            for c, ms in zip(("GEMM", "elementwise", "other ops", "overhead"), split, strict=True)]
    assert findings.time_split(pd.DataFrame(rows)) == [
        "Profiled at b8 t25 h64 on cpu (train), scratch-lstm spends 60.0% of its step in framework overhead (in no "
        "op, or the autograd engine) and onednn-lstm the largest share in GEMM, 90.0%."]


def test_no_data_no_sentences():
    empty = {"timings": None, "rounds": None, "decay": None, "training": None}
    assert findings.findings(empty, None) == []
