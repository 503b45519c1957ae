"""Every figure, drawn from small synthetic long-form tables: what it drew, not only that it drew."""
import numpy as np
import pandas as pd
import pytest

from harness import memory, plots, report

LABEL = "cpu: Test CPU @ host"


def drawn(ax) -> list:
    """The data lines of an axis (seaborn adds empty lines for its legend)."""
    return [ln for ln in ax.lines if len(ln.get_xdata()) > 0]


def gradient_rows(task="", train_steps=(np.nan,)):
    rows = []
    for cell, impl, factor in (("rnn", "torch-rnn", 0.5), ("lstm", "torch-lstm", 0.9)):
        for step in train_steps:
            for seed in (0, 1):
                for d in range(6):
                    rows.append({"status": "ok", "wrt": "x", "task": task, "init": "pytorch", "cell": cell,
                                 "impl": impl, "forget_bias": 0.0 if cell == "lstm" else np.nan, "seq_len": 6,
                                 "distance": d, "grad_norm": factor ** d * (1 + seed / 10), "train_step": step})
    return pd.DataFrame(rows)


def timing_rows():
    rows = []
    for impl, cell, seconds in (("torch-lstm", "lstm", 0.004), ("fused-lstm", "lstm", 0.002),
                                ("bptt-lstm", "lstm", 0.008)):
        for phase in ("forward", "train"):
            for T in (5, 10):
                for H in (8, 16):
                    rows.append({"status": "ok", "impl": impl, "cell": cell, "phase": phase, "device_label": LABEL,
                                 "dtype": "float32", "batch": 2, "seq_len": T, "hidden": H,
                                 "time_median_s": seconds * T, "tokens_per_s": 2 * T / (seconds * T),
                                 "peak_fraction": 0.1, "peak_mem_bytes": 1000.0 * T,
                                 # against torch-lstm: bptt-lstm 2x slower (measurably), fused-lstm 2x faster
                                 # with an interval that holds 1 at T=5
                                 "ratio_ref": "torch-lstm", "ratio": seconds / 0.004})
    for r in rows:
        r["ratio_ci_low"], r["ratio_ci_high"] = {"torch-lstm": (1.0, 1.0), "bptt-lstm": (1.8, 2.2),
                                                 "fused-lstm": (0.4, 0.6 if r["seq_len"] == 10 else 1.1)}[r["impl"]]
    return pd.DataFrame(rows)


def test_vanishing_gradients():
    decay = pd.DataFrame([
        {"status": "ok", "wrt": "x", "task": "", "impl": "torch-lstm", "init": "pytorch", "cell": "lstm",
         "forget_bias": 0.0, "decay_factor": 0.9, "decay_ci_low": 0.85, "decay_ci_high": 0.95},
        {"status": "ok", "wrt": "x", "task": "", "impl": "torch-rnn", "init": "pytorch", "cell": "rnn",
         "forget_bias": np.nan, "decay_factor": 0.5, "decay_ci_low": 0.45, "decay_ci_high": 0.55}])
    fig = plots.vanishing_gradients(gradient_rows(), decay)
    curves, factors = fig.axes[:2]
    assert curves.get_yscale() == "log" and curves.get_xlabel() == "distance T - t (steps)"
    assert len(drawn(curves)) == 2                                   # one line per cell (and config)
    assert [t.get_text() for t in factors.get_yticklabels()] == ["torch-rnn pytorch", "torch-lstm pytorch fb=0.0"]
    assert plots.vanishing_gradients(gradient_rows(task="adding"), decay) is None     # task curves: another figure


def test_training_effect():
    fig = plots.training_effect(gradient_rows(task="adding", train_steps=(0, 50)))
    assert len(fig.axes) == 2                                        # a column per model
    assert [len(drawn(ax)) for ax in fig.axes] == [2, 2]             # a line per checkpoint
    assert plots.training_effect(gradient_rows()) is None


def test_learning_curves_draw_the_baseline():
    rows = [{"status": "ok", "task": task, "impl": impl, "cell": cell, "forget_bias": 0.0 if cell == "lstm" else np.nan,
             "seq_len": 20, "step": step, "eval_loss": 0.2 / (1 + step), "baseline_loss": base}
            for task, base in (("adding", 1 / 6), ("copy", 0.5)) for impl, cell in (("torch-lstm", "lstm"),
                                                                                    ("torch-rnn", "rnn"))
            for step in (0, 10, 20)]
    fig = plots.learning_curves(pd.DataFrame(rows))
    assert len(fig.axes) == 2
    baselines = [ln.get_ydata()[0] for ax in fig.axes for ln in ax.lines if ln.get_linestyle() == "--"]
    assert baselines == pytest.approx([1 / 6, 0.5])
    assert [len(drawn(ax)) for ax in fig.axes] == [3, 3]              # two models and the baseline


def test_throughput():
    fig = plots.throughput(timing_rows())
    assert [ax.get_title() for ax in fig.axes] == [f"{LABEL} | against {a}" for a in ("seq_len", "hidden", "batch")]
    assert [len(drawn(ax)) for ax in fig.axes] == [3, 3, 3]           # an implementation each
    assert all(ax.get_yscale() == "log" for ax in fig.axes)


def test_speedup_points_and_intervals():
    fig = plots.speedup(timing_rows())
    assert [ax.get_title() for ax in fig.axes] == [f"{LABEL}, forward", f"{LABEL}, train"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h8 b2 t5", "h8 b2 t10", "h16 b2 t5", "h16 b2 t10"]
    points = {c.get_label(): c for c in ax.collections if c.get_label() in ("bptt-lstm / torch-lstm",
                                                                           "fused-lstm / torch-lstm")}
    bptt, fused = points["bptt-lstm / torch-lstm"], points["fused-lstm / torch-lstm"]
    assert list(bptt.get_offsets()[:, 1]) == [0.5] * 4 and list(fused.get_offsets()[:, 1]) == [2.0] * 4
    # hollow where the interval holds 1: fused-lstm at T=5 (0.4 to 1.1), filled elsewhere
    white = [tuple(fc) == (1.0, 1.0, 1.0, 1.0) for fc in fused.get_facecolors()]
    assert white == [True, False, True, False]
    assert not any(tuple(fc) == (1.0, 1.0, 1.0, 1.0) for fc in bptt.get_facecolors())
    # the error bars: speed-up 1 / ratio's interval, e.g. bptt-lstm 1/2.2 to 1/1.8
    segs = [seg for c in ax.collections if c not in points.values() for seg in c.get_segments()]
    spans = sorted({(round(float(s[0][1]), 4), round(float(s[1][1]), 4)) for s in segs})
    assert spans == [(round(1 / 2.2, 4), round(1 / 1.8, 4)), (round(1 / 1.1, 4), 2.5), (round(1 / 0.6, 4), 2.5)]
    assert plots.speedup(timing_rows().query("impl == 'torch-lstm'")) is None


def test_roofline():
    fig = plots.roofline(timing_rows())
    assert sorted(ax.get_title() for ax in fig.axes) == [f"{LABEL} | forward", f"{LABEL} | train"]
    assert fig.axes[0].get_ylabel() == "fraction of GEMM peak"


def test_one_implementation_alone_is_drawn():
    """seaborn's dodge divides by the hue levels less one: a run of a single implementation drew nothing."""
    one = timing_rows().query("impl == 'fused-lstm'")
    assert len(plots.roofline(one).axes) == 2
    ratios = pd.DataFrame([{"kind": "params", "pair": "params LSTM/RNN", "hidden": 8, "ratio": 4.0}])
    assert len(plots.cost_ratio(ratios).axes) == 1


def test_memory_with_the_analytic_estimate():
    fig = plots.memory_use(timing_rows())
    assert len(fig.axes) == 2                                         # a panel per (hidden, batch)
    est = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    [line] = est
    assert list(line.get_ydata()) == pytest.approx([memory.fused_lstm_estimate(2, T, 8, 4) / 2**20 for T in (5, 10)])


def test_cost_ratio():
    ratios = pd.DataFrame([{"kind": k, "pair": p, "hidden": h, "ratio": r}
                           for h in (8, 16) for k, p, r in (("params", "params LSTM/RNN", 4.0),
                                                             ("time", "time torch-lstm/torch-rnn", 2.5))])
    fig = plots.cost_ratio(ratios)
    [ax] = fig.axes
    assert [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [4.0]
    assert plots.cost_ratio(None) is None


def test_no_data_no_figure():
    not_ok = pd.DataFrame({"status": ["failed"]})                    # a table whose rows all failed
    for stem, (fn, needs) in plots.FIGURES.items():
        assert fn(*(pd.DataFrame() if n == "ratios" else not_ok for n in needs)) is None, stem


def test_a_broken_figure_is_named_or_raises(tmp_path, monkeypatch):
    from test_sweep import write_tiny

    from harness import scenario, sweep

    run, _ = sweep.run_sweep(scenario.load(write_tiny(tmp_path)), tmp_path / "r", quiet=True)

    def boom(timings):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(plots, "FIGURES", {"boom": (boom, ("timings",))})
    out = report.render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True)
    assert "figure boom: not drawn (ZeroDivisionError: float division by zero)" in (out / "index.html").read_text()
    with pytest.raises(ZeroDivisionError):
        report.render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)
