"""A run's tidy tables as pandas DataFrames: read through the store, typed, labelled by machine.

    runs = load_runs(find_runs(env.RESULTS, "RUN_A,RUN_B"))
    runs.tables["timings"]          # every run's timings.csv rows, one DataFrame (FRAMES: key -> file)
    # a model that ran its own GEMMs on oneDNN is "fused-lstm[onednn]" in `impl` (cases.impl_label), so that
    # every figure, claim and finding tells it from the same model on aten; `gemm` says which ran, every row
    ok_rows(runs.tables["decay"])   # the rows that measured something (status ok), or None

Rows of several runs are told apart by their environment: `device_label`
("cpu: AMD EPYC @ host") names the device, its model and the host, so the same
device type on two machines never mixes in a figure or a claim. Lines the
store's reader leaves out are named in `runs.warnings`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.config.cases import KEY_DEFAULTS, impl_label, row_gemm, stack_label
from harness.implementations.registry import IMPLS
from harness.store.columns import TABLES
from harness.store.meta import RunMeta, read_meta
from harness.store.runs import read_rows

FRAMES = {Path(name).stem: name for name in TABLES}     # a Runs.tables key ("timings") -> its file ("timings.csv")
STAND_INS = tuple(name for name, impl in IMPLS.items() if impl.stand_in)   # registered like an implementation, to
# test the harness (the dummy): drawn in figures, but no finding is about it

NUMERIC = ["batch", "seq_len", "hidden", "input", "layers", "rounds", "time_median_s", "time_iqr_s", "time_min_s",
           "tokens_per_s", "flops", "gflops_per_s", "gemm_peak_gflops_per_s", "peak_fraction", "peak_mem_bytes",
           "params", "threads", "seed", "step", "distance", "grad_norm", "decay_factor", "decay_ci_low",
           "decay_ci_high", "vanish_distance", "train_loss", "eval_loss", "baseline_loss", "eval_accuracy", "wall_s",
           "train_step", "forget_bias", "seeds", "section_index", "order_seed", "max_time_s", "median_ci_low_s",
           "median_ci_high_s", "ratio", "ratio_ci_low", "ratio_ci_high", "steal_fraction", "load_avg",
           "round", "position", "time_s", "ms", "proj_size", "dropout", "tokens", "padding_fraction",
           "spectral_radius", "t", "jacobian_norm", "forget_mean", "forget_open", "steps", "compile_s", "recompiles",
           "graph_breaks", "max_compile_s", "shape_peak_gflops_per_s", "shape_peak_fraction", "out_err", "grad_err",
           "err_tol"]


def plain(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of one plain layer at fixed length: what the claims, findings and size figures compare
    (stacks and variable lengths have figures of their own)."""
    if timings is None or "stack" not in timings:
        return timings
    out = timings[timings["stack"] == ""]
    return None if out.empty else out


@dataclass
class Runs:
    ids: list[str]
    meta: list[RunMeta]
    tables: dict[str, pd.DataFrame | None]    # FRAMES' keys -> every run's rows, or None where no run has any
    warnings: list[str]
    dirs: list[Path]                          # the run directories, in the order of ids


def read_table(path: Path, warnings: list[str]) -> pd.DataFrame | None:
    """One CSV as a DataFrame, NUMERIC columns as numbers; None when it has no whole row (or no file)."""
    rows = read_rows(path, warnings)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    for col in NUMERIC:
        if col in df:
            df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce")
    return df


def load_runs(dirs: list[Path]) -> Runs:
    """Every table of these run directories, concatenated across runs."""
    warnings: list[str] = []
    metas, frames = [], {k: [] for k in FRAMES}
    for d in dirs:
        meta = read_meta(d)
        metas.append(meta)
        envd = meta.environment
        for key, name in FRAMES.items():
            df = read_table(d / name, warnings)
            if df is None or df.empty:
                continue
            df["run_id"] = df["run_id"].replace("", d.name) if "run_id" in df else d.name
            df["host"] = envd.get("host", "?")
            if key in ("timings", "breakdown"):   # the library its GEMMs ran on, and in impl where it is not aten
                records = df.to_dict("records")
                df["gemm"] = [row_gemm(r) for r in records]      # a run before the column: its backend's
                df["impl"] = [impl_label(r["impl"], g) for r, g in zip(records, df["gemm"], strict=True)]
            if key == "timings":                  # runs made before a key column existed: its default
                for col, default in KEY_DEFAULTS.items():
                    if col not in df:
                        df[col] = pd.to_numeric(default) if col in NUMERIC else default
                df["stack"] = [stack_label(r) for r in df.to_dict("records")]
            if "device_name" not in df:
                df["device_name"] = [envd.get("gpu") if str(dev).startswith("cuda") else envd.get("cpu_model")
                                     for dev in df.get("device", ["cpu"] * len(df))]
            if "device" in df:
                df["device_label"] = df["device"].astype(str) + ": " + df["device_name"].fillna("?").astype(str) \
                    + " @ " + df["host"].astype(str)
            frames[key].append(df)
    tables = {k: (pd.concat(v, ignore_index=True) if v else None) for k, v in frames.items()}
    return Runs([m.run_id for m in metas], metas, tables, warnings, list(dirs))


def device_text(label: str) -> str:
    """A device_label as a sentence names it: 'cpu: AMD EPYC 7B13 @ vm' -> 'cpu (AMD EPYC 7B13)'."""
    dev, _, rest = str(label).partition(": ")
    return f"{dev} ({rest.rsplit(' @ ', 1)[0]})" if rest else dev


def ok_rows(df: pd.DataFrame | None, real: bool = False) -> pd.DataFrame | None:
    """The rows whose status is ok (with `real`, of real implementations only: not the STAND_INS), or None
    when there are none (or no table). The one filter of measured rows: every figure, claim and finding uses it."""
    if df is None or "status" not in df:
        return None
    keep = df["status"] == "ok"
    if real and "impl" in df:
        keep &= ~df["impl"].isin(STAND_INS)
    out = df[keep]
    return None if out.empty else out
