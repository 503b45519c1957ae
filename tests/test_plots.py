"""Every figure, drawn from small synthetic long-form tables: what it drew, not only that it drew."""
import numpy as np
import pandas as pd
import pytest

from harness.implementations import fused
from harness.report import figures
from harness.report.render import render

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
    fig = figures.vanishing_gradients(gradient_rows(), decay)
    curves, factors = fig.axes[:2]
    assert curves.get_yscale() == "log" and curves.get_xlabel() == "distance T - t (steps)"
    assert len(drawn(curves)) == 2                                   # one line per cell (and config)
    assert [t.get_text() for t in factors.get_yticklabels()] == ["torch-rnn pytorch", "torch-lstm pytorch fb=0.0"]
    assert figures.vanishing_gradients(gradient_rows(task="adding"), decay) is None     # task curves: another figure


def test_training_effect():
    fig = figures.training_effect(gradient_rows(task="adding", train_steps=(0, 50)))
    assert len(fig.axes) == 2                                        # a column per model
    assert [len(drawn(ax)) for ax in fig.axes] == [2, 2]             # a line per checkpoint
    assert figures.training_effect(gradient_rows()) is None


def test_learning_curves_draw_the_baseline():
    rows = [{"status": "ok", "task": task, "impl": impl, "cell": cell, "forget_bias": 0.0 if cell == "lstm" else np.nan,
             "seq_len": 20, "step": step, "eval_loss": 0.2 / (1 + step), "baseline_loss": base}
            for task, base in (("adding", 1 / 6), ("copy", 0.5)) for impl, cell in (("torch-lstm", "lstm"),
                                                                                    ("torch-rnn", "rnn"))
            for step in (0, 10, 20)]
    fig = figures.learning_curves(pd.DataFrame(rows))
    assert len(fig.axes) == 2
    baselines = [ln.get_ydata()[0] for ax in fig.axes for ln in ax.lines if ln.get_linestyle() == "--"]
    assert baselines == pytest.approx([1 / 6, 0.5])
    assert [len(drawn(ax)) for ax in fig.axes] == [3, 3]              # two models and the baseline


def test_throughput():
    """Each size that varies against its values, the others fixed where it varies most (the largest on a tie): not
    a median over sizes that mixes them. batch was timed at one value: no panel of its own."""
    fig = figures.throughput(timing_rows())
    assert [ax.get_title() for ax in fig.axes] == [f"against seq_len (hidden 16, batch 2)\n{LABEL}",
                                                   f"against hidden (seq_len 10, batch 2)\n{LABEL}"]
    assert [len(drawn(ax)) for ax in fig.axes] == [3, 3]              # an implementation each
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    one = figures.throughput(timing_rows().query("hidden == 8 and seq_len == 5"))     # no size varies
    assert [ax.get_title() for ax in one.axes] == [f"at the one size measured\n{LABEL}"]


def test_speedup_points_and_intervals():
    fig = figures.speedup(timing_rows())
    assert [ax.get_title() for ax in fig.axes] == [f"{LABEL}, forward", f"{LABEL}, train"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b2 t5 h8", "b2 t5 h16", "b2 t10 h8", "b2 t10 h16"]
    points = {c.get_label(): c for c in ax.collections if c.get_label() in ("bptt-lstm / torch-lstm",
                                                                           "fused-lstm / torch-lstm")}
    bptt, fused = points["bptt-lstm / torch-lstm"], points["fused-lstm / torch-lstm"]
    assert list(bptt.get_offsets()[:, 1]) == [0.5] * 4 and list(fused.get_offsets()[:, 1]) == [2.0] * 4
    # hollow where the interval holds 1: fused-lstm at T=5 (0.4 to 1.1), filled elsewhere
    white = [tuple(fc) == (1.0, 1.0, 1.0, 1.0) for fc in fused.get_facecolors()]
    assert white == [True, True, False, False]
    assert not any(tuple(fc) == (1.0, 1.0, 1.0, 1.0) for fc in bptt.get_facecolors())
    # the error bars: speed-up 1 / ratio's interval, e.g. bptt-lstm 1/2.2 to 1/1.8
    segs = [seg for c in ax.collections if c not in points.values() for seg in c.get_segments()]
    spans = sorted({(round(float(s[0][1]), 4), round(float(s[1][1]), 4)) for s in segs})
    assert spans == [(round(1 / 2.2, 4), round(1 / 1.8, 4)), (round(1 / 1.1, 4), 2.5), (round(1 / 0.6, 4), 2.5)]
    assert figures.speedup(timing_rows().query("impl == 'torch-lstm'")) is None


def test_roofline():
    fig = figures.roofline(timing_rows())
    assert sorted(ax.get_title() for ax in fig.axes) == [f"{LABEL} | forward", f"{LABEL} | train"]
    assert fig.axes[0].get_ylabel() == "fraction of GEMM ceiling"


def test_one_implementation_alone_is_drawn():
    """seaborn's dodge divides by the hue levels less one: a run of a single implementation drew nothing."""
    one = timing_rows().query("impl == 'fused-lstm'")
    assert len(figures.roofline(one).axes) == 2
    ratios = pd.DataFrame([{"kind": "params", "pair": "params LSTM/RNN", "hidden": 8, "ratio": 4.0}])
    assert len(figures.cost_ratio(ratios).axes) == 1


def test_memory_with_the_analytic_estimate():
    fig = figures.memory_use(timing_rows())
    assert len(fig.axes) == 2                                         # a panel per hidden (at its largest batch)
    est = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    [line] = est
    assert list(line.get_ydata()) == pytest.approx([fused.train_peak_bytes(2, T, 8, 4) / 2**20 for T in (5, 10)])


def test_cost_ratio():
    ratios = pd.DataFrame([{"kind": k, "pair": p, "hidden": h, "ratio": r}
                           for h in (8, 16) for k, p, r in (("params", "params LSTM/RNN", 4.0),
                                                             ("time", "time torch-lstm/torch-rnn", 2.5))])
    fig = figures.cost_ratio(ratios)
    [ax] = fig.axes
    assert [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [4.0]
    assert figures.cost_ratio(None) is None


def test_no_data_no_figure():
    not_ok = pd.DataFrame({"status": ["failed"]})                    # a table whose rows all failed
    derived = ("cost_ratios", "layer_costs", "lengths_costs", "errors", "precision_decay", "crossovers",
               "parallel_memory")   # made from tables:
    # empty when they are
    for stem, (fn, needs) in figures.FIGURES.items():
        assert fn(*(pd.DataFrame() if n in derived else not_ok for n in needs)) is None, stem


def test_a_broken_figure_is_named_or_raises(tmp_path, monkeypatch):
    from test_sweep import write_tiny

    from harness.config import scenario
    from harness.run import sweep

    run, _ = sweep.run_sweep(scenario.load(write_tiny(tmp_path)), tmp_path / "r", quiet=True)

    def boom(timings):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(figures, "FIGURES", {"boom": (boom, ("timings",))})
    out = render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True)
    assert "figure boom: not drawn (ZeroDivisionError: float division by zero)" in (out / "index.html").read_text()
    with pytest.raises(ZeroDivisionError):
        render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)


# -- ticks, legends, and every shipped scenario ---------------------------------------------------------
def tick_texts(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def overlapping(fig) -> list[tuple[str, str]]:
    """Pairs of tick labels of one axis whose boxes overlap, once drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_text() and t.get_visible()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if boxes[i].overlaps(boxes[j]):
                        out.append((labels[i].get_text(), labels[j].get_text()))
    return out


def test_throughput_ticks_sit_at_the_sizes_measured():
    fig = figures.throughput(timing_rows())
    seq, hidden = fig.axes
    assert tick_texts(seq.xaxis) == ["5", "10"] and tick_texts(hidden.xaxis) == ["8", "16"]
    for ax in fig.axes:
        assert ax.xaxis.get_minorticklabels() == [] or not any(t.get_text() for t in ax.xaxis.get_minorticklabels())
        assert all("$" not in t and "×" not in t for t in tick_texts(ax.yaxis))     # no 6x10^1 over 10^2
    assert overlapping(fig) == []


def test_tick_labels_never_overlap():
    t = timing_rows()
    for fig in (figures.speedup(t), figures.roofline(t), figures.memory_use(t), figures.throughput(t)):
        assert overlapping(fig) == []
        figures.plt.close(fig)
    fig = figures.speedup(t)
    lo, hi = fig.axes[0].get_ylim()
    shown = [lab.get_text() for lab in fig.axes[0].yaxis.get_ticklabels() if lo <= lab.get_position()[1] <= hi]
    assert shown == ["0.5", "0.7", "1", "1.5", "2"]                              # axes.RATIO_TICKS in range
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.x0 >= fig.axes[0].get_window_extent().x1                      # beside the axes, not on a point


def breakdown_rows():
    rows = []
    for size, impls in (((8, 25, 64), ("scratch-lstm", "onednn-lstm", "torch-lstm")),
                        ((32, 100, 256), ("torch-lstm",))):
        for impl in impls:
            split = {"scratch-lstm": (2, 3, 1, 6), "onednn-lstm": (4, 0.5, 0.5, 1), "torch-lstm": (3, 2, 1, 2)}[impl]
            rows += [{"device": "cpu", "phase": "train", "batch": size[0], "seq_len": size[1], "hidden": size[2],
                      "impl": impl, "category": c, "ms": ms}
                     for c, ms in zip(("GEMM", "elementwise", "other ops", "overhead"), split, strict=True)]
    return pd.DataFrame(rows)


def test_time_breakdown_stacks_one_bar_per_implementation():
    fig = figures.time_breakdown(breakdown_rows())
    [ax] = fig.axes
    assert ax.get_title() == "cpu, train, b8 t25 h64"          # the size most implementations were profiled at
    assert tick_texts(ax.yaxis) == ["onednn-lstm", "torch-lstm", "scratch-lstm"]    # fastest first
    bars = {(c.get_label(), round(p.get_y() + p.get_height() / 2)): (p.get_x(), p.get_width())
            for c in ax.containers for p in c.patches}
    # scratch-lstm (the third bar): GEMM 0-2, elementwise 2-5, other ops 5-6, overhead 6-12
    assert [bars[(c, 2)] for c in ("GEMM", "elementwise", "other ops", "overhead")] == \
        [(0, 2), (2, 3), (5, 1), (6, 6)]
    assert figures.time_breakdown(None) is None


MAX_SYNTHETIC = 600     # cases a synthetic table draws at most


def synthetic_tables(sc) -> dict:
    """Rows of every shape a scenario's cases make, with made-up numbers: for drawing, not for results."""
    from harness.config import cases as C
    from harness.config import scenario
    from harness.implementations import lengths, registry

    timings, gradients, decay, training, breakdown, dynamics = [], [], [], [], [], []
    cases = scenario.expand(sc)
    # a large grid (full: 4640) by every n-th case: impl varies slowest, so every implementation stays
    for k, case in enumerate(cases[::max(1, len(cases) // MAX_SYNTHETIC)]):
        cell = registry.get(case.impl).cell
        label = f"{case.device.split(':')[0]}: Test @ host"
        if isinstance(case, C.ThroughputCase):
            t = 1e-6 * case.hidden * case.seq_len * (1 + k % 7)
            timings.append({**case.as_row(), "status": "ok", "cell": cell, "device_label": label, "backend": "native",
                            "time_median_s": t, "tokens_per_s": case.batch * case.seq_len / t, "peak_fraction": 0.1,
                            "peak_mem_bytes": 1e4 * case.seq_len if case.memory else np.nan, "params": 4.0,
                            "ratio_ref": "torch-lstm", "ratio": 1 + k % 3, "ratio_ci_low": 0.9, "ratio_ci_high": 3.5,
                            "run_id": "r", "case_id": str(k), "group_id": "g", "gemm_peak_gflops_per_s": 100.0,
                            "flops": 8.0 * case.hidden ** 2 * case.batch * case.seq_len,
                            "bidirectional": str(case.bidirectional), "padding_fraction": 0.0,
                            "tokens": case.batch * (case.seq_len if case.lengths == "fixed" else
                                                    sum(lengths.parse(case.lengths)) // 2),
                            "numerics": "ok", "out_err": (1 + k % 5) * (1e-6 if case.autocast == "none" else 1e-3),
                            "grad_err": 2e-6, "err_tol": 1e-4 if case.autocast == "none" else 5e-2,
                            "compute_dtype": case.dtype if case.autocast == "none" else case.autocast})
            timings[-1]["stack"] = C.stack_label(timings[-1])
            breakdown += [{"device": case.device, "phase": case.phase, "batch": case.batch, "seq_len": case.seq_len,
                           "hidden": case.hidden, "impl": case.impl, "category": c, "ms": 1.0}
                          for c in ("GEMM", "elementwise", "other ops", "overhead")]
        elif isinstance(case, C.GradientCase):
            base = {"status": "ok", "wrt": "x", "task": "", "impl": case.impl, "cell": cell, "init": case.init,
                    "forget_bias": case.forget_bias, "seq_len": case.seq_len, "hidden": case.hidden,
                    "device": case.device, "nonlinearity": case.nonlinearity, "autocast": case.autocast,
                    "spectral_radius": np.nan if case.spectral_radius is None else case.spectral_radius,
                    "run_id": "r", "case_id": str(k)}
            factor = 0.7 if case.autocast == "none" else 0.71
            gradients += [{**base, "distance": d, "step": case.seq_len - d, "grad_norm": factor ** d,
                           "train_step": np.nan, "seed": s} for s in range(case.seeds)
                          for d in range(0, case.seq_len, max(1, case.seq_len // 20))]
            decay.append({**base, "decay_factor": 0.7, "decay_ci_low": 0.6, "decay_ci_high": 0.8, "seeds": case.seeds})
        else:
            for step in (0, case.steps):
                training.append({"status": "ok", "task": case.task, "impl": case.impl, "cell": cell,
                                 "forget_bias": case.forget_bias, "seq_len": case.seq_len, "step": step,
                                 "seed": case.seed, "eval_loss": 1 / (1 + step), "baseline_loss": 0.5,
                                 "init": case.init, "nonlinearity": case.nonlinearity})
                dynamics += [{"task": case.task, "impl": case.impl, "cell": cell, "seq_len": case.seq_len,
                              "init": case.init, "forget_bias": case.forget_bias, "nonlinearity": case.nonlinearity,
                              "seed": case.seed, "train_step": step, "t": t, "jacobian_norm": 1.0 - 0.01 * t,
                              "forget_mean": 0.8 if cell == "lstm" else np.nan,
                              "forget_open": 0.3 if cell == "lstm" else np.nan} for t in (1, case.seq_len)]
    frame = lambda rows: pd.DataFrame(rows) if rows else None  # noqa: E731
    return {"timings": frame(timings), "gradients": frame(gradients), "decay": frame(decay),
            "training": frame(training), "breakdown": frame(breakdown), "dynamics": frame(dynamics)}


# stacks, full, fastrnns and deepbench are left out: quick has the same shapes of stacked, variable-length, cpu and
# cuda rows (full is quick's axes over more sizes; deepbench's are cuda train rows)
@pytest.mark.parametrize("name", ["smoke", "quick", "goals", "classics", "compilers", "parallel"])
def test_no_figure_fails_on_a_shipped_scenario(name):
    from harness.analysis import numerics, parallel, ratios, tables
    from harness.config import scenario

    t = synthetic_tables(scenario.load(name))
    sp = parallel.speedups(tables.plain(t["timings"]), t.get("rounds"))
    inputs = {**t, "timings": tables.plain(t["timings"]), "cost_ratios": ratios.cost_ratios(tables.plain(t["timings"])),
              "ceilings": None,
              "layer_costs": ratios.layer_costs(t["timings"]), "lengths_costs": ratios.lengths_costs(t["timings"]),
              "errors": numerics.error_rows(t["timings"]), "precision_decay": numerics.precision_decay(t["gradients"]),
              "crossovers": parallel.crossover_table(sp),
              "parallel_memory": parallel.memory_rows(tables.plain(t["timings"]))}
    drawn = []
    for stem, (fn, needs) in figures.FIGURES.items():
        fig = fn(*(inputs[n] for n in needs))              # raises on a shape it cannot draw
        if fig is not None:
            drawn.append(stem)
            figures.plt.close(fig)
    assert ("speed_vs_error" in drawn) == (name in ("quick", "goals", "compilers", "parallel"))   # smoke: no torch-lstm
    assert ("precision_decay" in drawn) == (name == "compilers")        # the one with [[gradients]] under autocast
    assert ("parallel_throughput" in drawn) == ("parallel_memory" in drawn) == (name in ("quick", "parallel"))


def test_learning_curves_of_several_seeds_show_the_mean_and_a_band():
    rows = [{"status": "ok", "task": "adding", "impl": "torch-lstm", "cell": "lstm", "forget_bias": 1.0, "seq_len": 20,
             "step": step, "seed": seed, "eval_loss": (0.1 + 0.1 * seed) / (1 + step), "baseline_loss": 1 / 6}
            for seed in (0, 1) for step in (0, 10, 20)]
    fig = figures.learning_curves(pd.DataFrame(rows))
    [ax] = fig.axes
    [mean] = [ln for ln in drawn(ax) if ln.get_linestyle() != "--"]
    assert list(mean.get_ydata()) == pytest.approx([0.15 / (1 + s) for s in (0, 10, 20)])
    assert len(ax.collections) == 1                        # the band: lowest to highest seed
    assert fig._suptitle.get_text().endswith("(mean of 2 seeds; band: lowest to highest)")
