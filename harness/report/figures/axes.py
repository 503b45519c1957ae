"""The figures' axes: log axes labelled at the sizes measured, ratio axes at fixed ticks.

Shared by every figure of harness/report/figures/, so that 100/1k/10k and 0.5, 0.7, 1, 1.5, 2 read the
same everywhere.
"""
from __future__ import annotations

import matplotlib.ticker


def _human(x: float, _pos=None) -> str:
    """A tick label: 3 significant figures with k/M/G (1e-6 below 0.001), never 6x10^1."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    if 0 < abs(x) < 1e-3:
        mantissa, exp = f"{x:.0e}".split("e")
        return f"{mantissa}e{int(exp)}"
    return f"{x:.3g}"


RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 50, 100)   # at least
# 0.12 decades apart, so 7-pt labels on a 3-inch log axis do not touch


def ratio_axis(ax, which: str = "y") -> None:
    """A log axis of ratios labelled at RATIO_TICKS (0.5, 0.7, 1, 1.5, 2, ...), nothing in between."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(matplotlib.ticker.FixedLocator(RATIO_TICKS))
    axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


FINE_SUBS = (1.0, 2.0, 5.0)   # log_axis(fine=True): ticks at 1, 2 and 5 of each decade, so a value can be read off


def log_axis(ax, which: str, measured=None, fine: bool = False) -> None:
    """A log axis with plain labels (100, 1k, 10k) and no minor labels; ticks at the `measured` values
    (the sizes a sweep ran) where given, so an axis over 25 and 100 reads 25, 100; with `fine`, at 1, 2
    and 5 of every decade (an axis within one decade still has ticks to read)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if measured is not None:
        values = sorted({float(v) for v in measured if v == v and v > 0})
        axis.set_major_locator(matplotlib.ticker.FixedLocator(values))
    elif fine:
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=FINE_SUBS))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_human))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
