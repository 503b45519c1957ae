"""What stacks and variable lengths cost: time against layers and directions, and time per real token by
lengths_mode. One function per figure (figures/__init__.py lists them).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from harness.report.figures.axes import log_axis, ratio_axis
from harness.report.figures.speed import size_labels


def _device(df: pd.DataFrame) -> pd.Series:
    """', cpu: AMD EPYC @ host' where the rows come from several devices, else '': a panel's device."""
    return ", " + df["device_label"].astype(str) if df["device_label"].nunique() > 1 else pd.Series("", df.index)


def _errorbars(grid, d: pd.DataFrame, x: str, y: str, lo: str, hi: str) -> None:
    """Each point's 95% interval, drawn on its own panel of a relplot (col="panel")."""
    for panel, ax in grid.axes_dict.items():
        p = d[(d["panel"] == panel) & d[lo].notna()]
        ax.errorbar(p[x], p[y], yerr=[(p[y] - p[lo]).clip(lower=0), (p[hi] - p[y]).clip(lower=0)], fmt="none",
                    ecolor="grey", capsize=2, linewidth=1)


def layer_cost(layer_costs: pd.DataFrame | None) -> plt.Figure | None:
    """Cost against layers: each stack's time over one layer, one direction, at the same sizes (95% interval)."""
    if layer_costs is None or layer_costs.empty:
        return None
    d = layer_costs.assign(panel=layer_costs["phase"] + ", " + size_labels(layer_costs) + _device(layer_costs),
                           direction=layer_costs["directions"].map({1: "one direction", 2: "bidirectional"}))
    grid = sns.relplot(data=d, x="layers", y="ratio",
                       hue="impl",
                       style="direction",
                       col="panel",
                       kind="line", marker="o", errorbar=None, col_wrap=min(4, d["panel"].nunique()), height=3.4,
                       aspect=1.1)
    _errorbars(grid, d, "layers", "ratio", "ratio_ci_low", "ratio_ci_high")
    for panel, ax in grid.axes_dict.items():
        p = d[d["panel"] == panel]                      # what the FLOP model says each stack costs
        ax.scatter(p["layers"], p["flops_ratio"], marker="x", color="black", zorder=3, label="FLOP model")
        log_axis(ax, "x", d["layers"])
        ratio_axis(ax)
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("layers", "time / one layer, one direction (log)")
    grid.figure.suptitle("Cost against layers (x: the FLOP model)", y=1.02)
    return grid.figure


def lengths_cost(lengths_costs: pd.DataFrame | None) -> plt.Figure | None:
    """Each lengths_mode's time per real token over a fixed-length batch of the same real tokens (95% interval),
    against the spread of lengths."""
    if lengths_costs is None or lengths_costs.empty:
        return None
    modes = [m for m in ("packed", "masked", "padded") if m in set(d_modes := lengths_costs["lengths_mode"])]
    spreads = sorted(lengths_costs["spread"].unique())
    step = 0.03 * max(spreads[-1] - spreads[0], 30)          # modes side by side at one spread, never on top
    d = lengths_costs.assign(panel=lengths_costs["impl"] + ", " + lengths_costs["phase"] + ", "
                             + size_labels(lengths_costs, seq_len=False) + _device(lengths_costs),
                             at=lengths_costs["spread"] + (d_modes.map(modes.index) - (len(modes) - 1) / 2) * step)
    grid = sns.relplot(data=d, x="at", y="cost",
                       hue="lengths_mode",
                       col="panel",
                       kind="line", marker="o", errorbar=None, col_wrap=min(4, d["panel"].nunique()), height=3.4,
                       aspect=1.1, hue_order=modes)
    _errorbars(grid, d, "at", "cost", "cost_ci_low", "cost_ci_high")
    for ax in grid.axes.flat:
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_xticks(spreads)
        ratio_axis(ax)
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("spread of lengths, HI - LO (steps)", "time per real token / fixed (log)")
    grid.figure.suptitle("What variable lengths cost, by lengths_mode (dashed: a fixed batch of the same tokens)",
                         y=1.02)
    return grid.figure
