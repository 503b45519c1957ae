"""What the learning measurements say, as tables: which model solved which task, and the edge
between vanishing and exploding. The report shows them; learning_plots.py draws them.

    success_rates(training)      per task, T and model: seeds that solved it, final losses, wall time
    decay_by_radius(decay)       per model and spectral radius: the per-step decay factor
    model_label(df)              "onednn-lstm fb=1.0", "torch-rnn relu identity", "scratch-rnn linear rho=0.9"

SOLVED is the rule for "solved", printed with every table that uses it: the final held-out
loss below SOLVED x the task's baseline (the loss of a predictor that ignores the input:
1/6 for adding, 10 ln 8 / (T + 20) for copy). claims.LEARNED, the tutorial claim's looser
"learned something", is 0.5 x.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import units

SOLVED = 0.1      # a seed solved a task when its final held-out loss < SOLVED * the baseline loss
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
    d = decay[(decay["wrt"] == "x") & (decay["task"].fillna("") == "") & has_radius(decay)]
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


# -- the report's views: the same tables in human units ------------------------------------------
def success_view(rates: pd.DataFrame | None) -> pd.DataFrame | None:
    if rates is None:
        return None
    return pd.DataFrame({"task": rates["task"], "T": rates["seq_len"].astype(int), "model": rates["model"],
                         "solved": [f"{s} of {n}" + (f" ({int(d)} diverged)" if d else "") for s, n, d in
                                    zip(rates["solved"], rates["seeds"], rates["diverged"], strict=True)],
                         "final loss / baseline (median, best)": [
                             f"{units.sig(m)}, {units.sig(b)}" for m, b in
                             zip(rates["median_rel_loss"], rates["best_rel_loss"], strict=True)],
                         "accuracy (median)": rates["median_accuracy"].map(units.percent),
                         "steps": rates["steps"].astype(int),
                         "wall time (median)": rates["median_wall_s"].map(units.seconds)})


def radius_view(by_radius: pd.DataFrame | None) -> pd.DataFrame | None:
    """Models down, spectral radii across: 'factor [low, high]'."""
    if by_radius is None:
        return None
    def cell(r) -> str:
        if r["status"] != "ok":
            return r["status"]
        ci = (f" [{units.sig(r['decay_ci_low'])}, {units.sig(r['decay_ci_high'])}]"
              if not _blank(r["decay_ci_low"]) else "")
        return units.sig(r["decay_factor"]) + ci
    d = by_radius.assign(text=by_radius.apply(cell, axis=1))
    wide = d.pivot_table(index="model", columns="spectral_radius", values="text", aggfunc="first")
    wide.columns = [f"rho={c:g}" for c in wide.columns]
    return wide.reset_index()


def forget_view(summary: pd.DataFrame | None) -> pd.DataFrame | None:
    if summary is None:
        return None
    return pd.DataFrame({"task": summary["task"], "T": summary["seq_len"].astype(int), "model": summary["model"],
                         "train step": summary["train_step"].astype(int), "seeds": summary["seeds"],
                         "||ds_t/ds_(t-1)|| (mean over t)": summary["jacobian_norm"].map(units.sig),
                         "forget gate (mean)": summary["forget_mean"].map(units.sig),
                         "forget gates above 0.9": summary["forget_open"].map(units.percent)})
