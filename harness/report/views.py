"""The report's tables in human units: ms, MiB, GFLOP/s, %, three significant figures (core/units.py).

One function per table, each from a derived table of analysis/ (SI units, unrounded, as the CSVs
beside the report keep them) to what the page shows.
"""
from __future__ import annotations

import pandas as pd

from harness.analysis.learning import solved_text
from harness.analysis.summary import SCALING_SIZES
from harness.analysis.tables import Runs
from harness.config.cases import size_of
from harness.core import intervals, units
from harness.store.runs import read_status


def summary_view(summ: pd.DataFrame) -> pd.DataFrame:
    """summary() in human units, three significant figures."""
    if summ.empty:
        return summ
    return pd.DataFrame({
        "device": summ["device_label"], "dtype": summ["dtype"], "phase": summ["phase"],
        "stack": summ["stack"].replace("", "1 layer"), "impl": summ["impl"],
        "backend": summ["backend"], "cases": summ["cases"],
        "median time": summ["median_time_s"].map(units.seconds),
        "median throughput": summ["median_tokens_per_s"].map(lambda x: units.rate(x, "tokens/s")),
        "GEMM peak, median": summ["median_peak_fraction"].map(units.percent),
        "GEMM peak, best": summ["max_peak_fraction"].map(units.percent),
        "peak memory, median": summ["median_peak_mem_bytes"].map(units.mebibytes)})


def scaling_view(fits: pd.DataFrame | None) -> pd.DataFrame:
    if fits is None or fits.empty:
        return pd.DataFrame()
    return pd.DataFrame({"device": fits["device_label"], "phase": fits["phase"], "impl": fits["impl"],
                         **{f"exponent of {a}": fits[f"exp_{a}"].map(lambda x: units.sig(x, 2)) for a in SCALING_SIZES},
                         "r²": fits["r2"].map(lambda x: units.sig(x, 3)), "points": fits["points"],
                         "fitted over": fits["range"]})


def run_ratio_view(rr: pd.DataFrame | None) -> pd.DataFrame:
    if rr is None or rr.empty:
        return pd.DataFrame()
    interval = [f"[{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else "" for lo, hi in
                zip(rr["ratio_ci_low"], rr["ratio_ci_high"], strict=True)]
    return pd.DataFrame({"run / base": rr["run"] + " / " + rr["base_run"], "impl": rr["impl"],
                         "device": rr["device"], "phase": rr["phase"],
                         "size": rr.apply(size_of, axis=1),
                         "base": rr["base_time_s"].map(units.seconds), "run": rr["time_s"].map(units.seconds),
                         "ratio": rr["ratio"].map(units.times), "95% interval": interval,
                         "difference": [intervals.difference(lo, hi) if lo == lo else "" for lo, hi in
                                        zip(rr["ratio_ci_low"], rr["ratio_ci_high"], strict=True)]})


def compile_view(cc: pd.DataFrame | None) -> pd.DataFrame:
    """compile_costs() in human units: break-even in steps, "never" where the compiled step is not measurably
    faster, "no interval" where its rounds are missing."""
    if cc is None or cc.empty:
        return pd.DataFrame()

    def paid(r) -> str:
        if r["speedup_ci_low"] != r["speedup_ci_low"]:
            return "no interval"
        return "never" if r["break_even_steps"] != r["break_even_steps"] else f"{r['break_even_steps']:,.0f} steps"
    return pd.DataFrame({
        "device": cc["device_label"], "phase": cc["phase"], "size": cc.apply(size_of, axis=1),
        "impl": cc["impl"], "mode": cc["compile_mode"].fillna(""), "autocast": cc["autocast"],
        "compile": cc["compile_s"].map(units.seconds), "recompiles": cc["recompiles"],
        "graph breaks": cc["graph_breaks"], "steady step": cc["time_s"].map(units.seconds), "against": cc["ref"],
        "its step": cc["ref_time_s"].map(units.seconds), "speed-up": cc["speedup"].map(units.times),
        "95% interval": [f"[{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else "" for lo, hi in
                         zip(cc["speedup_ci_low"], cc["speedup_ci_high"], strict=True)],
        "break-even": [paid(r) for _, r in cc.iterrows()]})


def noisy_view(noisy: pd.DataFrame) -> pd.DataFrame:
    """summary.noisy_groups() with the steal as a percentage."""
    if noisy.empty:
        return noisy
    return noisy.assign(steal_fraction=noisy["steal_fraction"].map(units.percent)).rename(
        columns={"steal_fraction": "steal"})


def attribution_view(att: pd.DataFrame | None) -> pd.DataFrame:
    """ratios.attribution() in human units: each step's factor with its interval, per device, phase and size."""
    if att is None or att.empty:
        return pd.DataFrame()
    return pd.DataFrame({"device": att["device_label"], "phase": att["phase"], "size": att.apply(size_of, axis=1),
                         "from": att["from"], "to": att["to"], "what it measures": att["measures"],
                         "factor": att["factor"].map(units.times),
                         "95% interval": [f"[{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else "" for lo, hi in
                                          zip(att["factor_ci_low"], att["factor_ci_high"], strict=True)]})


def above_ceiling_view(above: pd.DataFrame | None) -> pd.DataFrame:
    """summary.above_ceiling(): each row above the measured ceiling, with both numbers."""
    if above is None or above.empty:
        return pd.DataFrame()
    def flop_rate(gflops: pd.Series) -> pd.Series:
        return (gflops * 1e9).map(lambda x: units.rate(x, "FLOP/s"))
    return pd.DataFrame({"device": above["device_label"], "impl": above["impl"], "phase": above["phase"],
                         "size": above.apply(size_of, axis=1), "GEMM rate": flop_rate(above["gflops_per_s"]),
                         "ceiling": flop_rate(above["gemm_peak_gflops_per_s"]),
                         "ceiling's library": above["gemm_peak_library"],
                         "of it": above["peak_fraction"].map(units.percent)})


def environment_table(runs: Runs) -> pd.DataFrame:
    """One row per property, one column per run: narrow enough to read beside the others."""
    cols = {}
    for d, m in zip(runs.dirs, runs.meta, strict=True):
        e = m.environment
        peaks = "; ".join(f"{p.device} {p.dtype} {p.threads} threads {p.library}" + (f" ({p.blas})" if p.blas else "")
                          + f": {units.rate(p.gemm_peak_gflops_per_s * 1e9, 'FLOP/s')}" for p in m.gemm_peaks)
        cols[m.run_id] = {"status": read_status(d, m), "scenario": m.scenario.get("name"), "host": e.get("host"),
                          "cpu": e.get("cpu_model"), "threads": e.get("threads"), "gpu": e.get("gpu"),
                          "torch": e.get("torch"), "cuda": e.get("cuda"), "cudnn": e.get("cudnn"),
                          "onednn": e.get("onednn"), "python": e.get("python"),
                          "commit": m.git.commit[:12] + ("+dirty" if m.git.dirty else ""),
                          "harness": m.harness_version, "started (UTC)": m.started_utc, "GEMM peak": peaks,
                          "wall time": units.seconds(m.wall_s) if m.wall_s else ""}
    df = pd.DataFrame(cols)
    return df.rename_axis("property").reset_index()


def success_view(rates: pd.DataFrame | None) -> pd.DataFrame | None:
    if rates is None:
        return None
    return pd.DataFrame({"task": rates["task"], "T": rates["seq_len"].astype(int), "model": rates["model"],
                         "solved": [solved_text(r) for r in rates.to_dict("records")],
                         "steps to solve (median)": rates["steps_to_solve"].map(
                             lambda v: "" if v != v else f"{v:,.0f}"),
                         "final loss / baseline (median, best)": [
                             f"{units.sig(m)}, {units.sig(b)}" for m, b in
                             zip(rates["median_rel_loss"], rates["best_rel_loss"], strict=True)],
                         "accuracy (median)": rates["median_accuracy"].map(units.percent),
                         "steps": rates["steps"].astype(int),
                         "training sequences": [_budget(r) for r in rates.to_dict("records")],
                         "wall time (median)": rates["median_wall_s"].map(units.seconds),
                         "the classic's own budget and criterion": rates["published"]})


def _budget(r: dict) -> str:
    """'96,000 (the paper's: 74,000)', with "below the paper's" where this run's budget is smaller."""
    s = f"{int(r['sequences']):,}"
    paper = r.get("published_sequences")
    if paper == paper and paper is not None:
        s += f" ({'below ' if r['sequences'] < paper else ''}the paper's: {int(paper):,})"
    return s


def radius_view(by_radius: pd.DataFrame | None) -> pd.DataFrame | None:
    """Models down, spectral radii across: 'factor [low, high]'."""
    if by_radius is None:
        return None
    def cell(r) -> str:
        if r["status"] != "ok":
            return r["status"]
        ci = (f" [{units.sig(r['decay_ci_low'])}, {units.sig(r['decay_ci_high'])}]"
              if pd.notna(r["decay_ci_low"]) else "")
        return units.sig(r["decay_factor"]) + ci
    d = by_radius.assign(text=by_radius.apply(cell, axis=1))
    wide = d.pivot_table(index="model", columns="spectral_radius", values="text", aggfunc="first")
    wide.columns = [f"rho={c:g}" for c in wide.columns]
    return wide.reset_index()


def forget_view(summary: pd.DataFrame | None) -> pd.DataFrame | None:
    if summary is None:
        return None
    return pd.DataFrame({"task": summary["task"], "T": summary["seq_len"].astype(int), "model": summary["model"],
                         "train step": summary["train_step"].astype(int), "seeds": summary["seeds"],
                         "||ds_t/ds_(t-1)|| (mean over t)": summary["jacobian_norm"].map(units.sig),
                         "forget gate (mean)": summary["forget_mean"].map(units.sig),
                         "forget gates above 0.9": summary["forget_open"].map(units.percent)})


def _err(v) -> str:
    return "" if v != v or v is None else f"{v:.1e}"


def errors_view(summ: pd.DataFrame | None) -> pd.DataFrame:
    """numerics.error_summary() with the errors in scientific notation (two figures)."""
    if summ is None or summ.empty:
        return pd.DataFrame()
    return pd.DataFrame({"device": summ["device_label"], "impl": summ["impl"], "precision": summ["precision"],
                         "GEMMs in (compute_dtype)": summ["compute_dtype"], "rows": summ["rows"],
                         "largest out_err": summ["max_out_err"].map(_err),
                         "largest grad_err": summ["max_grad_err"].map(_err),
                         "tolerance": summ["tolerance"].map(_err), "rows off": summ["off"]})


def off_view(off: pd.DataFrame | None) -> pd.DataFrame:
    """numerics.off_rows() with the errors in scientific notation."""
    if off is None or off.empty:
        return pd.DataFrame()
    return off.assign(**{c: off[c].map(_err) for c in ("out_err", "grad_err", "err_tol")}).rename(
        columns={"device_label": "device", "err_tol": "tolerance", "err_ref": "reference"})


def precision_decay_view(table: pd.DataFrame | None) -> pd.DataFrame:
    """numerics.precision_decay() in three significant figures, the difference with its interval."""
    if table is None or table.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "model": table["model"], "hidden": table["hidden"], "T": table["seq_len"], "autocast": table["autocast"],
        "seeds": table["seeds"], "decay float32": table["factor_float32"].map(units.sig),
        "decay autocast": table["factor_autocast"].map(units.sig),
        "difference [95% CI]": [f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" if lo == lo else f"{d:+.3g}"
                                for d, lo, hi in zip(table["difference"], table["diff_ci_low"], table["diff_ci_high"],
                                                     strict=True)],
        "vanish distance float32": table["vanish_float32"].map(lambda v: "never" if v != v else f"{v:.3g}"),
        "vanish distance autocast": table["vanish_autocast"].map(lambda v: "never" if v != v else f"{v:.3g}")})


def speedups_view(sp: pd.DataFrame | None) -> pd.DataFrame | None:
    """parallel.speedups in human units: each pair's speed-up at each T, with its interval."""
    if sp is None or sp.empty:
        return None
    sp = sp.sort_values(["device_label", "phase", "fast", "slow", "basis", "seq_len"])
    return pd.DataFrame({"device": sp["device_label"], "phase": sp["phase"], "fast": sp["fast"], "slow": sp["slow"],
                         "basis": sp["basis"],
                         "hidden": [f"{int(a)}" if a == b else f"{int(a)} vs {int(b)}"
                                    for a, b in zip(sp["hidden"], sp["hidden_slow"], strict=True)],
                         "T": sp["seq_len"].astype(int),
                         "speed-up": [f"{units.times(r)} [{units.sig(lo)}, {units.sig(hi)}]"
                                      for r, lo, hi in zip(sp["speedup"], sp["lo"], sp["hi"], strict=True)],
                         "verdict": [intervals.difference(lo, hi, above="faster", below="slower")
                                     for lo, hi in zip(sp["lo"], sp["hi"], strict=True)]})


def closed_form_view(rows: pd.DataFrame | None) -> pd.DataFrame | None:
    """parallel.closed_form_rows in human units."""
    if rows is None or rows.empty:
        return None

    def factor(r, suffix=""):
        return (f"{units.sig(r['decay_factor' + suffix])} [{units.sig(r['decay_ci_low' + suffix])}, "
                f"{units.sig(r['decay_ci_high' + suffix])}]")
    return pd.DataFrame({"impl": rows["impl"], "device": rows["device"], "dtype": rows["dtype"],
                         "forget bias": rows["forget_bias"].fillna(""), "h": rows["hidden"], "T": rows["seq_len"],
                         "seeds": rows["seeds"], "decay of ||dL/dx_t||": [factor(r) for _, r in rows.iterrows()],
                         "closed form, ||dL/dh_t||": [factor(r, "_closed") for _, r in rows.iterrows()],
                         "vanish distance": rows["vanish_distance"].fillna("never"),
                         "closed form's": rows["vanish_distance_closed"].fillna("never")})
