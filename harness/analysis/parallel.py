"""The recurrences that train in parallel (minGRU, minLSTM: implementations/minrnn.py) beside the LSTM and GRU.

    sp = speedups(timings, rounds)     # time(slow) / time(fast) per pair (PAIRS), device, phase and T, with intervals
    crossovers(sp)                     # per pair: the T from which the fast side is measurably faster at every T run
    memory_rows(timings)               # peak memory of a train step against T, each min model and its baselines
    sentences(sp, memory)              # the findings' lines
    paper_claim(sp)                    # the paper's claim (Feng et al. 2024), judged by PAPER_RULE

A pair is (fast, slow): the scan beside its own loop, and beside the library layer of its cell's ancestor, at equal
hidden size; and the minLSTM scan beside the LSTM at equal parameter count (a minLSTM whose hidden size gives as many
parameters as the LSTM's, within EQUAL_PARAMS: a row of its own comparison group, so that ratio is unpaired). At
equal batch and T a time ratio is the ratio of tokens per second. The interval is the 95% bootstrap of
ratios.pair_ratio.
"""
from __future__ import annotations

import pandas as pd

from harness.analysis.ratios import PAIR_COLUMNS, pair_ratio, round_times
from harness.analysis.tables import device_text, ok_rows
from harness.core.units import compact, mebibytes, percent

SCANS = ("mingru-scan", "minlstm-scan")
LOOPS = ("mingru-loop", "minlstm-loop")
KEY_PAIRS = [("mingru-scan", "mingru-loop"), ("minlstm-scan", "minlstm-loop"),      # (fast, slow): its own loop,
             ("mingru-scan", "torch-gru"), ("minlstm-scan", "onednn-lstm"),          # the library layers: the
             ("minlstm-scan", "cudnn-lstm")]                                         # findings' crossovers
PAIRS = KEY_PAIRS + [(m, lib) for m in (*SCANS, *LOOPS) for lib in ("torch-lstm", "torch-gru")
                     if (m, lib) not in KEY_PAIRS]      # and every min model against nn.LSTM and nn.GRU
EQUAL_PARAMS = 0.01       # a min model's params within 1% of the LSTM's count as equal
SAME = ["device_label", "dtype", "phase", "batch", "seq_len", "input", "layers", "autocast"]   # what a pair shares
PAPER_FACTOR = 175.0      # "175x faster for a sequence of length 512" (Feng et al. 2024, abstract)
PAPER_T = 512
PAPER_MEMORY = 0.88       # "about 88% more" memory (the paper's body, on a T4 GPU)
PAPER_RULE = (f"the speed-up of mingru-scan over torch-gru, train, at T = {PAPER_T} (or the nearest T run), with its "
              f"95% interval, on each device. Only a CUDA device can judge the paper's GPU figure: supported where the "
              f"interval's low end is at least half of {PAPER_FACTOR:g}x, contradicted where its high end is below a "
              f"tenth of it, else partly supported. A factor measured on a CPU is reported beside the paper's, never "
              f"as "
              f"a verdict on it")


def _rows(t: pd.DataFrame, impl: str) -> pd.DataFrame:
    r = t[(t["impl"] == impl) & (t["stack"].fillna("") == "")] if "stack" in t else t[t["impl"] == impl]
    return r.drop_duplicates(subset=[*SAME, "hidden"], keep="last")


def speedups(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """time(slow) / time(fast) for every pair at every size both ran (module docstring): long form."""
    t = ok_rows(timings)
    if t is None or not set(SCANS) & set(t["impl"]):
        return None
    t = t.assign(autocast=t["autocast"].fillna("none") if "autocast" in t else "none")
    times = round_times(rounds)
    out = []
    cols = [*SAME, "hidden", "params", *PAIR_COLUMNS]
    for fast, slow in PAIRS:
        f, s = _rows(t, fast)[cols], _rows(t, slow)[cols]
        if f.empty or s.empty:
            continue
        same = f.merge(s, on=[*SAME, "hidden"], suffixes=("", "_slow")).assign(basis="equal hidden")
        same["hidden_slow"] = same["hidden"]
        pairs = [same]
        if slow.endswith("-lstm") and fast == "minlstm-scan":            # equal parameter count, other hidden sizes
            cross = f.merge(s, on=SAME, suffixes=("", "_slow"))
            cross = cross[(cross["hidden"] != cross["hidden_slow"])
                          & ((cross["params"] / cross["params_slow"] - 1).abs() <= EQUAL_PARAMS)]
            pairs.append(cross.assign(basis="equal parameters"))
        for m in pairs:
            for _, row in m.iterrows():
                r, lo, hi = pair_ratio(times, {c: row[f"{c}_slow"] for c in PAIR_COLUMNS},
                                       {c: row[c] for c in PAIR_COLUMNS})
                out.append({**{k: row[k] for k in SAME}, "fast": fast, "slow": slow, "basis": row["basis"],
                            "hidden": row["hidden"], "hidden_slow": row["hidden_slow"], "speedup": r, "lo": lo,
                            "hi": hi})
    return pd.DataFrame(out) if out else None


def _verdict(lo: float, hi: float) -> str:
    return "faster" if lo > 1 else "slower" if hi < 1 else "no measurable difference"


def crossovers(sp: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per pair, basis, device, dtype and phase: `from_T`, the smallest T from which `fast` is measurably faster
    (interval above 1) at every larger T run, or blank where it is not at the largest; `below_T`, the T run
    just before it (the crossover lies between the two); `at`, each T's verdict."""
    if sp is None or sp.empty:
        return None
    out = []
    for key, g in sp.groupby(["fast", "slow", "basis", "device_label", "dtype", "phase", "batch"], sort=False):
        g = g.sort_values("seq_len")
        verdicts = [_verdict(lo, hi) for lo, hi in zip(g["lo"], g["hi"], strict=True)]
        Ts = [int(T) for T in g["seq_len"]]
        k = len(Ts)
        while k > 0 and verdicts[k - 1] == "faster":
            k -= 1
        out.append({**dict(zip(["fast", "slow", "basis", "device_label", "dtype", "phase", "batch"], key,
                               strict=True)),
                    "from_T": Ts[k] if k < len(Ts) else "", "below_T": Ts[k - 1] if 0 < k < len(Ts) else "",
                    "at": "; ".join(f"T={T} {compact(r)}x" for T, r in zip(Ts, g["speedup"], strict=True)),
                    "verdicts": verdicts, "Ts": Ts})
    return pd.DataFrame(out)


def crossover_text(row) -> str:
    """One crossover in words."""
    who = f"{row['fast']} beats {row['slow']}" + (" at equal parameters" if row["basis"] == "equal parameters" else "")
    Ts = row["Ts"]
    if row["from_T"] == "":
        return (f"{who} at no T up to {Ts[-1]} ({row['at']}): at T = {Ts[-1]} it is "
                f"{row['verdicts'][-1]}")
    if row["below_T"] == "":
        return f"{who} at every T run, from {Ts[0]} ({row['at']})"
    return f"{who} from T = {row['from_T']} on (crossover between {row['below_T']} and {row['from_T']}; {row['at']})"


def memory_rows(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """Peak memory of one train step of the min models and their baselines, per device, hidden and T (MiB), with
    each scan's ratio to its own loop at the same size."""
    t = ok_rows(timings)
    if t is None or "peak_mem_bytes" not in t:
        return None
    impls = set(SCANS) | set(LOOPS) | {s for _, s in PAIRS}
    t = t[t["impl"].isin(impls) & (t["phase"] == "train")].dropna(subset=["peak_mem_bytes"])
    if "stack" in t:
        t = t[t["stack"].fillna("") == ""]
    if t.empty or not set(SCANS) & set(t["impl"]):
        return None
    keys = ["device_label", "dtype", "batch", "hidden", "seq_len"]
    m = t.drop_duplicates(subset=[*keys, "impl"], keep="last")[[*keys, "impl", "peak_mem_bytes"]]
    return m.assign(MiB=m["peak_mem_bytes"] / 2**20).sort_values([*keys, "impl"]).reset_index(drop=True)


def _more(a: float, b: float) -> str:
    r = a / b - 1
    return f"{percent(abs(r))} {'more' if r >= 0 else 'less'}"


def memory_sentence(memory: pd.DataFrame | None) -> list[str]:
    """At the largest T run, per device: each scan's peak over its own loop's, beside the paper's figure."""
    if memory is None or memory.empty:
        return []
    out = []
    for (label, hidden), g in memory.groupby(["device_label", "hidden"]):
        T = g["seq_len"].max()
        at = g[g["seq_len"] == T].set_index("impl")["peak_mem_bytes"]
        parts = [f"{scan} {mebibytes(at[scan])} against {loop}'s {mebibytes(at[loop])} ({_more(at[scan], at[loop])})"
                 for scan, loop in zip(SCANS, LOOPS, strict=True) if scan in at and loop in at]
        if parts:
            out.append(f"Peak memory of a train step at T = {int(T)}, h{int(hidden)} on {device_text(label)}: "
                       + "; ".join(parts) + f" (Feng et al. report about {PAPER_MEMORY:.0%} more for the parallel "
                       "mode, on a T4 GPU).")
    return out


def sentences(sp: pd.DataFrame | None, memory: pd.DataFrame | None = None) -> list[str]:
    """The findings' lines: each crossover of KEY_PAIRS and at equal parameters, train first, then the memory at the
    largest T (crossovers.csv has every pair's)."""
    cx = crossovers(sp)
    lines = []
    if cx is not None:
        key = [(f, sl) in KEY_PAIRS or b == "equal parameters"
               for f, sl, b in zip(cx["fast"], cx["slow"], cx["basis"], strict=True)]
        for label, g in cx[key].groupby("device_label", sort=False):
            for phase in ("train", "forward"):
                rows = g[g["phase"] == phase]
                if not rows.empty:
                    lines.append(f"Parallel scan against T ({phase}, {device_text(label)}): "
                                 + "; ".join(crossover_text(r) for _, r in rows.iterrows()) + ".")
    return lines + memory_sentence(memory)


def paper_claim(sp: pd.DataFrame | None) -> tuple[str, str]:
    """(verdict, evidence) of the paper's claim by PAPER_RULE; the verdict words are claims.VERDICTS'."""
    if sp is None:
        return "not measured", "needs mingru-scan and torch-gru timed in train at the same sizes"
    g = sp[(sp["fast"] == "mingru-scan") & (sp["slow"] == "torch-gru") & (sp["phase"] == "train")
           & (sp["basis"] == "equal hidden")]
    if g.empty:
        return "not measured", "needs mingru-scan and torch-gru timed in train at the same sizes"
    parts, gpu = [], []
    for label, d in g.groupby("device_label", sort=False):
        T = min(d["seq_len"].unique(), key=lambda v: (abs(v - PAPER_T), v))
        for _, r in d[d["seq_len"] == T].iterrows():
            kind = ("a GPU factor" if str(label).startswith("cuda") else
                    "a CPU factor, not comparable with the paper's GPU")
            parts.append(f"{device_text(label)}: {compact(r['speedup'])}x [{compact(r['lo'])}, {compact(r['hi'])}] at "
                         f"T = {int(T)}, b{int(r['batch'])} h{int(r['hidden'])} ({kind}; the paper: "
                         f"{PAPER_FACTOR:g}x at T = {PAPER_T})")
            if str(label).startswith("cuda"):
                gpu.append((r["lo"], r["hi"]))
    if not gpu:
        return "not measured", "no CUDA device ran it; " + "; ".join(parts)
    if all(lo >= PAPER_FACTOR / 2 for lo, _ in gpu):
        verdict = "supported"
    elif all(hi < PAPER_FACTOR / 10 for _, hi in gpu):
        verdict = "contradicted"
    else:
        verdict = "partly supported"
    return verdict, "; ".join(parts)


def crossover_table(sp: pd.DataFrame | None) -> pd.DataFrame | None:
    """crossovers() as a flat table (crossovers.csv): each T's verdict in one column."""
    cx = crossovers(sp)
    if cx is None:
        return None
    return cx.assign(verdicts=["; ".join(f"T={T} {v}" for T, v in zip(r["Ts"], r["verdicts"], strict=True))
                               for _, r in cx.iterrows()]).drop(columns=["Ts"])


def closed_form_rows(decay: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each min cell's [[gradients]] case: the decay factor of ||dL/dx_t|| (measured) beside that of the closed form
    ||dL/dh_t|| = ||g prod a / B|| (wrt = "gates"), each the mean over seeds with its 95% t interval, and their vanish
    distances."""
    d = ok_rows(decay)
    if d is None or "gates" not in set(d["wrt"]):
        return None
    d = d[(d["task"].fillna("") == "")]
    keys = ["device", "dtype", "impl", "cell", "forget_bias", "hidden", "seq_len", "batch", "seeds"]
    x = d[d["wrt"] == "x"].set_index(keys)
    c = d[d["wrt"] == "gates"].set_index(keys)
    cols = ["decay_factor", "decay_ci_low", "decay_ci_high", "vanish_distance"]
    both = x[cols].merge(c[cols], left_index=True, right_index=True, suffixes=("", "_closed")).reset_index()
    return both if not both.empty else None


def closed_form_sentence(rows: pd.DataFrame | None) -> list[str]:
    """The min cells' measured decay beside the closed form, in one line."""
    if rows is None or rows.empty:
        return []
    parts = [f"{r['impl']}{'' if pd.isna(r['forget_bias']) or r['forget_bias'] == '' else f' fb {r.forget_bias:g}'} "
             f"{compact(r['decay_factor'])} (closed form {compact(r['decay_factor_closed'])})"
             for _, r in rows.iterrows()]
    return ["A min cell's gradient is a product of its a gates (f' for minLSTM, 1 - z for minGRU), with no recurrent "
            "matrix; per-step decay of ||dL/dx_t|| at initialisation, measured beside the closed form of ||dL/dh_t||: "
            + ", ".join(parts) + "."]
