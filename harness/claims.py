"""The tutorial's claims: each one's rule, its evidence, and its verdict, computed from a run's tables.

    cl = claims(runs.tables, cost_ratios(runs.tables["timings"]))

Each claim is a function of the tidy tables (harness/tables.py) that returns a
`Claim`: the claim as tested, a verdict (VERDICTS: supported, partly supported,
contradicted, inconclusive, not measured), the evidence in numbers, and the rule
that turned the evidence into the verdict, printed beside it in the report.
tutorial.STATEMENTS holds each claim as the tutorial states it, in its own
words (Chinese) and in English, and what is measured to test it. The derived tables a claim needs
(`cost_ratios`, `final_losses`) are here too; harness/plots.py draws them.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness import intervals, learning
from harness.gradients import VANISH_RATIO
from harness.tables import PAIR_COLUMNS, pair_ratio, round_times
from harness.tutorial import STATEMENTS, Statement

LEARNED = 0.5     # claim (c): a model "learned" the task when its final held-out loss < LEARNED * baseline
LIBRARY_KERNELS = ("torch-lstm", "onednn-lstm", "cudnn-lstm")   # claim (f)'s "library kernels"
SCRATCH_OPTIMISED = ("fused-lstm", "bptt-lstm")                 # shown beside them in (f), not part of the rule


# -- derived tables ----------------------------------------------------------------------------
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
    """Each [[task]] case's last evaluation (learning.final_rows), and whether it learned (LEARNED)."""
    last = learning.final_rows(training)
    if last is None:
        return None
    return last.assign(learned=last["eval_loss"] < LEARNED * last["baseline_loss"])



# -- the claims ------------------------------------------------------------------------------
SUPPORTED, PARTLY, CONTRADICTED = "supported", "partly supported", "contradicted"
INCONCLUSIVE, NOT_MEASURED = "inconclusive", "not measured"
VERDICTS = (SUPPORTED, PARTLY, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)
# inconclusive: the evidence's intervals straddle the rule's decision point


@dataclass
class Claim:
    key: str
    claim: str
    verdict: str          # one of VERDICTS
    evidence: str
    rule: str

    @property
    def statement(self) -> Statement:
        return STATEMENTS[self.key]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def gradient_rows(decay: pd.DataFrame | None, cell: str | None = None) -> pd.DataFrame | None:
    """The ok decay fits of the [[gradients]] sections (not task runs), wrt x; of one cell when given."""
    if decay is None:
        return None
    d = decay[(decay["wrt"] == "x") & (decay["task"].fillna("") == "") & (decay["status"] == "ok")]
    return d if cell is None else d[d["cell"] == cell]


CONFIG = ["cell", "hidden", "seq_len", "init", "forget_bias", "nonlinearity", "spectral_radius", "layers", "device",
          "dtype"]


def configurations(d: pd.DataFrame) -> pd.DataFrame:
    """Decay fits by configuration: the implementations of one cell compute one function
    (tests/test_equivalence.py), so their rows are one configuration, its interval their envelope
    (lo, hi), its factor and vanish_distance their medians."""
    keys = [k for k in CONFIG if k in d]
    d = d.assign(lo=d["decay_ci_low"].fillna(d["decay_factor"]), hi=d["decay_ci_high"].fillna(d["decay_factor"]))
    return d.groupby(keys, as_index=False, dropna=False).agg(
        lo=("lo", "min"), hi=("hi", "max"), decay_factor=("decay_factor", "median"),
        vanish_distance=("vanish_distance", "median"))


def claim_a(decay: pd.DataFrame | None) -> Claim:
    rule = ("per RNN configuration (gradients sections, wrt x; implementations of one configuration pooled): "
            "vanishing where its decay interval lies wholly below 1, exploding where wholly above. Supported when "
            "both are seen; partly supported when only one half is "
            f"(which is named); contradicted when every interval lies within {VANISH_RATIO:g}^(±1/T) of 1 (neither "
            f"below {VANISH_RATIO:g} nor above {1 / VANISH_RATIO:g} over the sequence); else inconclusive")
    text = STATEMENTS["a"].claim
    d = gradient_rows(decay, "rnn")
    if d is None or d.empty:
        return Claim("a", text, NOT_MEASURED, "no RNN gradient configurations in this run", rule)
    d = configurations(d)
    lo, hi = d["lo"], d["hi"]
    n, vanish, explode = len(d), int((hi < 1).sum()), int((lo > 1).sum())
    bound = VANISH_RATIO ** (1 / d["seq_len"])
    steady = bool(((lo >= bound) & (hi <= 1 / bound)).all())
    ev = (f"{vanish} of {n} RNN configurations vanish, {explode} explode, {n - vanish - explode} hold 1 in their "
          f"interval; per-step factor median {_fmt(d['decay_factor'].median())} (range "
          f"{_fmt(d['decay_factor'].min())}–{_fmt(d['decay_factor'].max())})")
    if d["vanish_distance"].notna().any():
        ev += f"; below {VANISH_RATIO:g} by distance {_fmt(d['vanish_distance'].median())} (median)"
    if vanish and explode:
        verdict = SUPPORTED
    elif vanish or explode:
        verdict = PARTLY
        ev += "; " + ("only vanishing was seen: no configuration here reaches the exploding regime" if vanish
                      else "only exploding was seen: no configuration here vanishes")
    else:
        verdict = CONTRADICTED if steady else INCONCLUSIVE
    return Claim("a", text, verdict, ev, rule)


def far_end_gradients(gradients: pd.DataFrame | None) -> pd.DataFrame | None:
    """Task runs: ||dL/dx|| at the far end over its value at distance 0, per model, at each recorded train_step."""
    if gradients is None:
        return None
    g = gradients[(gradients["status"] == "ok") & (gradients["wrt"] == "x") & (gradients["task"].fillna("") != "")]
    if g.empty:
        return None
    keys = ["task", "impl", "cell", "hidden", "seq_len", "forget_bias", "train_step"]
    g = g.assign(forget_bias=g["forget_bias"].fillna(-1))
    out = []
    for k, c in g.groupby(keys):
        c = c.groupby("distance")["grad_norm"].median()
        if 0 in c.index and c.loc[0] > 0:
            out.append({**dict(zip(keys, k, strict=True)), "far_distance": int(c.index.max()),
                        "far_ratio": float(c.iloc[-1] / c.loc[0])})
    return pd.DataFrame(out) if out else None


def _far_end_evidence(far: pd.DataFrame | None) -> str:
    if far is None:
        return ""
    parts = []
    for (task, T), g in far.groupby(["task", "seq_len"]):
        steps = sorted(g["train_step"].unique())
        first, last = steps[0], steps[-1]
        words = []
        for cell in ("lstm", "rnn"):
            c = g[g["cell"] == cell]
            if c.empty:
                continue
            a = c[c["train_step"] == first]["far_ratio"].median()
            b = c[c["train_step"] == last]["far_ratio"].median()
            words.append(f"{cell.upper()} {_fmt(a)} -> {_fmt(b)}")
        parts.append(f"{task} T={int(T)}, gradient at distance {int(g['far_distance'].max())} over distance 0, "
                     f"step {int(first)} -> {int(last)}: " + ", ".join(words))
    return "; ".join(parts)


def claim_b(decay: pd.DataFrame | None, gradients: pd.DataFrame | None = None) -> Claim:
    rule = ("comparative: each LSTM configuration (implementations pooled) is set beside the RNNs of the same "
            "hidden size, sequence length, init, device and dtype. It eases vanishing where its decay interval lies "
            "wholly above every such RNN's, "
            "does worse where wholly below. Supported when most LSTM configurations ease it and none does worse; "
            "contradicted when most do worse; partly supported when some ease it; else inconclusive")
    text = STATEMENTS["b"].claim
    d = gradient_rows(decay)
    if d is None or d[d["cell"] == "lstm"].empty or d[d["cell"] == "rnn"].empty:
        return Claim("b", text, NOT_MEASURED, "needs LSTM and RNN gradient configurations of the same sizes", rule)
    keys = [k for k in ("hidden", "seq_len", "init", "device", "dtype") if k in d]
    d = configurations(d)
    rnn = d[d["cell"] == "rnn"].groupby(keys).agg(rnn_lo=("lo", "min"), rnn_hi=("hi", "max"),
                                                  rnn_factor=("decay_factor", "median"),
                                                  rnn_vanish=("vanish_distance", "median"))
    lstm = d[d["cell"] == "lstm"].join(rnn, on=keys, how="inner")
    if lstm.empty:
        return Claim("b", text, NOT_MEASURED, "no LSTM configuration has an RNN of the same sizes and init", rule)
    eases, worse = lstm["lo"] > lstm["rnn_hi"], lstm["hi"] < lstm["rnn_lo"]
    n, k, w = len(lstm), int(eases.sum()), int(worse.sum())
    parts = [f"{k} of {n} LSTM configurations decay measurably slower than the RNN beside them, {w} faster"]
    for (init, fb), g in lstm.groupby(["init", "forget_bias"], dropna=False):
        never = g["vanish_distance"].isna().all()
        parts.append(f"init {init}, forget_bias {fb:g}: LSTM factor {_fmt(g['decay_factor'].median())} vs RNN "
                     f"{_fmt(g['rnn_factor'].median())}; below {VANISH_RATIO:g} at distance "
                     + (f"> T={int(g['seq_len'].max())}" if never else _fmt(g["vanish_distance"].median()))
                     + " vs RNN " + (_fmt(g["rnn_vanish"].median()) if g["rnn_vanish"].notna().any()
                                     else f"> T={int(g['seq_len'].max())}"))
    if far := _far_end_evidence(far_end_gradients(gradients)):
        parts.append(far)
    if k > n / 2 and w == 0:
        verdict = SUPPORTED
    elif w > n / 2:
        verdict = CONTRADICTED
    elif k:
        verdict = PARTLY
    else:
        verdict = INCONCLUSIVE
    return Claim("b", text, verdict, "; ".join(parts), rule)


def claim_c(training: pd.DataFrame | None) -> Claim:
    rule = (f"a model learned a task when its final held-out loss is below {LEARNED} x the baseline. Supported "
            "when, for some task and seq_len, an LSTM learned it and no RNN did; contradicted when an RNN learned "
            "every one an LSTM learned, or no LSTM learned any")
    text = STATEMENTS["c"].claim
    last = final_losses(training)
    if last is None or not {"lstm", "rnn"} <= set(last["cell"]):
        return Claim("c", text, NOT_MEASURED, "needs task runs of both an LSTM and an RNN", rule)
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
        return Claim("c", text, NOT_MEASURED, "no task and seq_len with both an LSTM and an RNN", rule)
    return Claim("c", text, SUPPORTED if wins else CONTRADICTED, "; ".join(parts), rule)


def claim_d(ratios: pd.DataFrame | None) -> Claim:
    rule = ("supported when every LSTM/RNN parameter ratio at equal (input, hidden) is above 1 (the tutorial's "
            "'more'); else contradicted. The evidence says whether it is exactly 4")
    text = STATEMENTS["d"].claim
    r = None if ratios is None else ratios[ratios["kind"] == "params"]
    if r is None or r.empty:
        return Claim("d", text, NOT_MEASURED, "needs throughput rows of an LSTM and an RNN at equal sizes", rule)
    vals = sorted(set(r["ratio"].round(12)))
    sizes = sorted(set(zip(r["input"].astype(int), r["hidden"].astype(int), strict=True)))
    ev = (f"ratio {', '.join(_fmt(v) for v in vals)} at (input, hidden) in {sizes[:6]}"
          + (" ..." if len(sizes) > 6 else "") + ("; exactly 4 at every size" if vals == [4.0] else ""))
    return Claim("d", text, SUPPORTED if all(v > 1 for v in vals) else CONTRADICTED, ev, rule)


def _tally(lo: pd.Series, hi: pd.Series) -> dict[str, int]:
    """How many intervals lie wholly above 1, wholly below, or hold 1 (intervals.difference)."""
    words = [intervals.difference(a, b, above="above", below="below") for a, b in zip(lo, hi, strict=True)]
    return {w: words.count(w) for w in ("above", "below", intervals.NO_DIFFERENCE)}


def claim_e(ratios: pd.DataFrame | None) -> Claim:
    rule = ("each LSTM/RNN train-step time ratio at equal sizes on the same backend has a 95% bootstrap interval "
            "over rounds; a size is measurably slower where it lies above 1, faster where below. Supported when "
            "most sizes are measurably slower, contradicted when most are measurably faster, partly supported when "
            "more are measurably slower than faster, else inconclusive")
    text = STATEMENTS["e"].claim
    r = None if ratios is None else ratios[ratios["kind"] == "time"]
    if r is None or r.empty:
        return Claim("e", text, NOT_MEASURED, "needs train-phase rows of an LSTM and an RNN on one backend", rule)
    n, tally = len(r), _tally(r["ratio_ci_low"], r["ratio_ci_high"])
    med = r["ratio"].median()
    per = r.groupby("pair")["ratio"].median()
    ev = (f"measurably slower at {tally['above']} of {n} sizes, faster at {tally['below']}, no measurable difference "
          f"at {tally[intervals.NO_DIFFERENCE]}; median {_fmt(med)}x (range {_fmt(r['ratio'].min())}–"
          f"{_fmt(r['ratio'].max())}); " + ", ".join(f"{p}: {_fmt(v)}x" for p, v in per.items()))
    verdict = (SUPPORTED if tally["above"] > n / 2 else CONTRADICTED if tally["below"] > n / 2
               else PARTLY if tally["above"] > tally["below"] else INCONCLUSIVE)
    return Claim("e", text, verdict, ev, rule)


def claim_f(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> Claim:
    rule = ("speed-up = time(scratch-lstm) / time(kernel) at equal sizes, with a 95% bootstrap interval over rounds; "
            "a kernel is measurably faster at a size where the interval lies above 1, slower where below. Supported "
            "when every library kernel measured is measurably faster at most of its sizes, contradicted when every one "
            "is measurably slower at most of its sizes, partly supported when some are faster at most of their "
            "sizes, else inconclusive")
    text = STATEMENTS["f"].claim
    t = None if timings is None else timings[timings["status"] == "ok"]
    if t is None or "scratch-lstm" not in set(t["impl"]):
        return Claim("f", text, NOT_MEASURED, "needs scratch-lstm timings", rule)
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
        return Claim("f", text, NOT_MEASURED, "needs a library kernel timed beside scratch-lstm", rule)
    faster = [tally["above"] > n / 2 for tally, n in kernels]
    if all(faster):
        verdict = SUPPORTED
    elif all(tally["below"] > n / 2 for tally, n in kernels):
        verdict = CONTRADICTED
    elif any(faster):
        verdict = PARTLY
    else:
        verdict = INCONCLUSIVE
    return Claim("f", text, verdict, "; ".join(parts), rule)


def claims(t: dict[str, pd.DataFrame | None], ratios: pd.DataFrame | None) -> list[Claim]:
    """Every claim, (a) to (f), from the tables (tables.Runs.tables) and cost_ratios."""
    return [claim_a(t["decay"]), claim_b(t["decay"], t.get("gradients")), claim_c(t["training"]), claim_d(ratios),
            claim_e(ratios), claim_f(t["timings"], t.get("rounds"))]


