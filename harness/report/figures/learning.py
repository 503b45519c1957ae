"""Gradients and learning: ||dL/dx_t|| against distance, training's effect on it, learning curves, the decay
factor against the spectral radius (the edge between vanishing and exploding), and the one-step Jacobian while
a task trains. One function per figure (figures/__init__.py lists them).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from harness.analysis.learning import decay_by_radius, full_precision, has_radius, model_label, task_curves
from harness.analysis.tables import ok_rows
from harness.implementations.params import FORGET_CELLS
from harness.report.figures.axes import log_axis


def _fb(df: pd.DataFrame) -> pd.Series:
    """' fb=<forget bias>' for LSTM and minLSTM rows, '' for the others: appended to a series' label."""
    fb = df["forget_bias"].map(lambda v: f" fb={float(v):.1f}" if v == v and v is not None and v != "" else "")
    return pd.Series(np.where(df["cell"].isin(FORGET_CELLS), fb, ""), index=df.index)


def vanishing_gradients(gradients: pd.DataFrame, decay: pd.DataFrame) -> plt.Figure | None:
    """||dL/dx_t|| against distance (log scale), a band over seeds; beside it, the decay factors."""
    g = ok_rows(gradients)
    if g is None:
        return None
    g = g[(g["wrt"] == "x") & (g["task"].fillna("") == "") & ~has_radius(g) & full_precision(g)]   # decay_vs_radius
    # draws those with a radius, precision_decay those under autocast
    if g.empty:
        return None
    # implementations of one cell compute the same function (tests/test_equivalence.py), so hue is the cell
    g = g.assign(config=g["init"] + _fb(g))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    sns.lineplot(data=g, x="distance", y="grad_norm",
                 hue="cell",
                 style="config",
                 errorbar=("pi", 100), estimator="median", ax=ax)
    log_axis(ax, "y")
    ax.set(title="Vanishing gradients: ||dL/dx_t|| against distance (band: min-max over seeds and impls)",
           xlabel="distance T - t (steps)", ylabel="||dL/dx_t|| (log scale)")
    ax.legend(fontsize=7, ncol=2)
    d = ok_rows(decay)
    if d is not None:
        d = d[(d["wrt"] == "x") & (d["task"].fillna("") == "") & ~has_radius(d) & full_precision(d)].copy()
        d["config"] = d["impl"] + " " + d["init"] + _fb(d)
        d = d.sort_values("decay_factor")
        lo = (d["decay_factor"] - d["decay_ci_low"]).fillna(0).clip(lower=0)
        hi = (d["decay_ci_high"] - d["decay_factor"]).fillna(0).clip(lower=0)
        ax2.errorbar(d["decay_factor"], d["config"], xerr=[lo, hi], fmt="o", capsize=3)
        ax2.axvline(1.0, color="grey", linestyle="--")
        ax2.tick_params(axis="y", labelsize=7)
        ax2.set(title="Per-step decay factor (95% interval over seeds)", xlabel="factor per step (1 = no decay)")
    fig.tight_layout()
    return fig


def training_effect(gradients: pd.DataFrame) -> plt.Figure | None:
    """Gradient curves before, during and after training on the long-range task."""
    g = task_curves(gradients)
    if g is None:
        return None
    g = g.assign(model=model_label(g), panel=g["task"] + " T=" + g["seq_len"].astype(str),
                 train_step=g["train_step"].astype(int))
    grid = sns.relplot(data=g, x="distance", y="grad_norm",
                       hue="train_step",
                       col="model",
                       row="panel",
                       kind="line", palette="viridis", height=3.2, aspect=1.3, errorbar=None)
    for ax in grid.axes.flat:
        log_axis(ax, "y")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("distance T - t (steps)", "||dL/dx_t|| (log)")
    grid.figure.suptitle("Training's effect on gradients: curves at the start, middle and end of training", y=1.02)
    return grid.figure


def learning_curves(training: pd.DataFrame) -> plt.Figure | None:
    """Held-out loss against step, one panel per task and seq_len, the baseline drawn in."""
    t = ok_rows(training)
    if t is None:
        return None
    t = t.dropna(subset=["eval_loss"])
    if t.empty:
        return None
    t = t.assign(model=model_label(t), panel=t["task"] + ", T=" + t["seq_len"].astype(str))
    seeds = int(t.groupby(["model", "panel"])["seed"].nunique().max()) if "seed" in t else 1
    # several seeds: their mean, and a band from the lowest to the highest seed at each step
    grid = sns.relplot(data=t, x="step", y="eval_loss",
                       hue="model",
                       col="panel",
                       kind="line", estimator="mean", errorbar=("pi", 100) if seeds > 1 else None,
                       col_wrap=min(4, t["panel"].nunique()), height=3.5, aspect=1.2, facet_kws={"sharey": False})
    for panel, ax in grid.axes_dict.items():
        base = t.loc[t["panel"] == panel, "baseline_loss"].iloc[0]
        ax.axhline(base, color="black", linestyle="--", linewidth=1, label="baseline")
    for ax in grid.axes.flat:
        log_axis(ax, "y")
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("training step", "held-out loss (log; dashed: baseline)")
    grid.figure.suptitle("Long-range tasks: learning curves" + (f" (mean of {seeds} seeds; band: lowest to highest)"
                                                                if seeds > 1 else " (one seed)"), y=1.02)
    return grid.figure


def decay_vs_radius(decay: pd.DataFrame) -> plt.Figure | None:
    """The per-step decay factor against the recurrent blocks' spectral radius, one line per model."""
    d = ok_rows(decay_by_radius(decay))
    if d is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    sns.lineplot(data=d, x="spectral_radius", y="decay_factor",
                 hue="model",
                 marker="o", ax=ax)
    for _, m in d.groupby("model"):
        lo = (m["decay_factor"] - m["decay_ci_low"]).fillna(0).clip(lower=0)
        hi = (m["decay_ci_high"] - m["decay_factor"]).fillna(0).clip(lower=0)
        ax.errorbar(m["spectral_radius"], m["decay_factor"], yerr=[lo, hi], fmt="none", ecolor="grey", capsize=2)
    r = np.linspace(d["spectral_radius"].min(), d["spectral_radius"].max(), 2)
    ax.plot(r, r, color="black", linestyle="--", linewidth=1, label="factor = rho (a linear RNN's, exactly)")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set(title="Vanishing below 1, exploding above: decay factor per step against spectral radius",
           xlabel="spectral radius rho of each recurrent gate block", ylabel="decay factor of ||dL/dx_t|| per step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def dynamics(dyn: pd.DataFrame | None) -> plt.Figure | None:
    """The one-step Jacobian's largest singular value along the sequence, at the start, middle and end
    of training: a band over seeds."""
    if dyn is None or "jacobian_norm" not in dyn:
        return None
    d = dyn.dropna(subset=["jacobian_norm"])
    if d.empty:
        return None
    d = d.assign(model=model_label(d), panel=d["task"] + " T=" + d["seq_len"].astype(int).astype(str),
                 train_step=d["train_step"].astype(int))
    grid = sns.relplot(data=d, x="t", y="jacobian_norm",
                       hue="train_step",
                       col="model",
                       row="panel",
                       kind="line", palette="viridis", estimator="mean", errorbar=("pi", 100),
                       height=2.8, aspect=1.3, facet_kws={"sharey": False, "sharex": False})
    for ax in grid.axes.flat:
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("step t", "||ds_t/ds_(t-1)||")
    grid.figure.suptitle("The one-step Jacobian's norm at the start, middle and end of training (band: seeds)",
                         y=1.02)
    return grid.figure
