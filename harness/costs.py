"""What stacks, variable lengths and compilers cost: ratios of a run's timings, with 95% intervals.

    layer_costs(timings, rounds)      # each stacked case over one layer, one direction, at its sizes
    lengths_costs(timings, rounds)    # each variable-length case over a fixed batch of its real tokens
    compile_costs(timings, rounds)    # each compiled case: compile time, speed-up over eager, break-even

Both read the tidy timings (harness/tables.py) and the raw rounds; each ratio's interval is
the bootstrap of tables.pair_ratio (unpaired: the two cases are in different comparison groups).
harness/plots.py draws them; the report writes them as layer_costs.csv and lengths_costs.csv.
"""
from __future__ import annotations

import pandas as pd

from harness import lengths as varlen
from harness.tables import PAIR_COLUMNS, pair_ratio, round_times

SIZES = ["run_id", "device_label", "dtype", "impl", "phase", "batch", "hidden", "input", "autocast", "tf32",
         "compile_mode"]   # what a ratio holds equal
TOKEN_MATCH = 0.10   # a fixed-length batch "of the same real tokens": within 10% of them (the cost is per token)


def _ok(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    if timings is None or "stack" not in timings:
        return None
    t = timings[timings["status"] == "ok"]
    if t.empty:
        return None
    blank = {c: t[c].fillna("").astype(str) if c in t else "" for c in ("autocast", "tf32", "compile_mode")}
    return t.assign(bi=t["bidirectional"].astype(str) == "True", **blank)      # group and merge on blank, not NaN


def _ratio(times: dict, row: pd.Series, suffix: str, keys: list[str]) -> tuple[float, float, float]:
    """time(row) / time(its merged partner, the columns with `suffix`), with pair_ratio's interval."""
    other = {c: row[c] if c in keys else row[f"{c}{suffix}"] for c in PAIR_COLUMNS}
    return pair_ratio(times, {c: row[c] for c in PAIR_COLUMNS}, other)


def layer_costs(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Per fixed-length case without projection or dropout: time over the same implementation's one layer,
    one direction at the same sizes, beside the FLOP model's ratio; for the configurations timed at two
    or more stacks (None where there are none)."""
    t = _ok(timings)
    if t is None:
        return None
    t = t[(t["lengths"] == varlen.FIXED) & (t["proj_size"].fillna(0) == 0) & (t["dropout"].fillna(0) == 0)]
    keys = SIZES + ["seq_len"]
    base = t[(t["layers"] == 1) & ~t["bi"]].drop_duplicates(keys, keep="last")
    both = t.merge(base, on=keys, suffixes=("", "_base"))
    stacks = both.groupby(keys)[["layers", "bi"]].transform("nunique").max(axis=1)
    both = both[stacks > 1]                          # a configuration timed at one stack has nothing to show
    if both.empty:
        return None
    times = round_times(rounds)
    out = []
    for _, row in both.iterrows():
        r, lo, hi = _ratio(times, row, "_base", keys)
        out.append({**{k: row[k] for k in keys}, "layers": int(row["layers"]), "directions": 2 if row["bi"] else 1,
                    "time_s": row["time_median_s"], "base_time_s": row["time_median_s_base"], "ratio": r,
                    "ratio_ci_low": lo, "ratio_ci_high": hi, "flops_ratio": row["flops"] / row["flops_base"]})
    return pd.DataFrame(out)


def lengths_costs(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Per variable-length case: its time per real token over that of the fixed-length batch, of the same
    implementation, sizes and stack, whose tokens come nearest its real tokens (within TOKEN_MATCH).
    A cost of 2 is twice the time per real token: the price of the padding, sorting or masking."""
    t = _ok(timings)
    if t is None:
        return None
    keys = SIZES + ["layers", "bi", "proj_size", "dropout"]
    var, fixed = t[t["lengths"] != varlen.FIXED], t[t["lengths"] == varlen.FIXED]
    pairs = var.merge(fixed, on=keys, suffixes=("", "_fixed"))
    if pairs.empty:
        return None
    pairs = pairs.assign(match=(pairs["tokens_fixed"] / pairs["tokens"] - 1).abs())
    pairs = pairs[pairs["match"] <= TOKEN_MATCH].sort_values("match").drop_duplicates(keys + ["case_id"])
    if pairs.empty:
        return None
    times = round_times(rounds)
    out = []
    for _, row in pairs.iterrows():
        r, lo, hi = _ratio(times, row, "_fixed", keys)
        per_token = row["tokens_fixed"] / row["tokens"]    # time per real token: (t / n) / (t_fixed / n_fixed)
        low, high = varlen.parse(row["lengths"])
        out.append({**{k: row[k] for k in keys if k != "bi"}, "directions": 2 if row["bi"] else 1,
                    "lengths": row["lengths"], "lengths_mode": row["lengths_mode"], "spread": high - low,
                    "padding_fraction": row["padding_fraction"], "tokens": row["tokens"],
                    "fixed_seq_len": row["seq_len_fixed"], "fixed_tokens": row["tokens_fixed"], "cost": r * per_token,
                    "cost_ci_low": lo * per_token, "cost_ci_high": hi * per_token})
    return pd.DataFrame(out)


EAGER_REFS = ("fused-lstm", "onednn-lstm", "cudnn-lstm")
# what a compiled case's speed-up is taken against, where its comparison group timed them: the eager code it
# compiles (fused-lstm), and the vendor kernel of its device


def compile_costs(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Per compiled case (a compile_backend) and eager reference of its comparison group (EAGER_REFS): the
    steady speed-up eager time / compiled time, with its paired 95% interval, beside compile_s; and the
    break-even, compile_s / (eager - compiled time per step) steps, where the interval shows the compiled step
    faster (lower bound above 1), else NaN: it never pays back its compile (None without compiled rows)."""
    t = _ok(timings)
    if t is None or "compile_backend" not in t:
        return None
    compiled = t[t["compile_backend"].fillna("").astype(str) != ""]
    if compiled.empty:
        return None
    times = round_times(rounds)
    out = []
    for _, row in compiled.iterrows():
        group = t[(t["run_id"] == row["run_id"]) & (t["group_id"] == row["group_id"])]
        for ref_impl in EAGER_REFS:
            ref = group[group["impl"] == ref_impl]
            if ref.empty:
                continue
            ref = ref.iloc[0]
            r, lo, hi = pair_ratio(times, ref, row)                 # eager / compiled: above 1 is a speed-up
            saving = ref["time_median_s"] - row["time_median_s"]    # seconds per step
            pays = lo == lo and lo > 1 and saving > 0
            out.append({**{k: row[k] for k in ("run_id", "device_label", "dtype", "phase", "batch", "seq_len",
                                               "hidden", "impl", "compile_backend", "compile_mode", "autocast")},
                        "compile_s": row["compile_s"], "recompiles": row.get("recompiles"),
                        "graph_breaks": row.get("graph_breaks"), "time_s": row["time_median_s"], "ref": ref_impl,
                        "ref_time_s": ref["time_median_s"], "speedup": r, "speedup_ci_low": lo,
                        "speedup_ci_high": hi,
                        "break_even_steps": max(row["compile_s"], 0.0) / saving if pays else float("nan")})
    # compile_s below 0: the first call was no slower than a steady one (noise), so nothing to pay back
    return pd.DataFrame(out) if out else None

