"""What the gradient and learning measurements say, as tables: how gradients decay, which model solved which
task, and the edge between vanishing and exploding. The claims judge them, the report shows them, and
report/figures/learning.py draws them.

    gradient_rows(decay)         the ok decay fits of the [[gradients]] sections, wrt x
    configurations(d)            those fits pooled by configuration (implementations of one cell compute one function)
    task_curves(gradients)       the gradient curves taken while a task trained
    far_end_gradients(gradients) task runs: the gradient at the far end over distance 0, as training goes on
    final_losses(training)       each [[task]] case's last evaluation, and whether it learned (LEARNED)
    success_rates(training)      per task, T and model: seeds that solved it (SOLVED), final losses, wall time
    decay_by_radius(decay)       per model and spectral radius: the per-step decay factor
    forget_summary(dynamics)     per model and checkpoint: the one-step Jacobian's norm, the forget gate
    model_label(df)              "onednn-lstm fb=1.0", "torch-rnn relu identity", "scratch-rnn linear rho=0.9",
                                 "torch-rnn tanh autocast bfloat16"

Two rules of learning, side by side, each printed with whatever uses it: SOLVED, the final
held-out loss below SOLVED x the task's baseline (the loss of a predictor that ignores the
input: 1/6 for adding, 10 ln 8 / (T + 20) for copy), per seed; and LEARNED, claim (c)'s looser
"learned something", 0.5 x.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.tables import ok_rows

SOLVED = 0.1      # a seed solved a task when its final held-out loss < SOLVED * the baseline loss
LEARNED = 0.5     # claim (c): a model "learned" the task when its final held-out loss < LEARNED * the baseline
SOLVED_RULE = (f"solved: the final held-out loss below {SOLVED:g} x the task's baseline (1/6 for adding, "
               "10 ln 8 / (T + 20) for copy)")


def _blank(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and np.isnan(v))


def model_label(df: pd.DataFrame) -> pd.Series:
    """impl, then what sets it apart: the LSTM's forget bias, the RNN's nonlinearity, the
    init when not pytorch's, the spectral radius when set."""
    def one(r) -> str:
        s = str(r["impl"])
        if r.get("cell") == "lstm" and not _blank(r.get("forget_bias")):
            s += f" fb={float(r['forget_bias']):.1f}"
        if r.get("cell") == "rnn":
            s += f" {'tanh' if _blank(r.get('nonlinearity')) else r['nonlinearity']}"
        if not _blank(r.get("init")) and r.get("init") != "pytorch":
            s += f" {r['init']}"
        if not _blank(r.get("spectral_radius")):
            s += f" rho={float(r['spectral_radius']):g}"
        if not _blank(r.get("autocast")) and r.get("autocast") != "none":
            s += f" autocast {r['autocast']}"
        return s
    return df.apply(one, axis=1) if not df.empty else pd.Series([], dtype=str)


EVALUATED = ("ok", "nan", "inf")    # an evaluation's status: its loss, or the overflow that ended the training


def final_rows(training: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each [[task]] case's last evaluation in each run (one case is one seed), with its model label. A
    training whose loss overflowed ends there: its final loss is nan or inf (diverged), never an earlier one."""
    if training is None or training.empty:
        return None
    t = training[training["status"].isin(EVALUATED)]
    if t.empty:
        return None
    last = t.sort_values("step", kind="stable").groupby(["run_id", "case_id"]).tail(1)   # not .last(): it skips nan
    return last.assign(model=model_label(last), rel=last["eval_loss"] / last["baseline_loss"],
                       diverged=~np.isfinite(last["eval_loss"].astype(float)))


def success_rates(training: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per task, seq_len and model: seeds, how many solved it (SOLVED) and how many diverged (a final
    loss of nan or inf), the median and best final loss as a multiple of the baseline, the median final
    accuracy, steps, and the median wall time."""
    last = final_rows(training)
    if last is None:
        return None
    out = last.groupby(["task", "seq_len", "model"], as_index=False).agg(
        seeds=("case_id", "nunique"), solved=("rel", lambda r: int((r < SOLVED).sum())),
        diverged=("diverged", "sum"),
        median_rel_loss=("rel", "median"), best_rel_loss=("rel", "min"),
        median_accuracy=("eval_accuracy", "median"), steps=("step", "max"), median_wall_s=("wall_s", "median"),
        baseline_loss=("baseline_loss", "first"))
    return out.assign(success_rate=out["solved"] / out["seeds"]).sort_values(["task", "seq_len", "model"])


def has_radius(df: pd.DataFrame) -> pd.Series:
    """The rows of a case with a spectral_radius (the rho sweeps); blank or absent: as drawn."""
    if "spectral_radius" not in df:
        return pd.Series(False, index=df.index)
    return df["spectral_radius"].notna() & (df["spectral_radius"].astype(str) != "")


def decay_by_radius(decay: pd.DataFrame | None) -> pd.DataFrame | None:
    """The [[gradients]] decay factors of ||dL/dx_t|| for cases with a spectral_radius: model (without
    rho), spectral_radius, the factor and its interval, and how many of its seeds were fitted."""
    if decay is None or not has_radius(decay).any():
        return None
    d = decay[(decay["wrt"] == "x") & (decay["task"].fillna("") == "") & has_radius(decay) & full_precision(decay)]
    if d.empty:
        return None
    d = d.assign(spectral_radius=d["spectral_radius"].astype(float))
    d = d.assign(model=model_label(d.drop(columns="spectral_radius")))
    cols = ["model", "cell", "spectral_radius", "decay_factor", "decay_ci_low", "decay_ci_high", "seeds", "status"]
    return d[cols].sort_values(["model", "spectral_radius"]).reset_index(drop=True)


def forget_summary(dyn: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per task, seq_len, model and checkpoint of training (train_step): the one-step Jacobian's norm
    and the forget gate (LSTMs), averaged over the measured steps t and the seeds."""
    if dyn is None or "jacobian_norm" not in dyn:
        return None
    d = dyn.assign(model=model_label(dyn))
    return d.groupby(["task", "seq_len", "model", "train_step"], as_index=False).agg(
        seeds=("seed", "nunique"), jacobian_norm=("jacobian_norm", "mean"), forget_mean=("forget_mean", "mean"),
        forget_open=("forget_open", "mean"))


def final_losses(training: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each [[task]] case's last evaluation (final_rows), and whether it learned (LEARNED)."""
    last = final_rows(training)
    if last is None:
        return None
    return last.assign(learned=last["eval_loss"] < LEARNED * last["baseline_loss"])


# -- gradients over distance -------------------------------------------------------------------------
def gradient_rows(decay: pd.DataFrame | None, cell: str | None = None) -> pd.DataFrame | None:
    """The ok decay fits of the [[gradients]] sections (not task runs), wrt x; of one cell when given."""
    d = ok_rows(decay)
    if d is None:
        return None
    d = d[(d["wrt"] == "x") & (d["task"].fillna("") == "") & full_precision(d)]
    return d if cell is None else d[d["cell"] == cell]


def full_precision(df: pd.DataFrame) -> pd.Series:
    """The rows run without autocast (the claims and the decay figures; numerics.precision_decay has the rest)."""
    if "autocast" not in df:
        return pd.Series(True, index=df.index)
    return df["autocast"].fillna("none").astype(str).isin(("none", "", "nan"))


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


def task_curves(gradients: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ok ||dL/dx_t|| curves taken while a [[task]] trained (at its start, middle and end), or None."""
    g = ok_rows(gradients)
    if g is None:
        return None
    g = g[(g["wrt"] == "x") & (g["task"].fillna("") != "")]
    return None if g.empty else g


def far_end_gradients(gradients: pd.DataFrame | None) -> pd.DataFrame | None:
    """Task runs: ||dL/dx|| at the far end over its value at distance 0, per model, at each recorded train_step."""
    g = task_curves(gradients)
    if g is None:
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
