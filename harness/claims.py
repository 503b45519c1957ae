"""The tutorial's claims: each one's rule, its evidence, and its verdict, computed from a run's tables.

    cl = claims(runs.tables, cost_ratios(runs.tables["timings"]))

Each claim is a function of the tidy tables (harness/tables.py) that returns a
`Claim`: the claim as stated, a verdict (supported, contradicted, not
measured), the evidence in numbers, and the rule that turned the evidence into
the verdict, printed beside it in the report. The derived tables a claim needs
(`cost_ratios`, `final_losses`) are here too; harness/plots.py draws them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import intervals
from harness.gradients import VANISH_RATIO

LEARNED = 0.5     # claim (c): a model "learned" the task when its final held-out loss < LEARNED * baseline
LIBRARY_KERNELS = ("torch-lstm", "onednn-lstm", "cudnn-lstm")   # claim (f)'s "library kernels"
SCRATCH_OPTIMISED = ("fused-lstm", "bptt-lstm")                 # shown beside them in (f), not part of the rule


# -- derived tables ----------------------------------------------------------------------------
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
    if timings is None:
        return None
    t = timings[(timings["status"] == "ok")]
    if t.empty:
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


def final_losses(training: pd.DataFrame | None) -> pd.DataFrame | None:
    if training is None:
        return None
    t = training[training["status"] == "ok"].dropna(subset=["eval_loss"])
    if t.empty:
        return None
    keys = ["run_id", "task", "impl", "cell", "hidden", "seq_len", "forget_bias", "seed", "lr", "batch"]
    keys = [k for k in keys if k in t]
    t = t.assign(forget_bias=t["forget_bias"].fillna(-1))
    last = t.sort_values("step").groupby(keys, as_index=False, dropna=False).last()
    return last.assign(learned=last["eval_loss"] < LEARNED * last["baseline_loss"])



# -- the claims ------------------------------------------------------------------------------
@dataclass
class Claim:
    key: str
    claim: str
    verdict: str          # supported | contradicted | no measurable difference | not measured
    evidence: str
    rule: str


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def claim_a(decay: pd.DataFrame | None) -> Claim:
    rule = ("supported when most RNN configurations (gradients sections, wrt x) have a decay interval entirely "
            f"below 1 and fall below {VANISH_RATIO:g} of the distance-0 norm within T; else contradicted")
    text = "(a) A vanilla RNN's gradient vanishes with distance"
    d = None if decay is None else decay[(decay["cell"] == "rnn") & (decay["wrt"] == "x") &
                                         (decay["task"].fillna("") == "") & (decay["status"] == "ok")]
    if d is None or d.empty:
        return Claim("a", text, "not measured", "no RNN gradient configurations in this run", rule)
    upper = d["decay_ci_high"].fillna(d["decay_factor"])
    vanish = (upper < 1) & d["vanishes_within_T"].astype(str).eq("True")
    n, k = len(d), int(vanish.sum())
    ev = (f"{k} of {n} RNN configurations vanish; per-step factor median {_fmt(d['decay_factor'].median())} "
          f"(range {_fmt(d['decay_factor'].min())}–{_fmt(d['decay_factor'].max())}); "
          f"below {VANISH_RATIO:g} by distance {_fmt(d['vanish_distance'].median())} (median)")
    return Claim("a", text, "supported" if k > n / 2 else "contradicted", ev, rule)


def claim_b(decay: pd.DataFrame | None) -> Claim:
    rule = (f"supported when most LSTM configurations keep their gradient above {VANISH_RATIO:g} of its distance-0 "
            "value over the whole sequence; else contradicted. Evidence compares with RNNs of the same size and init")
    text = "(b) The LSTM's memory cell and gates keep long-range gradients"
    d = None if decay is None else decay[(decay["wrt"] == "x") & (decay["task"].fillna("") == "") &
                                         (decay["status"] == "ok")]
    if d is None or d[d["cell"] == "lstm"].empty:
        return Claim("b", text, "not measured", "no LSTM gradient configurations in this run", rule)
    lstm, rnn = d[d["cell"] == "lstm"], d[d["cell"] == "rnn"]
    kept = ~lstm["vanishes_within_T"].astype(str).eq("True")
    n, k = len(lstm), int(kept.sum())
    ev = f"{k} of {n} LSTM configurations keep the gradient over T; per-step factor median " \
         f"{_fmt(lstm['decay_factor'].median())}"
    by_fb = lstm.groupby("forget_bias")["decay_factor"].median()
    if len(by_fb) > 1:
        ev += " (" + ", ".join(f"forget_bias {fb:g}: {_fmt(v)}" for fb, v in by_fb.items()) + ")"
    if not rnn.empty:
        ev += f" vs RNN {_fmt(rnn['decay_factor'].median())}"
        far = lstm["vanish_distance"].fillna(lstm["seq_len"]).median()
        ev += f"; LSTM reaches {VANISH_RATIO:g} at distance {_fmt(far)} (median; T where never) vs RNN " \
              f"{_fmt(rnn['vanish_distance'].fillna(rnn['seq_len']).median())}"
    return Claim("b", text, "supported" if k > n / 2 else "contradicted", ev, rule)


def claim_c(training: pd.DataFrame | None) -> Claim:
    rule = (f"a model learned a task when its final held-out loss is below {LEARNED} x the baseline. Supported "
            "when, for some task and seq_len, an LSTM learned it and no RNN did; contradicted when an RNN learned "
            "every one an LSTM learned, or no LSTM learned any")
    text = "(c) An LSTM learns a long-range dependency that an RNN cannot"
    last = final_losses(training)
    if last is None or not {"lstm", "rnn"} <= set(last["cell"]):
        return Claim("c", text, "not measured", "needs task runs of both an LSTM and an RNN", rule)
    parts, wins = [], 0
    for (task, T), g in last.groupby(["task", "seq_len"]):
        lstm, rnn = g[g["cell"] == "lstm"], g[g["cell"] == "rnn"]
        if lstm.empty or rnn.empty:
            continue
        base = g["baseline_loss"].iloc[0]
        lw, rw = bool(lstm["learned"].any()), bool(rnn["learned"].any())
        wins += lw and not rw
        parts.append(f"{task} T={int(T)}: best LSTM {_fmt(lstm['eval_loss'].min() / base)}x baseline, "
                     f"best RNN {_fmt(rnn['eval_loss'].min() / base)}x")
    if not parts:
        return Claim("c", text, "not measured", "no task and seq_len with both an LSTM and an RNN", rule)
    return Claim("c", text, "supported" if wins else "contradicted", "; ".join(parts), rule)


def claim_d(ratios: pd.DataFrame | None) -> Claim:
    rule = "supported when every LSTM/RNN parameter ratio at equal (input, hidden) is exactly 4; else contradicted"
    text = "(d) An LSTM has 4x the recurrent parameters of an RNN"
    r = None if ratios is None else ratios[ratios["kind"] == "params"]
    if r is None or r.empty:
        return Claim("d", text, "not measured", "needs throughput rows of an LSTM and an RNN at equal sizes", rule)
    vals = sorted(set(r["ratio"].round(12)))
    exact = all(v == 4.0 for v in vals)
    sizes = sorted(set(zip(r["input"].astype(int), r["hidden"].astype(int), strict=True)))
    ev = f"ratio {', '.join(_fmt(v) for v in vals)} at (input, hidden) in {sizes[:6]}" + (" ..." if len(sizes) > 6
                                                                                          else "")
    return Claim("d", text, "supported" if exact else "contradicted", ev, rule)


def _tally(lo: pd.Series, hi: pd.Series) -> dict[str, int]:
    """How many intervals lie wholly above 1, wholly below, or hold 1 (intervals.difference)."""
    words = [intervals.difference(a, b, above="above", below="below") for a, b in zip(lo, hi, strict=True)]
    return {w: words.count(w) for w in ("above", "below", intervals.NO_DIFFERENCE)}


def claim_e(ratios: pd.DataFrame | None) -> Claim:
    rule = ("each LSTM/RNN train-step time ratio at equal sizes on the same backend has a 95% bootstrap interval "
            "over rounds; a size is measurably slower where it lies above 1, faster where below. Supported when "
            "most sizes are measurably slower, contradicted when most are measurably faster, else no measurable "
            "difference")
    text = "(e) An LSTM trains more slowly than an RNN (and by how much)"
    r = None if ratios is None else ratios[ratios["kind"] == "time"]
    if r is None or r.empty:
        return Claim("e", text, "not measured", "needs train-phase rows of an LSTM and an RNN on one backend", rule)
    n, tally = len(r), _tally(r["ratio_ci_low"], r["ratio_ci_high"])
    med = r["ratio"].median()
    per = r.groupby("pair")["ratio"].median()
    ev = (f"measurably slower at {tally['above']} of {n} sizes, faster at {tally['below']}, no measurable difference "
          f"at {tally[intervals.NO_DIFFERENCE]}; median {_fmt(med)}x (range {_fmt(r['ratio'].min())}–"
          f"{_fmt(r['ratio'].max())}); " + ", ".join(f"{p}: {_fmt(v)}x" for p, v in per.items()))
    verdict = ("supported" if tally["above"] > n / 2 else "contradicted" if tally["below"] > n / 2
               else intervals.NO_DIFFERENCE)
    return Claim("e", text, verdict, ev, rule)


def claim_f(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> Claim:
    rule = ("speed-up = time(scratch-lstm) / time(kernel) at equal sizes, with a 95% bootstrap interval over rounds; "
            "a kernel is measurably faster at a size where the interval lies above 1, slower where below. Supported "
            "when every library kernel measured is measurably faster at most of its sizes, contradicted when one is "
            "measurably slower at most of its sizes, else no measurable difference")
    text = "(f) nn.LSTM and the vendor kernels are faster than the scratch LSTM (by how much)"
    t = None if timings is None else timings[timings["status"] == "ok"]
    if t is None or "scratch-lstm" not in set(t["impl"]):
        return Claim("f", text, "not measured", "needs scratch-lstm timings", rule)
    times = round_times(rounds)
    keys = ["device_label", "dtype", "phase", "hidden", "input", "batch", "seq_len"]
    scratch = t[t["impl"] == "scratch-lstm"].drop_duplicates(subset=keys, keep="last")[keys + list(PAIR_COLUMNS)]
    parts, kernels = [], []
    for kernel in LIBRARY_KERNELS + SCRATCH_OPTIMISED:
        k = t[t["impl"] == kernel].merge(scratch, on=keys, suffixes=("", "_scratch"))
        if k.empty:
            continue
        sp = pd.DataFrame([pair_ratio(times, {c: row[f"{c}_scratch"] for c in PAIR_COLUMNS}, row)
                           for _, row in k.iterrows()], columns=["ratio", "lo", "hi"], index=k.index)
        tally = _tally(sp["lo"], sp["hi"])
        if kernel in LIBRARY_KERNELS:                              # from scratch: evidence, not the claim
            kernels.append((tally, len(sp)))
        by_phase = ", ".join(f"{ph} {_fmt(v)}x" for ph, v in sp["ratio"].groupby(k["phase"]).median().items())
        parts.append(f"{kernel}: median {_fmt(sp['ratio'].median())}x ({by_phase}; range {_fmt(sp['ratio'].min())}–"
                     f"{_fmt(sp['ratio'].max())}), measurably faster at {tally['above']} of {len(sp)} sizes, "
                     f"slower at {tally['below']}")
    if not kernels:
        return Claim("f", text, "not measured", "needs a library kernel timed beside scratch-lstm", rule)
    if all(tally["above"] > n / 2 for tally, n in kernels):
        verdict = "supported"
    elif any(tally["below"] > n / 2 for tally, n in kernels):
        verdict = "contradicted"
    else:
        verdict = intervals.NO_DIFFERENCE
    return Claim("f", text, verdict, "; ".join(parts), rule)


def claims(t: dict[str, pd.DataFrame | None], ratios: pd.DataFrame | None) -> list[Claim]:
    """Every claim, (a) to (f), from the tables (tables.Runs.tables) and cost_ratios."""
    return [claim_a(t["decay"]), claim_b(t["decay"]), claim_c(t["training"]), claim_d(ratios), claim_e(ratios),
            claim_f(t["timings"], t.get("rounds"))]


