"""The tutorial's claims: each one's rule, its evidence, and its verdict, computed from a run's tables.

    cl = claims(runs.tables, cost_ratios(runs.tables["timings"], runs.tables["rounds"]))

Each claim is a function of the tidy tables (tables.py) and the derived tables it
needs (ratios.py, learning.py) that returns a `Claim`: the claim as tested, a verdict
(VERDICTS: supported, partly supported, contradicted, inconclusive, not measured),
the evidence in numbers, and the rule that turned the evidence into the verdict,
printed beside it in the report. quotes.STATEMENTS holds each claim as the
tutorial states it, in its own words (Chinese) and in English, and what is
measured to test it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.learning import (
    SOLVED_RULE,
    configurations,
    far_end_gradients,
    gradient_rows,
    solved_text,
    success_rates,
)
from harness.analysis.parallel import PAPER_RULE, paper_claim, speedups
from harness.analysis.quotes import STATEMENTS, Statement
from harness.analysis.ratios import PAIR_COLUMNS, pair_ratio, round_times
from harness.analysis.tables import ok_rows
from harness.core import intervals
from harness.core.thresholds import VANISH_RATIO
from harness.core.units import compact

LIBRARY_KERNELS = ("torch-lstm", "onednn-lstm", "cudnn-lstm")   # claim (f)'s "library kernels"
SCRATCH_OPTIMISED = ("fused-lstm", "bptt-lstm")                 # shown beside them in (f), not part of the rule


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
          f"interval; per-step factor median {compact(d['decay_factor'].median())} (range "
          f"{compact(d['decay_factor'].min())}–{compact(d['decay_factor'].max())})")
    if d["vanish_distance"].notna().any():
        ev += f"; below {VANISH_RATIO:g} by distance {compact(d['vanish_distance'].median())} (median)"
    if vanish and explode:
        verdict = SUPPORTED
    elif vanish or explode:
        verdict = PARTLY
        ev += "; " + ("only vanishing was seen: no configuration here reaches the exploding regime" if vanish
                      else "only exploding was seen: no configuration here vanishes")
    else:
        verdict = CONTRADICTED if steady else INCONCLUSIVE
    return Claim("a", text, verdict, ev, rule)


def _far_end_evidence(far: pd.DataFrame | None) -> str:
    if far is None:
        return ""
    parts = []
    case = [k for k in ("impl", "nonlinearity", "init", "forget_bias", "case_id") if k in far]
    for (task, T), g in far.groupby(["task", "seq_len"]):
        words = []
        for who, name in (("lstm", "LSTM"), ("tanh rnn", "RNN")):
            c = g[g["role"] == who]
            if c.empty:
                continue
            ends = c.sort_values("train_step").groupby(case, dropna=False)["far_ratio"]   # each case's own start, end
            words.append(f"{name} {compact(ends.first().median())} -> {compact(ends.last().median())}")
        if words:
            parts.append(f"{task} T={int(T)}, gradient at distance {int(g['far_distance'].max())} over distance 0, "
                         f"start -> end of training (step {int(g['train_step'].max())}, or where early_stop ended "
                         "it): " + ", ".join(words))
    return "; ".join(parts)


def _rhos(g: pd.DataFrame) -> str:
    """'rho 0.5, 0.8' (or the configurations' count where none has a spectral radius)."""
    r = pd.to_numeric(g["spectral_radius"], errors="coerce").dropna() if "spectral_radius" in g else pd.Series([])
    if len(r):
        return "rho " + ", ".join(f"{v:g}" for v in sorted(r.unique()))
    return f"{len(g)} configuration{'s' if len(g) != 1 else ''}"


def _span(values: pd.Series) -> str:
    lo, hi = compact(values.min()), compact(values.max())
    return lo if lo == hi else f"{lo}–{hi}"


B_KEYS = ["hidden", "seq_len", "init", "spectral_radius", "layers", "device", "dtype"]   # what a pair shares


def claim_b(decay: pd.DataFrame | None, gradients: pd.DataFrame | None = None) -> Claim:
    rule = ("like with like: each LSTM configuration (implementations pooled) beside the tanh RNN of the same hidden "
            "size, sequence length, init, spectral radius, layers, device and dtype. A pair whose RNN interval lies "
            "wholly above 1 (it explodes) is no vanishing comparison and is counted apart. In the others the LSTM "
            "eases vanishing where its decay interval lies wholly above the RNN's, does worse where wholly below. "
            "Supported when most comparable pairs ease it and none does worse; contradicted when most do worse; "
            "partly supported when some ease it; else inconclusive. relu and linear RNNs are reported beside the "
            "tanh RNN, never pooled with it")
    text = STATEMENTS["b"].claim
    d = gradient_rows(decay)
    if d is None or d[d["cell"] == "lstm"].empty or d[d["cell"] == "rnn"].empty:
        return Claim("b", text, NOT_MEASURED, "needs LSTM and RNN gradient configurations of the same sizes", rule)
    conf = configurations(d)
    keys = [k for k in B_KEYS if k in conf]
    conf[keys] = conf[keys].astype(str)                     # NaN (no spectral radius) pairs with NaN
    nonlin = (conf["nonlinearity"].fillna("tanh").replace("", "tanh") if "nonlinearity" in conf
              else pd.Series("tanh", index=conf.index))
    rnn, lstm = conf[(conf["cell"] == "rnn") & (nonlin == "tanh")], conf[conf["cell"] == "lstm"]
    pairs = lstm.merge(rnn, on=keys, suffixes=("", "_rnn"))
    if pairs.empty:
        return Claim("b", text, NOT_MEASURED, "no LSTM configuration has a tanh RNN of the same sizes, init and "
                     "spectral radius", rule)
    explodes = pairs["lo_rnn"] > 1
    comp = pairs[~explodes]
    eases, worse = comp["lo"] > comp["hi_rnn"], comp["hi"] < comp["lo_rnn"]
    n, k, w = len(comp), int(eases.sum()), int(worse.sum())
    parts = [f"{k} of {n} comparable LSTM/tanh-RNN pairs: the LSTM decays measurably slower, {w} faster"
             + (f"; {int(explodes.sum())} pairs set apart, where the tanh RNN explodes" if explodes.any() else "")]
    for fb, g in pairs.groupby("forget_bias", dropna=False):
        c = comp[comp["forget_bias"].astype(str) == str(fb)] if "forget_bias" in comp else comp
        words = []
        for label, mask in (("slower", c["lo"] > c["hi_rnn"]), ("no measurable difference",
                                                                 (c["lo"] <= c["hi_rnn"]) & (c["hi"] >= c["lo_rnn"])),
                            ("faster", c["hi"] < c["lo_rnn"])):
            if mask.any():
                m = c[mask]
                words.append(f"{label} at {_rhos(m)} ({_span(m['decay_factor'])} against "
                             f"{_span(m['decay_factor_rnn'])})")
        x = g[g["lo_rnn"] > 1]
        if not x.empty:
            words.append(f"at {_rhos(x)} the tanh RNN explodes ({_span(x['decay_factor_rnn'])}) and this LSTM holds "
                         f"{_span(x['decay_factor'])}")
        if not c.empty:
            T = int(float(c["seq_len"].max()))
            v, vr = c["vanish_distance"], c["vanish_distance_rnn"]
            words.append(f"below {VANISH_RATIO:g} at distance " + (compact(v.median()) if v.notna().any() else
                                                                  f"> T={T}") + " vs RNN "
                         + (compact(vr.median()) if vr.notna().any() else f"> T={T}"))
        parts.append(f"LSTM forget bias {float(fb):g} against the tanh RNN: " + "; ".join(words))
    for name, g in conf[(conf["cell"] == "rnn") & (nonlin != "tanh")].groupby(nonlin[nonlin != "tanh"]):
        parts.append(f"beside them, not pooled: the {name} RNN's factor {_span(g['decay_factor'])} at {_rhos(g)}")
    if far := _far_end_evidence(far_end_gradients(gradients)):
        parts.append(far)
    if n and k > n / 2 and w == 0:
        verdict = SUPPORTED
    elif n and w > n / 2:
        verdict = CONTRADICTED
    elif k:
        verdict = PARTLY
    else:
        verdict = INCONCLUSIVE
    return Claim("b", text, verdict, "; ".join(parts), rule)


BUDGET_NOTE = ("neither the LSTM nor the tanh RNN solved any seed at any T run: the training budget may be the cause "
               "(see the task table's published budgets)")


def claim_c(training: pd.DataFrame | None) -> Claim:
    rule = (f"per task and T, each model's seeds solved ({SOLVED_RULE}; a diverged seed is not solved), the best "
            "LSTM beside the best tanh RNN. Supported when somewhere the LSTM solves in most seeds and the tanh RNN in "
            "none, and nowhere does the tanh RNN solve more; contradicted when somewhere the tanh RNN solves more and "
            "nowhere the LSTM does; inconclusive when neither solves a seed at any T; else partly supported. The IRNN "
            "(Le et al. 2015), an RNN built for the adding problem, is reported beside and never decides it")
    text = STATEMENTS["c"].claim
    rates = success_rates(training)
    if rates is None or not {"lstm", "tanh rnn"} <= set(rates["role"]):
        return Claim("c", text, NOT_MEASURED, "needs task runs of both an LSTM and a tanh RNN", rule)
    parts, lstm_ahead, lstm_more, rnn_ahead, any_solved = [], 0, 0, 0, False
    for (task, T), g in rates.groupby(["task", "seq_len"]):
        lstm, rnn = (g[g["role"] == r].sort_values("solved", ascending=False) for r in ("lstm", "tanh rnn"))
        if lstm.empty or rnn.empty:
            continue
        a, b = lstm.iloc[0], rnn.iloc[0]
        any_solved |= bool(a["solved"] or b["solved"])
        lstm_ahead += bool(a["solved"] > a["seeds"] / 2 and b["solved"] == 0)
        rnn_ahead += bool(b["solved"] > a["solved"])
        lstm_more += bool(a["solved"] > b["solved"])
        part = (f"{task} T={int(T)}: LSTM ({a['model']}) solved {solved_text(a)}, tanh RNN ({b['model']}) "
                f"{solved_text(b)}")
        for _, r in g[g["role"] == "irnn"].iterrows():
            part += f"; the IRNN (Le et al. 2015), an RNN made for this task, solved it in {solved_text(r)}"
        parts.append(part)
    if not parts:
        return Claim("c", text, NOT_MEASURED, "no task and seq_len with both an LSTM and a tanh RNN", rule)
    if not any_solved:
        verdict = INCONCLUSIVE
        parts.append(BUDGET_NOTE)
    elif lstm_ahead and not rnn_ahead:
        verdict = SUPPORTED
    elif rnn_ahead and not lstm_more:
        verdict = CONTRADICTED
    else:
        verdict = PARTLY
    return Claim("c", text, verdict, "; ".join(parts), rule)


def claim_d(ratios: pd.DataFrame | None) -> Claim:
    rule = ("supported when every LSTM/RNN parameter ratio at equal (input, hidden) is above 1 (the tutorial's "
            "'more'); else contradicted. The evidence says whether it is exactly 4")
    text = STATEMENTS["d"].claim
    r = None if ratios is None else ratios[ratios["kind"] == "params"]
    if r is None or r.empty:
        return Claim("d", text, NOT_MEASURED, "needs throughput rows of an LSTM and an RNN at equal sizes", rule)
    vals = sorted(set(r["ratio"].round(12)))
    sizes = sorted(set(zip(r["input"].astype(int), r["hidden"].astype(int), strict=True)))
    ev = (f"ratio {', '.join(compact(v) for v in vals)} at (input, hidden) in {sizes[:6]}"
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
          f"at {tally[intervals.NO_DIFFERENCE]}; median {compact(med)}x (range {compact(r['ratio'].min())}–"
          f"{compact(r['ratio'].max())}); " + ", ".join(f"{p}: {compact(v)}x" for p, v in per.items()))
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
    t = ok_rows(timings)
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
        by_phase = ", ".join(f"{ph} {compact(v)}x" for ph, v in sp["ratio"].groupby(k["phase"]).median().items())
        parts.append(f"{kernel}: median {compact(sp['ratio'].median())}x ({by_phase}; range "
                     f"{compact(sp['ratio'].min())}–{compact(sp['ratio'].max())}), measurably faster at "
                     f"{tally['above']} of {len(sp)} sizes, slower at {tally['below']}")
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


def claim_g(timings: pd.DataFrame | None, rounds: pd.DataFrame | None = None) -> Claim:
    """The paper's (Feng et al. 2024), judged on the device it ran on (parallel.PAPER_RULE)."""
    verdict, evidence = paper_claim(speedups(timings, rounds))
    return Claim("g", STATEMENTS["g"].claim, verdict, evidence, PAPER_RULE)


def claims(t: dict[str, pd.DataFrame | None], ratios: pd.DataFrame | None) -> list[Claim]:
    """Every claim, (a) to (g), from the tables (tables.Runs.tables) and cost_ratios."""
    return [claim_a(t["decay"]), claim_b(t["decay"], t.get("gradients")), claim_c(t["training"]), claim_d(ratios),
            claim_e(ratios), claim_f(t["timings"], t.get("rounds")), claim_g(t["timings"], t.get("rounds"))]


