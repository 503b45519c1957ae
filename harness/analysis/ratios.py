"""Ratios of timings, each with its 95% interval over the rounds: the one home of every derived table of ratios.

    times = round_times(rounds)                      # (run_id, case_id) -> that case's rounds
    r, lo, hi = pair_ratio(times, row_a, row_b)      # time(a) / time(b): paired within a comparison group
    cost_ratios(timings, rounds)      # LSTM/RNN: train-step time per backend pair, and parameters (claims d, e)
    layer_costs(timings, rounds)      # each stacked case over one layer, one direction, at its sizes
    lengths_costs(timings, rounds)    # each variable-length case over a fixed batch of its real tokens
    compile_costs(timings, rounds)    # each compiled case: compile time, speed-up over eager, break-even
    run_ratios(timings, rounds, ids)  # several runs of one scenario: each case's time over the first run's
    attribution(timings, rounds)      # where a vendor LSTM's speed-up comes from: the loop, the GEMM library

Each reads the tidy timings (tables.py) and the raw rounds (rounds.csv); an interval is the
bootstrap of intervals.ratio_ci, paired where the two cases were timed round-robin in one comparison
group, unpaired otherwise (two groups, or two runs). The figures draw these; the report writes them.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from harness.analysis.tables import ok_rows
from harness.config.cases import KEY_COLUMNS
from harness.core import intervals
from harness.implementations import lengths as varlen


def round_times(rounds: pd.DataFrame | None) -> dict[tuple[str, str], np.ndarray]:
    """(run_id, case_id) -> that case's raw rounds, in round order (rounds.csv)."""
    if rounds is None or rounds.empty:
        return {}
    r = rounds.sort_values(["run_id", "case_id", "round"])
    return {k: g["time_s"].to_numpy(dtype=float) for k, g in r.groupby(["run_id", "case_id"])}


PAIR_COLUMNS = ("run_id", "case_id", "group_id", "time_median_s")   # what pair_ratio reads of each side


def pair_ratio(times: dict, a: Mapping, b: Mapping) -> tuple[float, float, float]:
    """time(a) / time(b) with its 95% bootstrap interval over their rounds: paired where the two
    were timed in one comparison group (round r of each shares the machine's state), unpaired otherwise."""
    ta, tb = times.get((a["run_id"], a["case_id"])), times.get((b["run_id"], b["case_id"]))
    if ta is None or tb is None:
        return a["time_median_s"] / b["time_median_s"], float("nan"), float("nan")
    paired = a["run_id"] == b["run_id"] and a.get("group_id") == b.get("group_id") and len(ta) == len(tb)
    return intervals.ratio_ci(ta, tb, paired=bool(paired))


def cost_ratios(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """LSTM/RNN ratios at equal sizes: train-step time per backend pair (with its interval), and parameters."""
    t = ok_rows(timings)
    if t is None:
        return None
    times = round_times(rounds)
    keys = ["device_label", "dtype", "phase", "hidden", "input", "batch", "seq_len"]
    out = []
    rnn_pairs = {"scratch-rnn": ["scratch-lstm"], "torch-rnn": ["torch-lstm", "onednn-lstm", "cudnn-lstm"]}
    for rnn, lstms in rnn_pairs.items():
        r = t[t["impl"] == rnn].set_index(keys)
        for lstm in lstms:
            lt = t[t["impl"] == lstm].set_index(keys)
            j = pd.merge(lt, r, left_index=True, right_index=True, suffixes=("_lstm", "_rnn"))
            if j.empty:
                continue
            same_backend = j["backend_lstm"] == j["backend_rnn"]
            j = j[same_backend]          # e.g. torch-lstm (native) with torch-rnn (native) on CPU
            for k, row in j.iterrows():
                d = dict(zip(keys, k, strict=True))
                if d["phase"] == "train":
                    ratio, lo, hi = pair_ratio(times, {c: row[f"{c}_lstm"] for c in PAIR_COLUMNS},
                                               {c: row[f"{c}_rnn"] for c in PAIR_COLUMNS})
                    out.append({**d, "pair": f"time {lstm}/{rnn}", "kind": "time", "ratio": ratio,
                                "ratio_ci_low": lo, "ratio_ci_high": hi})
                out.append({**d, "pair": "params LSTM/RNN", "kind": "params",
                            "ratio": row["params_lstm"] / row["params_rnn"]})
    if not out:
        return None
    return pd.DataFrame(out).drop_duplicates(subset=keys + ["pair"])


SIZES = ["run_id", "device_label", "dtype", "impl", "phase", "batch", "hidden", "input", "autocast", "tf32",
         "compile_mode"]   # what a ratio holds equal
TOKEN_MATCH = 0.10   # a fixed-length batch "of the same real tokens": within 10% of them (the cost is per token)


def _ok(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ok rows, with `bi` and the precision columns blank rather than NaN, so that they group and merge."""
    t = ok_rows(timings)
    if t is None or "stack" not in t:
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


def run_ratios(timings: pd.DataFrame | None, rounds: pd.DataFrame | None, ids: list[str]) -> pd.DataFrame | None:
    """Several runs of one scenario: per case both timed ok, time(run) / time(first run) with a 95% bootstrap
    interval over their rounds (unpaired: two runs' rounds are not matched), for every run after the first."""
    t = ok_rows(timings)
    if t is None or len(ids) < 2:
        return None
    times = round_times(rounds)
    keys = [k for k in KEY_COLUMNS if k in t]            # what one case is, in any run
    base = t[t["run_id"] == ids[0]].drop_duplicates(keys, keep="last").set_index(keys)
    out = []
    for rid in ids[1:]:
        other = t[t["run_id"] == rid].drop_duplicates(keys, keep="last").set_index(keys)
        for k in base.index.intersection(other.index):
            a, b = base.loc[k], other.loc[k]
            r, lo, hi = pair_ratio(times, {c: b[c] for c in PAIR_COLUMNS},
                                          {c: a[c] for c in PAIR_COLUMNS})
            out.append({**dict(zip(keys, k, strict=True)), "base_run": ids[0], "run": rid,
                        "base_time_s": a["time_median_s"], "time_s": b["time_median_s"], "ratio": r,
                        "ratio_ci_low": lo, "ratio_ci_high": hi})
    return pd.DataFrame(out) if out else None


CHAIN = {  # device type -> the steps from nn.LSTM on native kernels to the vendor's LSTM: (from, to, what it measures)
    "cpu": (("torch-lstm", "fused-lstm", "the loop: nn.LSTM's native one against fused-lstm's, both on aten GEMMs"),
            ("fused-lstm", "fused-lstm[onednn]", "the GEMM library: aten against oneDNN, in fused-lstm's loop"),
            ("fused-lstm[onednn]", "onednn-lstm", "the fused loop: fused-lstm's against oneDNN's LSTM, both on "
                                                  "oneDNN GEMMs")),
    "cuda": (("torch-lstm", "fused-lstm", "the loop: nn.LSTM's native one against fused-lstm's, both on cuBLAS"),
             ("fused-lstm", "cudnn-lstm", "the library and the fused loop: fused-lstm on cuBLAS against cuDNN's "
                                          "LSTM")),
}
BESIDE = {"cpu": ("bptt-lstm[onednn]", "onednn-lstm", "beside: bptt-lstm (the scratch loop with its own backward) "
                                                       "on oneDNN GEMMs against oneDNN's LSTM"),
          "cuda": ("bptt-lstm", "cudnn-lstm", "beside: bptt-lstm (the scratch loop with its own backward) on cuBLAS "
                                              "against cuDNN's LSTM")}


def attribution(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Where a vendor LSTM's speed-up over nn.LSTM on native kernels comes from, per comparison group of one plain
    layer: each step of CHAIN whose two ends the group timed, time(from) / time(to) with its paired 95% interval
    (above 1: `to` is faster), the whole way (torch-lstm against the vendor's), and BESIDE. None without one."""
    t = ok_rows(timings)
    if t is None or "stack" not in t:
        return None
    t = t[t["stack"] == ""]
    times = round_times(rounds)
    out = []
    for _, g in t.groupby(["run_id", "group_id"]):
        members = g.drop_duplicates("impl", keep="last").set_index("impl", drop=False)
        kind = str(g["device"].iloc[0]).split(":")[0]
        chain = CHAIN.get(kind, ())
        steps = [*chain, BESIDE[kind]] if kind in BESIDE else list(chain)
        if chain and chain[0][0] in members.index and chain[-1][1] in members.index:
            steps.append((chain[0][0], chain[-1][1], "the whole way: nn.LSTM on native kernels against the vendor's"))
        for a, b, what in steps:
            if a in members.index and b in members.index:
                r, lo, hi = pair_ratio(times, members.loc[a], members.loc[b])
                out.append({**{k: g[k].iloc[0] for k in ("run_id", "device_label", "dtype", "phase", "batch",
                                                          "seq_len", "hidden")},
                            "from": a, "to": b, "measures": what, "factor": r, "factor_ci_low": lo,
                            "factor_ci_high": hi})
    return pd.DataFrame(out) if out else None
