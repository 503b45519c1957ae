"""The report's own tables: medians per implementation, scaling exponents, the cases that did not run, noisy groups.

    summary(timings)          per device, dtype, phase, stack and implementation: medians over its cases
    scaling(timings)          exponents of time against hidden, seq_len and batch, per implementation
    not_ok(runs)              the skipped, failed and out-of-memory cases, one row per reason
    noisy_groups(timings)     the comparison groups timed on a machine that did not hold still: CPU steal, the canary
    ceilings(runs)            every GEMM peak measured, per library, and its fraction of the best (the ceiling)
    above_ceiling(timings)    the rows above the measured ceiling (thresholds.ABOVE_CEILING)

All in SI units (seconds, bytes), unrounded: report/views.py turns them into human units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.tables import FRAMES, Runs, ok_rows
from harness.core.thresholds import ABOVE_CEILING

SCALING_SIZES = ("hidden", "seq_len", "batch")   # scaling(): the sizes whose exponents are fitted, where 2+ were timed


def summary(timings: pd.DataFrame | None) -> pd.DataFrame:
    """Per device, dtype, phase and implementation: medians over its cases (SI units; summary.csv). The best
    fraction of the GEMM ceiling is the best of the cases within it: one above it (above_ceiling) is no best."""
    ok = ok_rows(timings)
    if ok is None:
        return pd.DataFrame()
    if "stack" not in ok:
        ok = ok.assign(stack="")
    within = ok["peak_fraction"].where(ok["peak_fraction"] <= ABOVE_CEILING) if "peak_fraction" in ok else None
    ok = ok.assign(within_ceiling=within)
    g = ok.groupby(["device_label", "dtype", "phase", "stack", "impl", "backend"], as_index=False)
    return g.agg(cases=("time_median_s", "size"), median_time_s=("time_median_s", "median"),
                 median_tokens_per_s=("tokens_per_s", "median"), median_peak_fraction=("peak_fraction", "median"),
                 max_peak_fraction=("within_ceiling", "max"), median_peak_mem_bytes=("peak_mem_bytes", "median"))


def scaling(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """Exponents of time against hidden, seq_len and batch, per (device, phase, impl), by least squares on
    log(time) = c + a log(hidden) + b log(seq_len) + d log(batch) over the sizes measured. An axis with one
    value is left out (empty). `range` says the sizes each fit holds over; r2 its fit."""
    t = ok_rows(timings, real=True)
    if t is None:
        return None
    out = []
    for (dev, phase, impl), g in t.groupby(["device_label", "phase", "impl"]):
        axes = [a for a in SCALING_SIZES if g[a].nunique() > 1]
        if not axes or len(g) <= len(axes) + 1:
            continue
        X = np.column_stack([np.ones(len(g))] + [np.log(g[a].to_numpy(float)) for a in axes])
        y = np.log(g["time_median_s"].to_numpy(float))
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ coef
        r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum()) if len(set(y)) > 1 else float("nan")
        row = {"device_label": dev, "phase": phase, "impl": impl, "points": len(g), "r2": r2,
               "range": ", ".join(f"{a} {int(g[a].min())}–{int(g[a].max())}" for a in axes)}
        row.update({f"exp_{a}": (coef[1 + axes.index(a)] if a in axes else float("nan")) for a in SCALING_SIZES})
        out.append(row)
    return pd.DataFrame(out) if out else None


def not_ok(runs: Runs) -> pd.DataFrame:
    """Cases that did not run, one row per (table, status, reason): how many, and one example."""
    parts = []
    for key, cols in [("timings", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "stack", "phase"]),
                      ("decay", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "init"]),
                      ("training", ["task", "impl", "device", "dtype", "seq_len", "hidden"])]:
        df = runs.tables[key]
        if df is None or "status" not in df:
            continue
        bad = df[df["status"].isin(["skipped", "failed", "oom"])]   # not: nan, underflow, no_fit (measurements)
        if bad.empty:
            continue
        cols = [c for c in cols if c in bad]
        bad = bad.assign(table=FRAMES[key], case=bad[cols].astype(str).agg(" ".join, axis=1).str.replace("  ", " "),
                         reason=bad["reason"].fillna("") if "reason" in bad else "")
        parts.append(bad[["table", "run_id", "case", "status", "reason"]])
    if not parts:
        return pd.DataFrame(columns=["table", "status", "reason", "cases", "example", "runs"])
    b = pd.concat(parts, ignore_index=True)
    g = b.groupby(["table", "status", "reason"], as_index=False, sort=False)
    out = g.agg(cases=("case", "size"), example=("case", "first"), runs=("run_id", "nunique"))
    return out.sort_values("cases", ascending=False, kind="stable").reset_index(drop=True)


def noisy_groups(timings: pd.DataFrame | None) -> pd.DataFrame:
    """The comparison groups flagged `noisy`: measured with more CPU steal than NOISY_STEAL, or with a canary
    wider than CANARY_SPREAD or moved over CANARY_MOVED (noisy_why says which)."""
    if timings is None or "noisy" not in timings:
        return pd.DataFrame()
    t = timings[timings["noisy"].astype(str) == "True"]
    if t.empty:
        return pd.DataFrame()
    g = t.groupby(["run_id", "group_id", "device_label", "phase", "hidden", "batch", "seq_len"], as_index=False)
    why = ("noisy_why", "first") if "noisy_why" in t else ("impl", lambda _: "")
    g = g.agg(members=("impl", "size"), steal_fraction=("steal_fraction", "max"), load_avg=("load_avg", "max"),
              why=why)
    return g


def ceilings(runs: Runs) -> pd.DataFrame | None:
    """Every GEMM peak the runs measured (run.json), one row per library: device_label (as the tables label their
    rows), dtype, threads, tf32, library, blas, GFLOP/s, and the fraction of the best library's peak at that
    (run, device, dtype, threads, tf32): 1 for the ceiling itself."""
    rows = []
    for meta in runs.meta:
        host = meta.environment.get("host", "?")
        for p in meta.gemm_peaks:
            rows.append({"run_id": meta.run_id, "device": p.device, "device_label": f"{p.device}: {p.device_name} @ "
                         f"{host}", "dtype": p.dtype, "threads": p.threads, "tf32": p.tf32, "library": p.library,
                         "blas": p.blas, "gflops_per_s": p.gemm_peak_gflops_per_s, "gemm_size": p.gemm_size})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    best = df.groupby(["run_id", "device", "dtype", "threads", "tf32"], dropna=False)["gflops_per_s"].transform("max")
    return df.assign(of_best=df["gflops_per_s"] / best)


def above_ceiling(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ok rows whose GEMM rate is above ABOVE_CEILING times the best peak measured (peak_fraction): a ceiling in
    doubt, never a success. None where there are none."""
    t = ok_rows(timings)
    if t is None or "peak_fraction" not in t:
        return None
    t = t[t["peak_fraction"] > ABOVE_CEILING]
    return None if t.empty else t
