"""The learning tables and their figures, from synthetic rows with known answers."""
import numpy as np
import pandas as pd

from harness.analysis import findings, learning
from harness.report import figures, views

RNN = {"impl": "torch-rnn", "cell": "rnn", "forget_bias": np.nan, "spectral_radius": np.nan}


def training_rows():
    rows = []
    finals = {("onednn-lstm", "lstm", 1.0, "", "pytorch"): [0.05, 0.2, 0.01],      # 2 of 3 below 0.1 x baseline
              ("torch-rnn", "rnn", np.nan, "tanh", "pytorch"): [1.0, 0.99, 1.01],
              ("torch-rnn", "rnn", np.nan, "relu", "identity"): [0.002, 0.5, 0.09]}   # the IRNN: 2 of 3
    for (impl, cell, fb, nl, init), rels in finals.items():
        for seed, rel in enumerate(rels):
            for step, r in ((0, 1.0), (100, rel)):
                rows.append({"status": "ok", "task": "adding", "impl": impl, "cell": cell, "forget_bias": fb,
                             "nonlinearity": nl, "init": init, "spectral_radius": np.nan, "seq_len": 100,
                             "step": step, "seed": seed, "eval_loss": r / 6, "baseline_loss": 1 / 6,
                             "eval_accuracy": 0.5, "wall_s": 10.0 * (seed + 1) * step / 100, "run_id": "r",
                             "hidden": 8, "lr": 1e-3, "batch": 8, "case_id": f"{impl}{nl}{seed}"})
    return pd.DataFrame(rows)


def test_model_labels_name_what_sets_a_model_apart():
    df = pd.DataFrame([{"impl": "onednn-lstm", "cell": "lstm", "forget_bias": 1.0, "init": "pytorch"},
                       {**RNN, "nonlinearity": "relu", "init": "identity"},
                       {**RNN, "nonlinearity": "", "init": "pytorch"},
                       {**RNN, "impl": "scratch-rnn", "nonlinearity": "linear", "init": "orthogonal",
                        "spectral_radius": 0.9}])
    assert list(learning.model_label(df)) == ["onednn-lstm fb=1.0", "torch-rnn relu identity", "torch-rnn tanh",
                                              "scratch-rnn linear orthogonal rho=0.9"]


def test_success_rates_count_the_seeds_below_a_tenth_of_the_baseline():
    rates = learning.success_rates(training_rows())
    got = {m: (s, n) for m, s, n in zip(rates["model"], rates["solved"], rates["seeds"], strict=True)}
    assert got == {"onednn-lstm fb=1.0": (2, 3), "torch-rnn relu identity": (2, 3), "torch-rnn tanh": (0, 3)}
    lstm = rates[rates["model"] == "onednn-lstm fb=1.0"].iloc[0]
    assert np.isclose(lstm["median_rel_loss"], 0.05) and np.isclose(lstm["best_rel_loss"], 0.01)
    assert lstm["median_wall_s"] == 20.0 and lstm["steps"] == 100
    view = views.success_view(rates)
    assert list(view.iloc[0])[:9] == ["adding", 100, "onednn-lstm fb=1.0", "2 of 3", "100", "0.0500, 0.0100",
                                      "50.0%", 100, "800 (below the paper's: 74,000)"]
    assert list(view.iloc[0])[9] == "20.0 s" and view.iloc[0, 10].startswith("Hochreiter & Schmidhuber 1997")
    assert list(rates["role"]) == ["lstm", "irnn", "tanh rnn"]
    assert views.success_view(rates).iloc[2]["steps to solve (median)"] == ""          # the tanh RNN never did
    assert learning.SOLVED_RULE.startswith("solved: the final held-out loss below 0.1 x the task's baseline")


def test_the_tutorial_claims_table_keeps_the_irnn_apart_from_the_tanh_rnn():
    last = learning.final_losses(training_rows())
    rnn = last[last["cell"] == "rnn"]
    assert sorted(rnn.groupby("nonlinearity")["seed"].count().items()) == [("relu", 3), ("tanh", 3)]


def decay_rows():
    rows = []
    for nl, factors in (("linear", {0.5: 0.5, 1.0: 1.0, 1.5: 1.5}), ("tanh", {0.5: 0.4, 1.0: 0.73, 1.5: 0.95})):
        for rho, f in factors.items():
            rows.append({**RNN, "impl": "scratch-rnn", "nonlinearity": nl, "init": "orthogonal", "wrt": "x",
                         "task": "", "spectral_radius": rho, "decay_factor": f, "decay_ci_low": f - 0.01,
                         "decay_ci_high": f + 0.01, "seeds": 5, "status": "ok"})
    rows.append({**rows[0], "spectral_radius": np.nan, "decay_factor": 0.6})     # not a sweep: left out
    return pd.DataFrame(rows)


def test_the_edge_is_where_the_interval_leaves_1():
    by = learning.decay_by_radius(decay_rows())
    assert len(by) == 6 and set(by["model"]) == {"scratch-rnn linear orthogonal", "scratch-rnn tanh orthogonal"}
    assert findings.edge(decay_rows()) == [
        "Vanishing or exploding, by the recurrent blocks' spectral radius rho (95% intervals of the per-step factor "
        "wholly below or above 1): scratch-rnn linear orthogonal vanishes up to rho=0.5 and explodes from rho=1.5; "
        "scratch-rnn tanh orthogonal never explodes up to rho=1.5 (factor 0.950 there)."]
    view = views.radius_view(by)
    assert list(view.columns) == ["model", "rho=0.5", "rho=1", "rho=1.5"]
    assert list(view.iloc[1]) == ["scratch-rnn tanh orthogonal", "0.400 [0.390, 0.410]", "0.730 [0.720, 0.740]",
                                  "0.950 [0.940, 0.960]"]


def data_lines(ax):
    """Drawn lines: more than one point and a line style (not errorbar caps, not legend handles)."""
    return [ln for ln in ax.lines if len(ln.get_xdata()) > 1 and ln.get_linestyle() not in ("None", "none", "")]


def test_decay_vs_radius_draws_a_line_per_model_and_the_linear_oracle():
    fig = figures.decay_vs_radius(decay_rows())
    (ax,) = fig.axes
    assert ax.get_xlabel() == "spectral radius rho of each recurrent gate block"
    assert ax.get_ylabel() == "decay factor of ||dL/dx_t|| per step"
    assert len(data_lines(ax)) == 2 + 1 + 1           # two models, factor = rho, and the dotted 1
    assert figures.decay_vs_radius(decay_rows().iloc[[-1]]) is None
    figures.plt.close(fig)


def test_dynamics_draws_a_panel_per_model_and_task_with_a_line_per_checkpoint():
    rows = [{"task": "adding", "seq_len": 100, "seed": seed, "train_step": step, "t": t, "jacobian_norm": 1.0,
             "forget_mean": np.nan, "forget_open": np.nan, "init": "pytorch", **RNN, "nonlinearity": "tanh"}
            for seed in (0, 1) for step in (0, 50, 100) for t in (1, 50, 100)]
    rows += [{**r, "impl": "onednn-lstm", "cell": "lstm", "forget_bias": 1.0, "forget_mean": 0.8, "forget_open": 0.25}
             for r in rows]
    fig = figures.dynamics(pd.DataFrame(rows))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel() == "step t" and len(data_lines(ax)) == 3 + 1       # 3 checkpoints, the dotted 1
    figures.plt.close(fig)
    summary = learning.forget_summary(pd.DataFrame(rows))
    lstm = summary[summary["model"] == "onednn-lstm fb=1.0"]
    assert list(lstm["train_step"]) == [0, 50, 100] and set(lstm["forget_open"]) == {0.25}
    assert list(views.forget_view(summary).iloc[0])[-2:] == ["0.800", "25.0%"]


def test_a_training_that_overflowed_is_diverged_not_solved_by_its_earlier_loss():
    rows = training_rows()
    irnn = rows[rows["nonlinearity"] == "relu"].copy()
    late = irnn[irnn["step"] == 100].assign(step=200, eval_loss=np.nan, status="nan")    # every seed blew up
    t = pd.concat([irnn, late], ignore_index=True)
    rates = learning.success_rates(t)
    assert list(rates["solved"]) == [0] and list(rates["diverged"]) == [3]
    assert views.success_view(rates)["solved"].iloc[0] == "0 of 3 (3 diverged)"
    assert not learning.final_losses(t)["solved"].any()
    assert findings.tasks(t) == ["On the adding task (T=100, 200 steps), seeds solved: torch-rnn relu identity (the "
                                 "IRNN) 0 of 3 (3 diverged) (solved: the final held-out loss below 0.1 x the task's "
                                 "baseline (1/6 for adding, 10 ln 8 / (T + 20) for copy))."]
