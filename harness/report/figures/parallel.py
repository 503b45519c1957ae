"""The recurrences that train in parallel: throughput and peak memory against T, the min models beside the LSTM and
GRU (analysis/parallel.py has the tables). One function per figure (figures/__init__.py lists them)."""
from __future__ import annotations

import math
from collections.abc import Callable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from harness.analysis.parallel import LOOPS, PAIRS, SCANS
from harness.analysis.tables import ok_rows
from harness.implementations.minrnn import kept_bytes
from harness.implementations.registry import DTYPES
from harness.report.figures.axes import log_axis

MARKED = (("mingru-scan", "mingru-loop"), ("minlstm-scan", "minlstm-loop"), ("minlstm-scan", "onednn-lstm"),
          ("minlstm-scan", "cudnn-lstm"))   # the crossovers drawn on the throughput figure
PARALLEL_IMPLS = (*SCANS, *LOOPS, *dict.fromkeys(s for _, s in PAIRS))


def _panels(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(panel=t["device_label"].str.split(":").str[0] + ", " + t["phase"] + ", b"
                    + t["batch"].astype(int).astype(str))


def throughput_vs_t(timings: pd.DataFrame | None, crossovers: pd.DataFrame | None) -> plt.Figure | None:
    """Tokens/s against T (log-log): the min models' scan (solid) and loop (dashed) beside the library LSTM and GRU;
    dotted verticals: where a scan starts to beat its loop or the LSTM, for good (crossovers.csv)."""
    t = ok_rows(timings)
    if t is None or not set(SCANS) & set(t["impl"]):
        return None
    t = t[t["impl"].isin(PARALLEL_IMPLS)].dropna(subset=["tokens_per_s"])
    scans = t[t["impl"].isin(SCANS)]
    t = t[t["batch"].isin(scans["batch"].unique()) & t["seq_len"].isin(scans["seq_len"].unique())]
    if t["seq_len"].nunique() < 2:
        return None
    width = scans.groupby("impl")["hidden"].min()              # the scans' own size; others: equal parameters
    t = t.assign(line=[i if h == width.get(i, h) else f"{i} h{int(h)}" for i, h in zip(t["impl"], t["hidden"],
                                                                                         strict=True)])
    return _against_t(_panels(t), "line", "tokens_per_s", "tokens/s",
                      "Throughput against sequence length: the parallel scan, its loop and the library layers",
                      per_panel=lambda ax, p: _mark(ax, crossovers, p))


def _against_t(d: pd.DataFrame, series: str, y: str, ylabel: str, title: str,
               per_series: Callable | None = None, per_panel: Callable | None = None) -> plt.Figure:
    """One panel per d["panel"], `y` against T (log-log), a line per `series` (dashed: a loop), its colour the same in
    every panel; per_series(ax, name, rows, colour) and per_panel(ax, rows) draw what a figure adds."""
    panels = list(dict.fromkeys(d["panel"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    names = sorted(d[series].unique())
    colours = dict(zip(names, sns.color_palette(n_colors=len(names)), strict=True))
    for ax, panel in zip(axes.flat, panels, strict=True):
        p = d[d["panel"] == panel]
        for name, g in p.groupby(series):
            g = g.sort_values("seq_len")
            ax.plot(g["seq_len"], g[y], marker="o", color=colours[name], label=name,
                    linestyle="--" if name.split()[0] in LOOPS else "-")
            if per_series is not None:
                per_series(ax, name, g, colours[name])
        log_axis(ax, "x", p["seq_len"])
        log_axis(ax, "y", fine=True)
        ax.set(title=panel, xlabel="T (seq_len)", ylabel=ylabel)
        if per_panel is not None:
            per_panel(ax, p)
    _legend(axes)
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def _legend(axes) -> None:
    """One legend of every panel's lines (a panel may lack some), right of the last."""
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    axes.flat[-1].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                         borderaxespad=0)


def _mark(ax, crossovers: pd.DataFrame | None, p: pd.DataFrame) -> None:
    """A dotted vertical where each MARKED pair crosses over for good (between below_T and from_T, drawn at their
    geometric mean; at from_T where the fast side wins from the first T run)."""
    if crossovers is None or crossovers.empty:
        return
    first = p.iloc[0]
    c = crossovers[(crossovers["device_label"] == first["device_label"]) & (crossovers["phase"] == first["phase"])
                   & (crossovers["batch"] == first["batch"]) & (crossovers["basis"] == "equal hidden")]
    for _, r in c.iterrows():
        if (r["fast"], r["slow"]) not in MARKED or r["from_T"] in ("", None) or pd.isna(r["from_T"]):
            continue
        x = math.sqrt(float(r["from_T"]) * float(r["below_T"])) if r["below_T"] not in ("", None) and not pd.isna(
            r["below_T"]) else float(r["from_T"])
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"{r['fast']} > {r['slow']}", (x, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                    fontsize=6, color="grey", va="bottom", ha="right")


def memory_vs_t(memory: pd.DataFrame | None) -> plt.Figure | None:
    """Peak memory of a train step against T (log-log), the min models beside the library layers; thin lines: what
    each min model's forward keeps for its backward, counted (minrnn.kept_bytes); the peak adds the backward's own."""
    if memory is None or memory.empty or memory["seq_len"].nunique() < 2:
        return None
    m = memory.assign(panel=memory["device_label"].str.split(":").str[0] + ", h" + memory["hidden"].astype(int)
                      .astype(str) + " b" + memory["batch"].astype(int).astype(str))

    def kept(ax, impl: str, g: pd.DataFrame, colour) -> None:
        if impl in SCANS or impl in LOOPS:
            cell, mode = impl.split("-")
            mib = [kept_bytes(mode, cell, int(b), int(s), int(h), DTYPES[d].itemsize) / 2**20
                   for b, s, h, d in zip(g["batch"], g["seq_len"], g["hidden"], g["dtype"], strict=True)]
            ax.plot(g["seq_len"], mib, color=colour, linewidth=0.8, alpha=0.6)
    return _against_t(m, "impl", "MiB", "peak MiB of a train step",
                      "Peak memory against sequence length (thin: what a min model's forward keeps, counted)",
                      per_series=kept)
