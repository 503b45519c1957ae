"""What the gradient and learning measurements say, as tables: how gradients decay, which model solved which
task, and the edge between vanishing and exploding. The claims judge them, the report shows them, and
report/figures/learning.py draws them.

    gradient_rows(decay)         the ok decay fits of the [[gradients]] sections, wrt x
    configurations(d)            those fits pooled by configuration (implementations of one cell compute one function)
    task_curves(gradients)       the gradient curves taken while a task trained
    far_end_gradients(gradients) task runs: the gradient at the far end over distance 0, as training goes on
    final_losses(training)       each [[task]] case's last evaluation, its role, and whether it solved the task
    success_rates(training)      per task, T and model: seeds that solved it (SOLVED), diverged, steps to solve
    decay_by_radius(decay)       per model and spectral radius: the per-step decay factor
    forget_summary(dynamics)     per model and checkpoint: the one-step Jacobian's norm, the forget gate
    model_label(df)              "onednn-lstm fb=1.0", "torch-rnn relu identity", "scratch-rnn linear rho=0.9",
                                 "torch-rnn tanh autocast bfloat16"

One rule of learning, printed with whatever uses it (the success table, the findings, claim (c)):
SOLVED (core/thresholds.py), the final held-out loss below SOLVED x the task's baseline (the loss
of a predictor that ignores the input: 1/6 for adding, 10 ln 8 / (T + 20) for copy), per seed; a
seed whose loss overflowed (diverged) did not solve it. A model's role says whom claim (c) sets
beside whom: the LSTM, the tutorial's tanh RNN, the IRNN (relu, identity init: Le et al. 2015's
RNN built for the adding problem) or another RNN.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.tables import ok_rows
from harness.core.thresholds import SOLVED
from harness.implementations.params import FORGET_CELLS

ROLES = ("lstm", "tanh rnn", "irnn", "other rnn")     # role(): claim (c) compares the first two; the IRNN apart
PUBLISHED = {  # (task, role) -> the classic's own task, budget and criterion, beside this run's in the task table
    ("adding", "lstm"): "Hochreiter & Schmidhuber 1997, their variant: lengths T to T + T/10, values in [-1, 1], "
                        "target 0.5 + (X1 + X2)/4; solved when the last 2,000 training sequences all have |error| < "
                        "0.04; T = 100 took 74,000 training sequences (online)",
    ("adding", "irnn"): "Le et al. 2015: this run's variant (one mark in each half, values U[0, 1], target their sum, "
                        "MSE), T = 150 to 400, an RNN of ReLUs with W_hh = I trained with SGD and gradient clipping",
    ("copy", "lstm"): "Arjovsky et al. 2016: the copy-memory task, against the memoryless baseline 10 ln 8 / (T + 20)",
}
PUBLISHED_SEQUENCES = {("adding", "lstm", 100): 74_000}   # training sequences the paper's model took to solve it
SOLVED_RULE = (f"solved: the final held-out loss below {SOLVED:g} x the task's baseline (1/6 for adding, "
               "10 ln 8 / (T + 20) for copy)")


def role(row) -> str:
    """lstm (or gru), tanh rnn, irnn (relu with the identity init) or other rnn (relu, linear, ...)."""
    if row.get("cell") != "rnn":
        return "lstm" if row.get("cell") == "lstm" else str(row.get("cell"))
    nonlin = "tanh" if _blank(row.get("nonlinearity")) else row["nonlinearity"]
    if nonlin == "relu" and row.get("init") == "identity":
        return "irnn"
    return "tanh rnn" if nonlin == "tanh" else "other rnn"


def _blank(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and np.isnan(v))


def model_label(df: pd.DataFrame) -> pd.Series:
    """impl, then what sets it apart: the LSTM's forget bias, the RNN's nonlinearity, the
    init when not pytorch's, the spectral radius when set."""
    def one(r) -> str:
        s = str(r["impl"])
        if r.get("cell") in FORGET_CELLS and not _blank(r.get("forget_bias")):
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
    t = t.sort_values("step", kind="stable")
    last = t.groupby(["run_id", "case_id"]).tail(1)                         # not .last(): it skips nan
    under = t[t["eval_loss"].astype(float) < SOLVED * t["baseline_loss"].astype(float)]
    first = under.groupby(["run_id", "case_id"])["step"].min().rename("first_solved_step")
    last = last.join(first, on=["run_id", "case_id"])
    return last.assign(model=model_label(last), rel=last["eval_loss"] / last["baseline_loss"],
                       diverged=~np.isfinite(last["eval_loss"].astype(float)),
                       role=[role(r) for r in last.to_dict("records")])


def success_rates(training: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per task, seq_len and model: its role, seeds, how many solved it (SOLVED: the final loss; a diverged seed
    never) and how many diverged (a final loss of nan or inf), the median step at which a seed's held-out loss
    first fell below the threshold (over the seeds where it did), the median and best final loss as a multiple
    of the baseline, the median final accuracy, the steps trained (the most of any seed) and the median wall time."""
    last = final_losses(training)
    if last is None:
        return None
    out = last.groupby(["task", "seq_len", "model"], as_index=False).agg(
        role=("role", "first"), batch=("batch", "max"), seeds=("case_id", "nunique"), solved=("solved", "sum"),
        diverged=("diverged", "sum"), steps_to_solve=("first_solved_step", "median"),
        median_rel_loss=("rel", "median"), best_rel_loss=("rel", "min"),
        median_accuracy=("eval_accuracy", "median"), steps=("step", "max"), median_wall_s=("wall_s", "median"),
        baseline_loss=("baseline_loss", "first"))
    out = out.assign(success_rate=out["solved"] / out["seeds"], sequences=out["steps"] * out["batch"])
    out["published"] = [PUBLISHED.get((t, r), "") for t, r in zip(out["task"], out["role"], strict=True)]
    out["published_sequences"] = [PUBLISHED_SEQUENCES.get((t, r, int(T)), np.nan)
                                  for t, r, T in zip(out["task"], out["role"], out["seq_len"], strict=True)]
    return out.sort_values(["task", "seq_len", "model"])


def solved_text(r) -> str:
    """'2 of 3', '0 of 3 (3 diverged)': a success_rates row's seeds solved, as the task table, the findings and
    claim (c) all say it."""
    return f"{int(r['solved'])} of {int(r['seeds'])}" + (f" ({int(r['diverged'])} diverged)" if r["diverged"] else "")


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
    """Each [[task]] case's last evaluation (final_rows), and whether it solved the task (SOLVED; never diverged)."""
    last = final_rows(training)
    if last is None:
        return None
    return last.assign(solved=(last["rel"] < SOLVED) & ~last["diverged"])


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
    """Task runs: ||dL/dx|| at the far end over its value at distance 0, per model (and per case, where the rows
    name it: early_stop ends each seed at its own step), at each recorded train_step, with the model's role."""
    g = task_curves(gradients)
    if g is None:
        return None
    g = g.assign(forget_bias=g["forget_bias"].fillna(-1),
                 **{k: g[k].fillna("").astype(str) for k in ("nonlinearity", "init") if k in g})
    keys = [k for k in ("task", "impl", "cell", "nonlinearity", "init", "hidden", "seq_len", "forget_bias", "case_id",
                        "train_step") if k in g]
    out = []
    for k, c in g.groupby(keys):
        c = c.groupby("distance")["grad_norm"].median()
        if 0 in c.index and c.loc[0] > 0:
            row = dict(zip(keys, k, strict=True))
            out.append({**row, "role": role(row), "far_distance": int(c.index.max()),
                        "far_ratio": float(c.iloc[-1] / c.loc[0])})
    return pd.DataFrame(out) if out else None
