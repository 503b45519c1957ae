"""What stacks and variable lengths cost: ratios of a run's timings, with 95% intervals.

    layer_costs(timings, rounds)      # each stacked case over one layer, one direction, at its sizes
    lengths_costs(timings, rounds)    # each variable-length case over a fixed batch of its real tokens

Both read the tidy timings (harness/tables.py) and the raw rounds; each ratio's interval is
the bootstrap of tables.pair_ratio (unpaired: the two cases are in different comparison groups).
harness/plots.py draws them; the report writes them as layer_costs.csv and lengths_costs.csv.
"""
from __future__ import annotations

import pandas as pd

from harness import lengths as varlen
from harness.tables import PAIR_COLUMNS, pair_ratio, round_times

SIZES = ["run_id", "device_label", "dtype", "impl", "phase", "batch", "hidden", "input"]   # what a ratio holds equal
TOKEN_MATCH = 0.10   # a fixed-length batch "of the same real tokens": within 10% of them (the cost is per token)


def _ok(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    if timings is None or "stack" not in timings:
        return None
    t = timings[timings["status"] == "ok"]
    return None if t.empty else t.assign(bi=t["bidirectional"].astype(str) == "True")


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
