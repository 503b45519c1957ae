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
                                 "peak_fraction": 0.1, "peak_mem_bytes": 1000.0 * T})
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


def test_speedup_heatmap_values():
    fig = plots.speedup(timing_rows())
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in shown] == [f"bptt-lstm\n{LABEL}", f"fused-lstm\n{LABEL}"]
    # time(torch-lstm) / time(impl): 0.004 / 0.008 and 0.004 / 0.002 in both (hidden, batch) cells
    assert [t.get_text() for t in shown[0].texts] == ["0.50"] * 2 and [t.get_text() for t in shown[1].texts] == \
        ["2.00"] * 2
    assert plots.speedup(timing_rows().query("impl != 'torch-lstm'")) is None


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
