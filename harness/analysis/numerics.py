"""Speed beside accuracy: what each speed-up costs in error against float64, and whether a precision moves the
vanishing gradient.

    errors = error_rows(timings)              # checked rows: precision, out_err, and speed against float32's
    error_summary(errors)                     # per implementation and precision: the largest errors, rows off
    off = off_rows(timings)                   # the rows whose error is above their tolerance
    precision_sentences(errors, rounds)       # the findings: the fastest row within float32's tolerance, and overall
    precision_decay(gradients)                # per model: the decay factor and vanish distance, float32 against
                                              # autocast, paired by seed, with t intervals of the difference

error_rows' `speed` is the time of the cell's reference layer (cases.REFERENCES: torch-lstm, ...) in float32
at the same sizes, stack and run, over the row's time (above 1: faster), so that rows of every precision share
one axis; rows without that float32 reference have none. compute_dtype names what the GEMMs ran in; out_err
measures the result (measure/accuracy.py).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.learning import full_precision, model_label
from harness.analysis.ratios import PAIR_COLUMNS, pair_ratio, round_times
from harness.analysis.tables import STAND_INS, device_text, ok_rows
from harness.config.cases import REFERENCES, size_of, stack_label
from harness.core import fits, intervals, units
from harness.core.thresholds import TOLERANCES, VANISH_RATIO

FLOAT32_TOL = TOLERANCES["float32"]    # the row's own err_tol judges it; this is the bar of "within float32's
# tolerance" in the findings, for rows of every precision
SHAPE = ["run_id", "device_label", "phase", "batch", "seq_len", "hidden", "input", "layers", "bidirectional",
         "proj_size", "dropout", "lengths", "lengths_mode"]     # what a row and its float32 reference share
CHECKED = ("ok", "off")
MEASURED = ("ok", "nan", "inf", "underflow")     # a gradient curve's point, measured (fits.flag): not a case skipped


def precision(t: pd.DataFrame) -> pd.Series:
    """'float32', 'bfloat16 autocast', 'float32 tf32', 'bfloat16': what each row's step computed in, by its
    settings (learning.full_precision: no autocast)."""
    p = t["dtype"].astype(str).where(full_precision(t), t["autocast"].astype(str) + " autocast")
    tf32 = t["tf32"].astype(str) == "True" if "tf32" in t else pd.Series(False, index=t.index)
    return p + tf32.map({True: " tf32", False: ""})


def error_rows(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ok rows whose error was checked (numerics ok or off), with precision, size, shape (the stack without the
    precision), worst_err (out_err or grad_err, the larger) and speed (module docstring); None without one."""
    t = ok_rows(timings)
    if t is None or "numerics" not in t:
        return None
    t = t[t["numerics"].isin(CHECKED)].copy()
    if t.empty:
        return None
    for col in ("out_err", "grad_err", "err_tol"):
        t[col] = pd.to_numeric(t[col], errors="coerce")
    records = t.to_dict("records")
    t["precision"] = precision(t)
    t["size"] = [size_of(r) for r in records]
    t["shape"] = [stack_label({**r, "autocast": "none", "tf32": ""}) for r in records]   # the stack, precision apart
    t["worst_err"] = t[["out_err", "grad_err"]].max(axis=1)
    key = [c for c in SHAPE if c in t]
    shape = pd.Series(["|".join(map(str, v)) for v in t[key].itertuples(index=False)], index=t.index, dtype=str)
    is_ref = (t["impl"] == t["cell"].map(REFERENCES)) & (t["precision"] == "float32")
    ref_time = dict(zip(shape[is_ref] + "|" + t.loc[is_ref, "cell"], t.loc[is_ref, "time_median_s"], strict=True))
    base = (shape + "|" + t["cell"]).map(ref_time)
    return t.assign(shape_key=shape, ref_time_s=base, speed=base / t["time_median_s"])


def error_summary(errors: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per device, implementation and precision: rows checked, the largest out_err and grad_err, the tolerance
    and how many rows were off it."""
    if errors is None:
        return None
    return errors.groupby(["device_label", "impl", "precision", "compute_dtype"], as_index=False, sort=True).agg(
        rows=("out_err", "size"), max_out_err=("out_err", "max"), max_grad_err=("grad_err", "max"),
        tolerance=("err_tol", "max"), off=("numerics", lambda s: int((s == "off").sum())))


def off_rows(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows marked off, with their errors and tolerance, worst first; None where none is."""
    e = error_rows(timings)
    if e is None or not (e["numerics"] == "off").any():
        return None
    off = e[e["numerics"] == "off"].sort_values("worst_err", ascending=False)
    return off[["device_label", "impl", "precision", "phase", "size", "stack", "out_err", "grad_err", "err_tol",
                "compute_dtype", "err_ref"]]


def _name(row) -> str:
    """'onednn-lstm under bfloat16 autocast', 'fused-lstm in float32'."""
    p = row["precision"]
    return f"{row['impl']} under {p}" if "autocast" in p else f"{row['impl']} in {p}"


def precision_sentences(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> list[str]:
    """The findings of the error pass: the rows off their tolerance; then per device, where a row beyond float32's
    tolerance was the fastest, the size where that gains most against the fastest row within it (time ratio, with
    its bootstrap interval over the rounds), or that it never was."""
    e = error_rows(timings)
    if e is None:
        return []
    out = []
    off = e[e["numerics"] == "off"]
    if not off.empty:
        worst = off.sort_values("worst_err", ascending=False).head(3)
        out.append(f"{len(off)} timed rows are off their float64 reference by more than the tolerance of what they "
                   "computed in: " + "; ".join(f"{_name(r)} ({r['phase']}, {r['size']}) {units.compact(r['worst_err'])}"
                                               f" against {units.compact(r['err_tol'])}" for _, r in worst.iterrows())
                   + (", ..." if len(off) > 3 else "") + ".")
    times = round_times(rounds)
    real = e[~e["impl"].isin(STAND_INS)]
    for dev, d in real.groupby("device_label", sort=False):
        best = []
        for _, g in d.groupby(["shape_key", "cell"], sort=False):
            fastest = g.loc[g["time_median_s"].idxmin()]
            within = g[g["worst_err"] <= FLOAT32_TOL]
            if within.empty or fastest["worst_err"] <= FLOAT32_TOL:
                continue
            safe = within.loc[within["time_median_s"].idxmin()]
            best.append((safe["time_median_s"] / fastest["time_median_s"], fastest, safe))
        lower = d[d["precision"] != "float32"]
        if not best:
            if not lower.empty:
                kinds = ", ".join(sorted(lower["precision"].unique()))
                out.append(f"On {device_text(dev)}, no row beyond float32's tolerance ({FLOAT32_TOL:g}) was the "
                           f"fastest at its size: lower precision ({kinds}) bought no speed here.")
            continue
        _, fastest, safe = max(best, key=lambda b: b[0])
        r, lo, hi = pair_ratio(times, {c: safe[c] for c in PAIR_COLUMNS}, {c: fastest[c] for c in PAIR_COLUMNS})
        interval = f" [{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else ""
        word = intervals.difference(lo, hi, above="faster", below="slower") if lo == lo else "one round: no interval"
        out.append(f"At {fastest['size']} {fastest['phase']} on {device_text(dev)}, {_name(fastest)} is "
                   f"{units.times(r)}{interval} as fast as the fastest row within float32's tolerance ({_name(safe)}; "
                   f"{word}) and {units.compact(fastest['worst_err'])} off float64 (the largest such gain of "
                   f"{len(best)} sizes where a row beyond float32's tolerance was the fastest).")
    return out


# -- does a precision move the vanishing gradient? --------------------------------------------------------------
PAIR_KEYS = ["impl", "cell", "init", "forget_bias", "nonlinearity", "hidden", "seq_len", "batch", "layers",
             "spectral_radius", "device", "dtype", "seed"]


def _per_seed(gradients: pd.DataFrame) -> pd.DataFrame:
    """Per [[gradients]] case and seed (wrt x): the decay factor and the distance where the norm falls below
    VANISH_RATIO of its value at distance 0 (fits.py, as decay.csv's fits are made, one seed at a time)."""
    rows = []
    for _, g in gradients.groupby(["run_id", "case_id", "seed"], sort=False):
        norms = g.sort_values("step")["grad_norm"].astype(float).fillna(float("nan")).tolist()
        factor, _ = fits.fit_decay(norms)
        first = g.iloc[0]
        rows.append({**{k: first.get(k) for k in PAIR_KEYS + ["autocast", "run_id"]},
                     "factor": factor, "vanish": fits.vanish_distance([norms], VANISH_RATIO)})
    return pd.DataFrame(rows)


def precision_decay(gradients: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per model and autocast dtype beside float32 (the same case, seeds and weights): the mean decay factor of
    each, their difference (autocast - float32) with its paired 95% t interval over seeds, and the mean vanish
    distance of each (blank where a seed's never falls below VANISH_RATIO within T); None without such pairs."""
    if gradients is None or "autocast" not in gradients:
        return None
    g = gradients[gradients["status"].isin(MEASURED)]          # a curve's every point: nan, inf and 0 included
    g = g[(g["wrt"] == "x") & (g["task"].fillna("") == "")]
    g = g.assign(autocast=g["autocast"].fillna("none").replace("", "none"))
    if g.empty or (g["autocast"] == "none").all():
        return None
    seeds = _per_seed(g)
    keys = [k for k in PAIR_KEYS if k in seeds] + ["run_id"]
    full = seeds[seeds["autocast"] == "none"].astype({k: str for k in keys})
    out = []
    for dtype, low in seeds[seeds["autocast"] != "none"].groupby("autocast"):
        both = low.astype({k: str for k in keys}).merge(full, on=keys, suffixes=("", "_32")).dropna(
            subset=["factor", "factor_32"])
        for model_keys, p in both.groupby([k for k in keys if k != "seed"], sort=False, dropna=False):
            first = dict(zip([k for k in keys if k != "seed"], model_keys, strict=True))
            diff = (p["factor"] - p["factor_32"]).to_numpy(dtype=float)
            half = (intervals.t_quantile(len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
                    if len(diff) > 1 else float("nan"))
            v32, vlo = (p[c].astype(float) for c in ("vanish_32", "vanish"))
            out.append({"model": model_label(pd.DataFrame([first])).iloc[0], "hidden": first["hidden"],
                        "seq_len": first["seq_len"], "autocast": dtype, "seeds": len(diff),
                        "factor_float32": p["factor_32"].mean(), "factor_autocast": p["factor"].mean(),
                        "difference": diff.mean(), "diff_ci_low": diff.mean() - half,
                        "diff_ci_high": diff.mean() + half,
                        "vanish_float32": v32.mean() if v32.notna().all() else np.nan,      # blank: a seed never
                        "vanish_autocast": vlo.mean() if vlo.notna().all() else np.nan})    # fell below within T
    return pd.DataFrame(out) if out else None


def decay_sentence(pd_table: pd.DataFrame | None) -> list[str]:
    """One sentence: the largest move of a decay factor under autocast, with its interval, and how many moved."""
    if pd_table is None or pd_table.empty:
        return []
    moved = pd_table[(pd_table["diff_ci_low"] > 0) | (pd_table["diff_ci_high"] < 0)]
    top = pd_table.loc[pd_table["difference"].abs().idxmax()]
    interval = (f" [{units.sig(top['diff_ci_low'])}, {units.sig(top['diff_ci_high'])}]"
                if top["diff_ci_low"] == top["diff_ci_low"] else "")
    return [f"Under {top['autocast']} autocast the per-step gradient decay factor moved measurably in {len(moved)} "
            f"of {len(pd_table)} models (95% paired t interval over seeds off 0); the largest move is "
            f"{top['difference']:+.3g}{interval} for {top['model']} at T={int(top['seq_len'])} "
            f"({units.sig(top['factor_float32'])} in float32, {units.sig(top['factor_autocast'])} under autocast)."]
