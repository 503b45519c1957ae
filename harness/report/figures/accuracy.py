"""Speed beside accuracy: each checked row's speed against its error (analysis/numerics.py), and whether a
precision moves the vanishing gradient."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from harness.core.thresholds import TOLERANCES
from harness.report.figures.axes import log_axis, ratio_axis

TOLERANCE_LINES = {"float32": TOLERANCES["float32"], "tf32": TOLERANCES["tf32"],
                   "bfloat16 / float16": TOLERANCES["bfloat16"]}         # the lines drawn: what a row is held to
MAX_PANELS = 8           # sizes drawn, at most: the largest by work (batch x seq_len x hidden)


def speed_vs_error(errors: pd.DataFrame | None) -> plt.Figure | None:
    """Speed against error, per size: the float32 reference's time over the row's (x), out_err against float64 (y)."""
    if errors is None or errors.empty:
        return None
    e = errors.dropna(subset=["speed", "out_err"])
    e = e[e["out_err"] > 0]
    if e.empty:
        return None
    e = e.assign(panel=e["phase"] + " " + e["size"] + (" [" + e["shape"] + "]").where(e["shape"] != "", "")
                 + " " + e["device_label"].str.split(":").str[0])
    work = e.assign(work=e["batch"] * e["seq_len"] * e["hidden"]).groupby("panel")["work"].max()
    e = e[e["panel"].isin(work.sort_values(ascending=False).index[:MAX_PANELS])]
    grid = sns.relplot(data=e, x="speed", y="out_err",
                       hue="impl",
                       style="precision",
                       col="panel", col_wrap=min(4, e["panel"].nunique()),
                       kind="scatter", s=60, height=3.2, aspect=1.1, facet_kws={"sharex": False})
    for ax in grid.axes.flat:
        ratio_axis(ax, "x")
        log_axis(ax, "y")
        for n, (name, tol) in enumerate(TOLERANCE_LINES.items()):
            ax.axhline(tol, color="grey", linestyle=("--", ":", "-.")[n], linewidth=1)
            ax.annotate(f"{name} tolerance", (0.01, tol), xycoords=("axes fraction", "data"), fontsize=6,
                        color="grey", va="bottom")
        ax.axvline(1, color="grey", linewidth=0.8)
    grid.set_titles(col_template="{col_name}")
    grid.set_axis_labels("speed vs float32 reference", "out_err vs float64")
    grid.figure.suptitle("What each speed-up costs in accuracy\nx: the cell's reference layer's time in float32 over "
                         "the row's (log)\ny: max |y - y64| / max |y64| (log); lines: the tolerances", y=1.12)
    return grid.figure


def precision_decay(table: pd.DataFrame | None) -> plt.Figure | None:
    """The gradient's per-step decay factor in float32 and under autocast, per model, paired by seed."""
    if table is None or table.empty:
        return None
    t = table.assign(label=table["model"] + " T=" + table["seq_len"].astype(int).astype(str))
    long = t.melt(id_vars=["label", "autocast"], value_vars=["factor_float32", "factor_autocast"],
                  var_name="precision", value_name="decay factor")
    long["precision"] = long["precision"].map({"factor_float32": "float32"}).fillna("autocast " + long["autocast"])
    fig, ax = plt.subplots(figsize=(10, 0.5 * t["label"].nunique() + 2))
    sns.pointplot(data=long, y="label", x="decay factor",
                  hue="precision",
                  linestyle="none", dodge=0.3, ax=ax)
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set(title="Does lower precision move where the gradient vanishes? Per-step decay factor of ||dL/dx_t||, mean "
                 "over seeds", ylabel="")
    return fig
