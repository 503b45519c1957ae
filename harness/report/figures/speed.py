"""Speed, memory and cost: throughput, speed-up over the reference, the roofline view, peak memory, the
LSTM/RNN cost ratio, and where a step's time goes. One function per figure (figures/__init__.py lists them).
"""
from __future__ import annotations

import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from harness.analysis.tables import ok_rows
from harness.config.cases import size_label
from harness.core.thresholds import ABOVE_CEILING
from harness.implementations.fused import train_peak_bytes
from harness.implementations.registry import DTYPES
from harness.report.figures.axes import log_axis, ratio_axis
from harness.store.traces import CATEGORIES, one_size


def _dodge(hue: pd.Series, width: float = 0.4) -> float | bool:
    """pointplot's dodge: `width` apart, or none for a single hue level (seaborn divides by levels - 1)."""
    return width if hue.nunique() > 1 else False


def size_labels(df: pd.DataFrame, seq_len: bool = True) -> pd.Series:
    """Each row's size_label ('b64 t100 h512', without t when seq_len is False): a panel's sizes."""
    steps = df["seq_len"] if seq_len else [None] * len(df)
    return pd.Series([size_label(b, t, h) for b, t, h in zip(df["batch"], steps, df["hidden"], strict=True)],
                     index=df.index, dtype=str)


SIZE_AXES = ("seq_len", "hidden", "batch")   # the throughput figure's panels: tokens/s against each


def _slice(t: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, str] | None:
    """The rows of one panel: `axis` varying, the other sizes fixed at the values where it varies most (the
    largest of those on a tie); and those values as a label. None where it never takes two values."""
    others = [a for a in SIZE_AXES if a != axis]
    spread = t.groupby(others)[axis].nunique()
    if spread.empty or spread.max() < 2:
        return None
    fixed = max((k for k, n in spread.items() if n == spread.max()), key=lambda k: k[0] * k[1])
    rows = t[(t[others[0]] == fixed[0]) & (t[others[1]] == fixed[1])]
    return rows, ", ".join(f"{a} {int(v)}" for a, v in zip(others, fixed, strict=True))


def throughput(timings: pd.DataFrame) -> plt.Figure | None:
    """Tokens/s against seq_len, hidden and batch, each at fixed values of the other two, one row per device."""
    t = ok_rows(timings)
    if t is None:
        return None
    t = t[t["phase"] == "train"] if (t["phase"] == "train").any() else t
    t = t.dropna(subset=["tokens_per_s"])
    if t.empty:
        return None
    parts = []
    for _, d in t.groupby("device_label", sort=False):
        for axis in SIZE_AXES:
            if (cut := _slice(d, axis)) is not None:
                rows, fixed = cut
                parts.append(rows.assign(axis=axis, size=rows[axis], panel=f"against {axis} ({fixed})"))
    if not parts:                         # no size varies: one panel, its implementations side by side
        parts = [t.assign(axis="seq_len", size=t["seq_len"], panel="at the one size measured")]
    long = pd.concat(parts, ignore_index=True)
    grid = sns.relplot(data=long, x="size", y="tokens_per_s",
                       hue="impl",
                       col="panel",
                       row="device_label",
                       kind="line", estimator="median", errorbar=None, marker="o", height=3.2, aspect=1.2,
                       facet_kws={"sharex": False, "sharey": False})
    for (dev, panel), ax in grid.axes_dict.items():
        drawn = long[(long["device_label"] == dev) & (long["panel"] == panel)]
        log_axis(ax, "x", drawn["size"])
        log_axis(ax, "y", fine=True)
    grid.set_titles(template="{col_name}\n{row_name}")       # two lines: side by side, they ran into each other
    grid.set_axis_labels("size", "tokens/s (train step, log)")
    grid.figure.suptitle("Throughput against each size, the others fixed where it was timed most", y=1.02)
    return grid.figure


def speedup(timings: pd.DataFrame) -> plt.Figure | None:
    """Speed-up over each group's reference (ratio_ref: torch-lstm, torch-rnn, torch-gru), with 95% intervals."""
    t = ok_rows(timings)
    if t is None or "ratio" not in t:
        return None
    t = t[(t["impl"] != t["ratio_ref"]) & t["ratio"].notna()]
    if t.empty:
        return None
    # speed-up = 1 / time ratio; its interval is the ratio's, inverted (hollow: the interval holds 1)
    t = t.assign(speedup=1 / t["ratio"], lo=1 / t["ratio_ci_high"], hi=1 / t["ratio_ci_low"],
                 series=t["impl"] + " / " + t["ratio_ref"],
                 size=size_labels(t))
    t = t.sort_values(["batch", "seq_len", "hidden"])          # the order of size_label
    panels = t[["device_label", "phase"]].drop_duplicates().values.tolist()
    sizes = list(dict.fromkeys(t["size"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(11.0, 0.55 * len(sizes) + 5), 3.8 * len(panels)),
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
        ratio_axis(ax)
        ax.set_xticks(range(len(sizes)), sizes, rotation=60, fontsize=7)
        ax.set(title=f"{dev}, {phase}", ylabel="speed-up (>1: faster, log)")
        handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="none", color=colours[n]) for n in series]
        # beside the axes, never over a point; filled markers: a point's fill says its interval
        ax.legend(handles, series, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.suptitle("Speed-up over the group's reference, 95% bootstrap interval over rounds\n"
                 "(hollow: no measurable difference)")
    fig.tight_layout()
    return fig


def roofline(timings: pd.DataFrame, ceilings: pd.DataFrame | None = None) -> plt.Figure | None:
    """The fraction of the GEMM ceiling (the best library's peak) each implementation reaches, by the work of a step."""
    t = ok_rows(timings)
    if t is None or t["peak_fraction"].isna().all():
        return None
    t = t.dropna(subset=["peak_fraction"])
    t = t.assign(gflop=t["flops"] / 1e9) if "flops" in t else t.assign(gflop=2e-9 * 4 * t["hidden"] ** 2 * t["batch"]
                                                                        * t["seq_len"])
    above = t["peak_fraction"] > ABOVE_CEILING
    grid = sns.relplot(data=t[~above], x="gflop", y="peak_fraction",
                       hue="impl",
                       row="device_label",
                       col="phase",
                       kind="scatter", height=3.5, aspect=1.6, s=30, facet_kws={"sharex": False})
    for (dev, phase), ax in grid.axes_dict.items():
        log_axis(ax, "x")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        if ceilings is not None:          # every library's peak, as a share of the best (1: the ceiling)
            c = ceilings[ceilings["device_label"] == dev].groupby("library")["of_best"].max()
            for n, (library, level) in enumerate(c.items()):
                ax.axhline(level, color="grey", linestyle=("--", ":", "-.")[n % 3], linewidth=1)
                ax.annotate(f"{library} {level:.0%}", (0.01, level), xycoords=("axes fraction", "data"),
                            fontsize=7, color="grey", va="bottom")
        odd = t[above & (t["device_label"] == dev) & (t["phase"] == phase)]
        if not odd.empty:                 # above the measured ceiling: the ceiling is in doubt, not a success
            ax.scatter(odd["gflop"], odd["peak_fraction"], marker="x", color="red", zorder=3,
                       label="above the measured ceiling")
            ax.legend(fontsize=7, loc="lower right")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("GFLOP per step (log; the FLOP model)", "fraction of GEMM ceiling")
    grid.figure.suptitle("Roofline view: achieved GEMM FLOP/s over the best GEMM library's measured peak (lines: each "
                         "library's peak; x: above the measured ceiling)", y=1.02)
    return grid.figure


def memory_use(timings: pd.DataFrame) -> plt.Figure | None:
    """Peak memory of a train step against seq_len, each hidden at its largest batch; dashed: fused-lstm's estimate."""
    t = ok_rows(timings)
    if t is None or "peak_mem_bytes" not in t or t["peak_mem_bytes"].isna().all():
        return None
    t = t[(t["phase"] == "train")].dropna(subset=["peak_mem_bytes"])
    if t.empty:
        return None
    # memory grows linearly in batch: per device and hidden, the largest batch measured
    t = t[t["batch"] == t.groupby(["device_label", "hidden"])["batch"].transform("max")]
    t = t.sort_values(["device_label", "hidden", "batch"])
    t = t.assign(MiB=t["peak_mem_bytes"] / 2**20,
                 panel=t["device_label"].str.split(":").str[0] + ", h" + t["hidden"].astype(str) + " b"
                 + t["batch"].astype(str))
    # one panel per device and hidden, four to a row
    grid = sns.relplot(data=t, x="seq_len", y="MiB",
                       hue="impl",
                       col="panel",
                       kind="line", marker="o", estimator="median", errorbar=None, height=3, aspect=1.1,
                       col_wrap=min(4, t["panel"].nunique()),
                       facet_kws={"sharey": False})
    for panel, ax in grid.axes_dict.items():
        f = t[(t["panel"] == panel) & (t["impl"] == "fused-lstm")].sort_values("seq_len")
        if not f.empty:
            est = [train_peak_bytes(b, s, h, DTYPES[d].itemsize) / 2**20
                   for b, s, h, d in zip(f["batch"], f["seq_len"], f["hidden"], f["dtype"], strict=True)]
            ax.plot(f["seq_len"], est, "k--", linewidth=1, label="fused-lstm estimate")
    grid.set(xticks=sorted(t["seq_len"].unique()))
    grid.set_titles(col_template="{col_name}")
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
    ax.legend(title="pair", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    return fig


def time_breakdown(breakdown: pd.DataFrame) -> plt.Figure | None:
    """Where a step's time goes: GEMM, elementwise, other ops and framework overhead, one bar per implementation."""
    if breakdown is None or breakdown.empty or "category" not in breakdown:
        return None
    b = one_size(breakdown)
    b = b.assign(panel=b["device"] + ", " + b["phase"] + ", " + size_labels(b))
    panels = list(dict.fromkeys(b.sort_values(["device", "phase"])["panel"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 0.45 * b["impl"].nunique() * len(panels) + 1.6 * len(panels)),
                             squeeze=False)
    colours = dict(zip(CATEGORIES, sns.color_palette(n_colors=len(CATEGORIES)), strict=True))
    for ax, panel in zip(axes.flat, panels, strict=True):
        p = b[b["panel"] == panel].pivot_table(index="impl", columns="category", values="ms", aggfunc="median")
        p = p.reindex(columns=list(CATEGORIES), fill_value=0.0).fillna(0.0)
        p = p.loc[p.sum(axis=1).sort_values().index]        # fastest at the top
        left = np.zeros(len(p))
        for cat in CATEGORIES:
            ax.barh(p.index, p[cat], left=left, color=colours[cat], label=cat)
            left += p[cat].to_numpy()
        ax.invert_yaxis()
        ax.set(title=panel, xlabel="ms per step, under the profiler")
    axes.flat[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8)
    fig.suptitle("Where the time goes (overhead: the step's wall time in no op, and the autograd engine)")
    fig.tight_layout()
    return fig
