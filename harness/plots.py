"""The report's figures: one function per figure, long-form data in, seaborn out.

Each function takes the tidy tables (pandas DataFrames read from a run's CSVs),
returns a matplotlib Figure, or None when the run has no data for it.
"""
from __future__ import annotations

import matplotlib
import matplotlib.lines
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness import memory  # noqa: E402
from harness.registry import DTYPES  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def _fb(df: pd.DataFrame) -> pd.Series:
    """' fb=<forget bias>' for LSTM rows, '' for the others: appended to a series' label."""
    return pd.Series(np.where(df["cell"] == "lstm", " fb=" + df["forget_bias"].astype(str), ""), index=df.index)


def _dodge(hue: pd.Series, width: float = 0.4) -> float | bool:
    """pointplot's dodge: `width` apart, or none for a single hue level (seaborn divides by levels - 1)."""
    return width if hue.nunique() > 1 else False


def _ok(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None or df.empty or "status" not in df:
        return None
    out = df[df["status"] == "ok"]
    return out if not out.empty else None


def vanishing_gradients(gradients: pd.DataFrame, decay: pd.DataFrame) -> plt.Figure | None:
    """||dL/dx_t|| against distance (log scale), a band over seeds; beside it, the decay factors."""
    g = _ok(gradients)
    if g is None:
        return None
    g = g[(g["wrt"] == "x") & (g["task"].fillna("") == "")]
    if g.empty:
        return None
    # implementations of one cell compute the same function (tests/test_equivalence.py), so hue is the cell
    g = g.assign(config=g["init"] + _fb(g))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    sns.lineplot(data=g, x="distance", y="grad_norm",
                 hue="cell",
                 style="config",
                 errorbar=("pi", 100), estimator="median", ax=ax)
    ax.set_yscale("log")
    ax.set(title="Vanishing gradients: ||dL/dx_t|| against distance (band: min-max over seeds and impls)",
           xlabel="distance T - t (steps)", ylabel="||dL/dx_t|| (log scale)")
    ax.legend(fontsize=7, ncol=2)
    d = _ok(decay)
    if d is not None:
        d = d[(d["wrt"] == "x") & (d["task"].fillna("") == "")].copy()
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
    g = _ok(gradients)
    if g is None:
        return None
    g = g[(g["wrt"] == "x") & (g["task"].fillna("") != "")]
    if g.empty:
        return None
    g = g.assign(model=g["impl"] + _fb(g), panel=g["task"] + " T=" + g["seq_len"].astype(str))
    grid = sns.relplot(data=g, x="distance", y="grad_norm",
                       hue="train_step",
                       col="model",
                       row="panel",
                       kind="line", palette="viridis", height=3.2, aspect=1.3, errorbar=None)
    grid.set(yscale="log")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("distance T - t (steps)", "||dL/dx_t|| (log)")
    grid.figure.suptitle("Training's effect on gradients: curves at the start, middle and end of training", y=1.02)
    return grid.figure


def learning_curves(training: pd.DataFrame) -> plt.Figure | None:
    """Held-out loss against step, one panel per task and seq_len, the baseline drawn in."""
    t = _ok(training)
    if t is None:
        return None
    t = t.assign(model=t["impl"] + _fb(t), panel=t["task"] + ", T=" + t["seq_len"].astype(str))
    grid = sns.relplot(data=t, x="step", y="eval_loss",
                       hue="model",
                       col="panel",
                       kind="line", col_wrap=min(4, t["panel"].nunique()), height=3.5, aspect=1.2,
                       facet_kws={"sharey": False})
    for panel, ax in grid.axes_dict.items():
        base = t.loc[t["panel"] == panel, "baseline_loss"].iloc[0]
        ax.axhline(base, color="black", linestyle="--", linewidth=1, label="baseline")
    grid.set(yscale="log")
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("training step", "held-out loss (log; dashed: baseline)")
    grid.figure.suptitle("Long-range tasks: learning curves", y=1.02)
    return grid.figure


def throughput(timings: pd.DataFrame) -> plt.Figure | None:
    """Tokens/s against seq_len, hidden and batch (median over the other axes), one row per device."""
    t = _ok(timings)
    if t is None:
        return None
    t = t[t["phase"] == "train"] if (t["phase"] == "train").any() else t
    long = t.melt(id_vars=["impl", "device_label", "tokens_per_s"], value_vars=["seq_len", "hidden", "batch"],
                  var_name="axis", value_name="size")
    grid = sns.relplot(data=long, x="size", y="tokens_per_s",
                       hue="impl",
                       col="axis",
                       row="device_label",
                       kind="line", estimator="median", errorbar=None, marker="o", height=3.2, aspect=1.2,
                       facet_kws={"sharex": False})
    grid.set(xscale="log", yscale="log")
    grid.set_titles(row_template="{row_name}", col_template="against {col_name}")
    grid.set_axis_labels("size", "tokens/s (train step, log)")
    grid.figure.suptitle("Throughput (median over the other axes)", y=1.02)
    return grid.figure


def speedup(timings: pd.DataFrame) -> plt.Figure | None:
    """Speed-up over each group's reference (ratio_ref: torch-lstm, torch-rnn, torch-gru), with 95% intervals."""
    t = _ok(timings)
    if t is None or "ratio" not in t:
        return None
    t = t[(t["impl"] != t["ratio_ref"]) & t["ratio"].notna()]
    if t.empty:
        return None
    # speed-up = 1 / time ratio; its interval is the ratio's, inverted (hollow: the interval holds 1)
    t = t.assign(speedup=1 / t["ratio"], lo=1 / t["ratio_ci_high"], hi=1 / t["ratio_ci_low"],
                 series=t["impl"] + " / " + t["ratio_ref"],
                 size="h" + t["hidden"].astype(str) + " b" + t["batch"].astype(str) + " t" + t["seq_len"].astype(str))
    t = t.sort_values(["hidden", "batch", "seq_len"])
    panels = t[["device_label", "phase"]].drop_duplicates().values.tolist()
    sizes = list(dict.fromkeys(t["size"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8.0, 0.55 * len(sizes) + 3), 3.8 * len(panels)),
                             squeeze=False)
    series = sorted(t["series"].unique())
    colours = dict(zip(series, sns.color_palette(n_colors=len(series)), strict=True))
    width = 0.7 / max(1, len(series))                     # the dodge between series at one size
    for ax, (dev, phase) in zip(axes.flat, panels, strict=True):
        p = t[(t["device_label"] == dev) & (t["phase"] == phase)]
        for n, (name, g) in enumerate(p.groupby("series")):
            x = np.array([sizes.index(z) for z in g["size"]]) + (n - (len(series) - 1) / 2) * width
            below = (g["speedup"] - g["lo"]).fillna(0).clip(lower=0)
            above = (g["hi"] - g["speedup"]).fillna(0).clip(lower=0)
            holds_one = ~((g["lo"] > 1) | (g["hi"] < 1))
            ax.errorbar(x, g["speedup"], yerr=[below, above], fmt="none", ecolor=colours[name], capsize=2)
            ax.scatter(x, g["speedup"], color=colours[name], label=name, zorder=3,
                       facecolors=[("white" if h else colours[name]) for h in holds_one])
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xticks(range(len(sizes)), sizes, rotation=60, fontsize=7)
        ax.set(title=f"{dev}, {phase}", ylabel="speed-up (>1: faster, log)")
        handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="none", color=colours[n]) for n in series]
        ax.legend(handles, series, fontsize=7, ncol=2)     # filled markers: a point's fill says its interval
    fig.suptitle("Speed-up over the group's reference, 95% bootstrap interval over rounds "
                 "(hollow: no measurable difference)")
    fig.tight_layout()
    return fig


def roofline(timings: pd.DataFrame) -> plt.Figure | None:
    """The fraction of the measured GEMM peak each implementation reaches, per size."""
    t = _ok(timings)
    if t is None:
        return None
    t = t.assign(size="h" + t["hidden"].astype(str) + " b" + t["batch"].astype(str) + " t" + t["seq_len"].astype(str))
    grid = sns.catplot(data=t, x="size", y="peak_fraction",
                       hue="impl",
                       row="device_label",
                       col="phase",
                       kind="point", height=3.5, aspect=2.2, linestyle="none", dodge=_dodge(t["impl"]))
    grid.set_xticklabels(rotation=60, fontsize=7)
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("size", "fraction of GEMM peak")
    grid.figure.suptitle("Roofline view: achieved GEMM FLOP/s over the measured GEMM peak", y=1.02)
    return grid.figure


def memory_use(timings: pd.DataFrame) -> plt.Figure | None:
    """Peak memory of one train step against seq_len, with fused-lstm's analytic estimate."""
    t = _ok(timings)
    if t is None or "peak_mem_bytes" not in t or t["peak_mem_bytes"].isna().all():
        return None
    t = t[(t["phase"] == "train")].dropna(subset=["peak_mem_bytes"])
    if t.empty:
        return None
    t = t.assign(MiB=t["peak_mem_bytes"] / 2**20, size="h" + t["hidden"].astype(str) + " b" + t["batch"].astype(str))
    grid = sns.relplot(data=t, x="seq_len", y="MiB",
                       hue="impl",
                       col="size",
                       row="device_label",
                       kind="line", marker="o", height=3, aspect=1.1)
    for (dev, size), ax in grid.axes_dict.items():
        f = t[(t["device_label"] == dev) & (t["size"] == size) & (t["impl"] == "fused-lstm")].sort_values("seq_len")
        if not f.empty:
            est = [memory.fused_lstm_estimate(b, s, h, DTYPES[d].itemsize) / 2**20
                   for b, s, h, d in zip(f["batch"], f["seq_len"], f["hidden"], f["dtype"], strict=True)]
            ax.plot(f["seq_len"], est, "k--", linewidth=1, label="fused-lstm estimate")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("seq_len", "peak MiB (dashed: fused-lstm analytic)")
    grid.figure.suptitle("Peak memory of one train step", y=1.02)
    return grid.figure


def cost_ratio(ratios: pd.DataFrame) -> plt.Figure | None:
    """LSTM/RNN cost ratio in time (per train step) and in parameters."""
    if ratios is None or ratios.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.pointplot(data=ratios, x="hidden", y="ratio",
                  hue="pair",
                  linestyle="none", dodge=_dodge(ratios["pair"]), errorbar=("pi", 100), ax=ax)
    ax.axhline(4.0, color="grey", linestyle="--", linewidth=1)
    ax.set(title="LSTM / RNN cost: train-step time and parameter count (dashed: 4x)", xlabel="hidden",
           ylabel="LSTM / RNN (range over sizes)")
    fig.tight_layout()
    return fig


FIGURES = {  # file stem -> (function, the tables it takes)
    "vanishing_gradients": (vanishing_gradients, ("gradients", "decay")),
    "training_effect": (training_effect, ("gradients",)),
    "learning_curves": (learning_curves, ("training",)),
    "throughput": (throughput, ("timings",)),
    "speedup": (speedup, ("timings",)),
    "roofline": (roofline, ("timings",)),
    "memory": (memory_use, ("timings",)),
    "cost_ratio": (cost_ratio, ("ratios",)),
}
