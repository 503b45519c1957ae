"""What a run found: the report's opening sentences.

    found = findings(runs.tables, cost_ratios, breakdown, run_ratios, compile_costs)   # 5 to 10 sentences

Every sentence is made from the tables, and only when the run has the data
for it: the fastest LSTM and its speed-up over the tutorial's loop, the rows off
their float64 reference and what lower precision buys (numerics.py), the
LSTM/RNN ratios of time and of parameters, the decay factors, which model
solved which task in how many seeds, the best fraction of GEMM peak, peak memory, where the
time goes. Each names the sizes where it holds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis import numerics, parallel
from harness.analysis.learning import SOLVED_RULE, decay_by_radius, gradient_rows, solved_text, success_rates
from harness.analysis.ratios import PAIR_COLUMNS, pair_ratio, round_times
from harness.analysis.tables import STAND_INS, device_text, ok_rows
from harness.config.cases import size_of
from harness.core import intervals, units
from harness.core.thresholds import ABOVE_CEILING
from harness.implementations.params import CELL_NAMES, FORGET_CELLS
from harness.store.traces import one_size

MAX_SENTENCES = 12
SIZE = ["batch", "seq_len", "hidden"]     # in the order of size_label


# -- the sentences --------------------------------------------------------------------------------
def fastest(timings: pd.DataFrame | None, rounds: pd.DataFrame | None) -> list[str]:
    """Per device: the LSTM fastest at most train-step sizes, and its speed-up over scratch-lstm."""
    t = ok_rows(timings, real=True)
    if t is None:
        return []
    t = t[t["cell"] == "lstm"]
    phase = "train" if (t["phase"] == "train").any() else "forward"
    t = t[t["phase"] == phase]
    times = round_times(rounds)
    out = []
    for dev, d in t.groupby("device_label"):
        keys = SIZE + ["dtype"]
        best = d.loc[d.groupby(keys)["time_median_s"].idxmin()]
        if best.empty:
            continue
        wins = best["impl"].value_counts()
        impl, n = wins.index[0], int(wins.iloc[0])
        s = (f"On {device_text(dev)}, {impl} is the fastest LSTM for a {phase} step at {n} of {len(best)} sizes "
             f"({', '.join(size_of(r) for _, r in best[best['impl'] == impl].head(4).iterrows())}"
             + (", ..." if n > 4 else "") + ")")
        scratch = d[d["impl"] == "scratch-lstm"].drop_duplicates(keys, keep="last").set_index(keys)
        mine = d[d["impl"] == impl].drop_duplicates(keys, keep="last").set_index(keys)
        common = mine.index.intersection(scratch.index)
        if impl != "scratch-lstm" and len(common):
            sp = []
            for k in common:
                a, b = scratch.loc[k], mine.loc[k]
                r, lo, hi = pair_ratio(times, {c: a[c] for c in PAIR_COLUMNS},
                                              {c: b[c] for c in PAIR_COLUMNS})   # time(scratch) / time(impl)
                sp.append((r, lo, hi, dict(zip(keys, k, strict=True))))
            top = max(sp, key=lambda x: x[0])
            med = float(np.median([x[0] for x in sp]))
            interval = f" [{units.sig(top[1])}, {units.sig(top[2])}]" if not np.isnan(top[1]) else ""
            s += (f"; it is {units.times(med)} as fast as the tutorial's scratch-lstm (median over {len(sp)} sizes, "
                  f"range {units.times(min(x[0] for x in sp))}–{units.times(top[0])}; {units.times(top[0])}{interval} "
                  f"at {size_of(top[3])})")
        out.append(s + ".")
    return out


def lstm_rnn_cost(ratios: pd.DataFrame | None) -> list[str]:
    if ratios is None or ratios.empty:
        return []
    p = ratios[ratios["kind"] == "params"]
    tm = ratios[ratios["kind"] == "time"]
    parts = []
    if not tm.empty:
        for pair, g in tm.groupby("pair"):
            parts.append(f"{pair.removeprefix('time ')} {units.times(g['ratio'].median())} (range "
                         f"{units.times(g['ratio'].min())}–{units.times(g['ratio'].max())} over {len(g)} sizes)")
    s = "LSTM/RNN train-step time on one backend: " + "; ".join(parts) if parts else ""
    if not p.empty:
        vals = sorted(set(p["ratio"].round(6)))
        ptxt = ("exactly 4x" if vals == [4.0] else ", ".join(units.times(v) for v in vals))
        s = (s + f"; the LSTM has {ptxt} the parameters" if s else
             f"An LSTM has {ptxt} the parameters of an RNN of the same sizes ({len(p)} sizes)")
    return [s + "."] if s else []


def decay_factors(decay: pd.DataFrame | None) -> list[str]:
    d = gradient_rows(decay)
    if d is None or d.empty:
        return []
    words = []
    for cell, g in d.groupby("cell"):
        where = [f"h{'/'.join(str(int(h)) for h in sorted(g['hidden'].unique()))}",
                 f"T={'/'.join(str(int(s)) for s in sorted(g['seq_len'].unique()))}"]
        if cell in FORGET_CELLS and g["forget_bias"].nunique() > 1:
            by = g.groupby("forget_bias")["decay_factor"].median()
            where.append("median " + ", ".join(f"{units.sig(v)} at forget_bias {fb:g}" for fb, v in by.items()))
        lo, hi = units.sig(g["decay_factor"].min()), units.sig(g["decay_factor"].max())
        span = lo if lo == hi else f"{lo}–{hi}"
        words.append(f"the {CELL_NAMES.get(cell, cell)}'s by {span} per step ({'; '.join(where)})")
    return ["Gradients shrink with distance: " + ", ".join(words)
            + " (1 = no decay; factor^T is what is left after T steps)."]


def edge(decay: pd.DataFrame | None) -> list[str]:
    """Where each model's gradient turns from vanishing to exploding over the spectral radii swept:
    the largest rho whose decay interval lies below 1, and the smallest whose interval lies above."""
    d = ok_rows(decay_by_radius(decay))
    if d is None:
        return []
    words = []
    for model, g in d.groupby("model"):
        lo, hi = g["decay_ci_low"].fillna(g["decay_factor"]), g["decay_ci_high"].fillna(g["decay_factor"])
        below, above = g.loc[hi < 1, "spectral_radius"], g.loc[lo > 1, "spectral_radius"]
        if above.empty:
            words.append(f"{model} never explodes up to rho={g['spectral_radius'].max():g} (factor "
                         f"{units.sig(g['decay_factor'].max())} there)")
        else:
            words.append(f"{model} vanishes up to rho={below.max():g} and explodes from rho={above.min():g}"
                         if not below.empty else f"{model} explodes from rho={above.min():g}")
    return ["Vanishing or exploding, by the recurrent blocks' spectral radius rho (95% intervals of the per-step "
            "factor wholly below or above 1): " + "; ".join(words) + "."]


def tasks(training: pd.DataFrame | None) -> list[str]:
    """Per task and T: each model's seeds solved, by the success table's rule and numbers (success_rates)."""
    rates = success_rates(training)
    if rates is None:
        return []
    out = []
    for (task, T), g in rates.groupby(["task", "seq_len"]):
        words = [f"{r['model']}{' (the IRNN)' if r['role'] == 'irnn' else ''} {solved_text(r)}"
                 for _, r in g.iterrows()]
        out.append(f"On the {task} task (T={int(T)}, {int(g['steps'].max())} steps), seeds solved: "
                   + ", ".join(words) + f" ({SOLVED_RULE}).")
    return out


def peak_fraction(timings: pd.DataFrame | None) -> list[str]:
    """Per device: the best fraction of the GEMM ceiling (the best library's peak) among the rows within it, and
    the rows above it (thresholds.ABOVE_CEILING), which say the ceiling is in doubt, never that a row did well."""
    t = ok_rows(timings, real=True)
    if t is None or t["peak_fraction"].isna().all():
        return []
    out = []
    for dev, d in t.dropna(subset=["peak_fraction"]).groupby("device_label"):
        within, above = d[d["peak_fraction"] <= ABOVE_CEILING], d[d["peak_fraction"] > ABOVE_CEILING]
        if not within.empty:
            r = within.loc[within["peak_fraction"].idxmax()]
            peak = units.rate(r["gemm_peak_gflops_per_s"] * 1e9, "FLOP/s")
            library = f" ({r['gemm_peak_library']})" if str(r.get("gemm_peak_library", "")) not in ("", "nan") else ""
            out.append(f"The best fraction of the GEMM peak is {units.percent(r['peak_fraction'])} of {peak}{library} "
                       f"on {device_text(dev)}, by {r['impl']} ({r['phase']}, {size_of(r)}); the median over "
                       f"{len(within)} cases is {units.percent(within['peak_fraction'].median())}.")
        if not above.empty:
            r = above.loc[above["peak_fraction"].idxmax()]
            out.append(f"{len(above)} cases on {device_text(dev)} read above the measured ceiling, up to "
                       f"{units.rate(r['gflops_per_s'] * 1e9, 'FLOP/s')} against "
                       f"{units.rate(r['gemm_peak_gflops_per_s'] * 1e9, 'FLOP/s')} ({r['impl']}, {r['phase']}, "
                       f"{size_of(r)}): the ceiling is in doubt (a faster GEMM path than those measured, or a slower "
                       "machine while they were), not a success.")
    return out


def memory(timings: pd.DataFrame | None) -> list[str]:
    t = ok_rows(timings, real=True)
    if t is None or "peak_mem_bytes" not in t:
        return []
    t = t[t["phase"] == "train"].dropna(subset=["peak_mem_bytes"])
    if t.empty:
        return []
    work = t["hidden"] * t["batch"] * t["seq_len"]
    several = t.groupby(work)["impl"].transform("nunique") > 1          # a size where two or more models ran
    if not several.any():
        return []
    t, work = t[several], work[several]
    big = t[work == work.max()]                        # the largest size measured by two or more
    lo, hi = big.loc[big["peak_mem_bytes"].idxmin()], big.loc[big["peak_mem_bytes"].idxmax()]
    return [f"At {size_of(lo)} a train step's peak memory ranges from {units.mebibytes(lo['peak_mem_bytes'])} "
            f"({lo['impl']}) to {units.mebibytes(hi['peak_mem_bytes'])} ({hi['impl']})."]


def time_split(breakdown: pd.DataFrame | None) -> list[str]:
    if breakdown is None or breakdown.empty:
        return []
    out = []
    breakdown = breakdown[~breakdown["impl"].isin(STAND_INS)]
    if breakdown.empty:
        return []
    for dev, d in one_size(breakdown).groupby("device"):
        b = d.groupby(["impl", "category"])["ms"].median().unstack(fill_value=0.0)
        share = b.div(b.sum(axis=1), axis=0)
        if "overhead" not in share or "GEMM" not in share or len(share) < 2:
            continue
        most, gemm = share["overhead"].idxmax(), share["GEMM"].idxmax()
        out.append(f"Profiled at {size_of(d.iloc[0])} on {dev} ({d['phase'].iloc[0]}), {most} spends "
                   f"{units.percent(share.loc[most, 'overhead'])} of its step in framework overhead (in no op, or "
                   f"the autograd engine) and {gemm} the largest share in GEMM, "
                   f"{units.percent(share.loc[gemm, 'GEMM'])}.")
    return out


def between_runs(rr: pd.DataFrame | None) -> list[str]:
    if rr is None or rr.empty:
        return []
    out = []
    for rid, g in rr.groupby("run", sort=False):
        words = [intervals.difference(lo, hi) for lo, hi in zip(g["ratio_ci_low"], g["ratio_ci_high"], strict=True)]
        out.append(f"Run {rid} took a median {units.times(g['ratio'].median())} the time of {g['base_run'].iloc[0]} "
                   f"over their {len(g)} common cases (range {units.times(g['ratio'].min())}–"
                   f"{units.times(g['ratio'].max())}): measurably slower at {words.count('slower')}, faster at "
                   f"{words.count('faster')}.")
    return out


def compilers(cc: pd.DataFrame | None) -> list[str]:
    """Per device and compiled implementation, against eager fused-lstm: its compile time, its speed-up's range
    and whether (and after how many steps, at best) the compile pays back (ratios.compile_costs)."""
    if cc is None or cc.empty:
        return []
    out = []
    for (dev, impl), g in cc[cc["ref"] == "fused-lstm"].groupby(["device_label", "impl"], sort=False):
        pays = g["break_even_steps"].dropna()
        lo, hi = g["speedup"].min(), g["speedup"].max()
        speed = units.times(lo) if lo == hi else f"{units.times(lo)}–{units.times(hi)}"
        out.append(f"On {device_text(dev)}, {impl} compiles in {units.seconds(g['compile_s'].median())} (median of "
                   f"{len(g)} cases) and runs at {speed} fused-lstm's speed: "
                   + (f"its compile pays back after {pays.min():,.0f} steps at best ({len(pays)} of {len(g)} cases)."
                      if len(pays) else "it is never measurably faster, so its compile never pays back."))
    return out


def vendor_steps(att: pd.DataFrame | None) -> list[str]:
    """Per device: the largest step from nn.LSTM on native kernels to the vendor's LSTM (ratios.attribution), with
    its interval, and the whole way it is a part of where the group timed both ends."""
    if att is None or att.empty:
        return []
    out = []
    for dev, d in att.groupby("device_label", sort=False):
        steps = d[~d["measures"].str.startswith(("the whole way", "beside"))]
        if steps.empty:
            continue
        r = steps.loc[steps["factor"].idxmax()]
        group = d[(d["run_id"] == r["run_id"]) & (d["phase"] == r["phase"]) & (d["batch"] == r["batch"])
                  & (d["seq_len"] == r["seq_len"]) & (d["hidden"] == r["hidden"])]
        whole = group[group["measures"].str.startswith("the whole way")]
        interval = (f" [{units.sig(r['factor_ci_low'])}, {units.sig(r['factor_ci_high'])}]"
                    if r["factor_ci_low"] == r["factor_ci_low"] else "")
        where = device_text(dev)
        s = (f"On {where}, of {whole.iloc[0]['to']}'s {units.times(whole.iloc[0]['factor'])} over "
             f"{whole.iloc[0]['from']} ({r['phase']}, {size_of(r)}), the largest step is " if not whole.empty else
             f"On {where}, the largest step measured toward the vendor's LSTM ({r['phase']}, {size_of(r)}) is ")
        out.append(s + f"{r['measures'].split(':')[0]}, {units.times(r['factor'])}{interval} ({r['from']} against "
                       f"{r['to']}).")
    return out


def findings(t: dict[str, pd.DataFrame | None], ratios: pd.DataFrame | None,
             breakdown: pd.DataFrame | None = None, rr: pd.DataFrame | None = None,
             cc: pd.DataFrame | None = None) -> list[str]:
    """At most MAX_SENTENCES sentences about these runs, each from their data; empty without data."""
    every = t.get("all_timings", t["timings"])            # every stack and precision: the error pass's rows
    out = (between_runs(rr) + fastest(t["timings"], t.get("rounds"))
           + numerics.precision_sentences(every, t.get("rounds")) + numerics.decay_sentence(t.get("precision_decay"))
           + vendor_steps(t.get("attribution"))
           + parallel.sentences(t.get("parallel_speedups"), t.get("parallel_memory"))
           + parallel.closed_form_sentence(t.get("closed_form"))
           + lstm_rnn_cost(ratios) + decay_factors(t["decay"]) + edge(t["decay"]) + tasks(t["training"])
           + compilers(cc) + peak_fraction(t["timings"]) + time_split(breakdown) + memory(t["timings"]))
    return out[:MAX_SENTENCES]
