"""Fits of a gradient's norm against distance: the per-step decay factor, and where it vanishes.

    flag(v)                          ok | nan | inf | underflow: whether a norm is a number to use
    fit_decay(norms)                 exp(slope) of log(norm) against distance, and the points it used
    vanish_distance(curves, ratio)   the first distance where the seeds' geometric mean falls below ratio

norms[t] is the norm at step t + 1 of T, so at distance T - 1 - t from the loss. Pure: measure/gradients.py
fits what it measured, and analysis/ fits again per seed from gradients.csv.
"""
from __future__ import annotations

import math


def flag(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    if value == 0.0:
        return "underflow"
    return "ok"


def fit_decay(norms: list[float], window: tuple[int, int] | None = None) -> tuple[float | None, int]:
    """exp(slope) of log(norm) against distance over the window; (None, n) with fewer than 3 ok points."""
    T = len(norms)
    lo, hi = window or (1, T - 1)
    pts = [(d, math.log(norms[T - 1 - d])) for d in range(lo, hi + 1) if 0 <= d < T and flag(norms[T - 1 - d]) == "ok"]
    if len(pts) < 3:
        return None, len(pts)
    n = len(pts)
    md = sum(d for d, _ in pts) / n
    ml = sum(v for _, v in pts) / n
    sxx = sum((d - md) ** 2 for d, _ in pts)
    slope = sum((d - md) * (v - ml) for d, v in pts) / sxx
    return math.exp(slope), n


def vanish_distance(curves: list[list[float]], ratio: float) -> int | None:
    """First distance where the geometric-mean curve is below `ratio` of its value at distance 0 (None: never)."""
    T = len(curves[0])
    if any(flag(c[T - 1]) != "ok" for c in curves):
        return None
    ref = sum(math.log(c[T - 1]) for c in curves) / len(curves)
    for d in range(1, T):
        vals = [c[T - 1 - d] for c in curves]
        if any(flag(v) == "nan" for v in vals):
            return None
        logs = [math.log(v) if v > 0 else -math.inf for v in vals]       # log(inf) is inf; underflow is -inf
        if sum(logs) / len(logs) < ref + math.log(ratio):
            return d
    return None
