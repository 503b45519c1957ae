"""The rows a case becomes: every column of timings.csv, rounds.csv and breakdown.csv that the sweep computes,
and the rows of a [[gradients]] or [[task]] case that did not run. Pure: nothing here measures or writes.

    row = base_row(run_id, scenario_name, case)                # the case's configuration, ids and provenance
    row.update(timed_columns(case, step, times, peak))          # statistics, FLOPs, rates and the peak fraction
    ratio_columns(rows, times_of, ok)                           # each member against its group's reference
    round_rows(run_id, rows, members, group_times)              # rounds.csv
    not_ok_rows(run_id, case, status, reason)                   # {table: rows} of a case that did not run

Each table's columns are declared in store/columns.py; a key a row lacks is written empty.
"""
from __future__ import annotations

from harness.config.cases import CANARY, GradientCase, ThroughputCase, canary_id, case_id, group_id, reference
from harness.core import env, intervals
from harness.implementations import registry
from harness.measure import flops, tasks, timing
from harness.store.columns import BREAKDOWN_COLUMNS, DECAY, GRADIENTS, TRAINING


def base_row(run_id: str, scenario_name: str, case: ThroughputCase) -> dict:
    """A throughput case's columns before it is measured: its fields, its ids, where it runs."""
    gid = group_id(case)
    return {"run_id": run_id, "scenario": scenario_name, "cell": case.cell,
            "device_name": env.device_name(case.device), "host": env.short_host(), **case.as_row(),
            "case_id": case_id(case), "group_id": gid, "rounds_wanted": case.rounds, "rounds": None,
            "order_seed": timing.order_seed(gid, case.seed) if case.interleave else None}


def timed_columns(case: ThroughputCase, step: timing.Step, times: list[float], ceiling: tuple[str, float] | None,
                  shape_peak: float | None = None) -> dict:
    """A timed member's statistics (pytest-benchmark's), its median's interval, its GEMM FLOPs (real tokens
    only, padding not counted), its rates, and its fractions of the ceilings it is held against: the best
    library's GEMM peak (ceiling: (library, GFLOP/s)), and that library's rate at the case's own shapes
    (shape_peak, GFLOP/s); None where there is none."""
    row = timing.stats_columns(times)
    row["median_ci_low_s"], row["median_ci_high_s"] = intervals.median_ci(times)
    work = flops.flops(case.cell, case.batch, case.seq_len, case.hidden, case.input, case.phase, case.shape,
                       tokens=step.tokens)
    rate = work / row["time_median_s"] / 1e9
    library, peak = ceiling or (None, None)
    row.update(flops=work, gflops_per_s=rate, tokens_per_s=step.tokens / row["time_median_s"],
               gemm_peak_gflops_per_s=peak, gemm_peak_library=library, peak_fraction=rate / peak if peak else None,
               shape_peak_gflops_per_s=shape_peak, shape_peak_fraction=rate / shape_peak if shape_peak else None)
    return row


def ratio_columns(rows: dict[ThroughputCase, dict], times_of: dict[ThroughputCase, list[float]],
                  ok: list[ThroughputCase]) -> None:
    """Each ok member's time over its reference's (cases.reference), with a paired 95% bootstrap interval."""
    for c in ok:
        ref = reference(c, ok)
        r, lo, hi = intervals.ratio_ci(times_of[c], times_of[ref], paired=True)
        rows[c].update(ratio_ref=ref.impl, ratio=r, ratio_ci_low=lo, ratio_ci_high=hi)


def round_rows(run_id: str, rows: dict[ThroughputCase, dict], members: list[ThroughputCase],
               gt: timing.GroupTimes) -> list[dict]:
    """rounds.csv's rows of one group: every timed round, in the order it was timed; a member past `members` is
    the canary (impl cases.CANARY, case_id cases.canary_id of the group)."""
    gid = next(iter(rows.values()))["group_id"]                         # one group: every row has its id
    who = [(rows[c]["case_id"], c.impl) for c in members] + [(canary_id(gid), CANARY)]
    return [{"run_id": run_id, "case_id": who[i][0], "group_id": gid, "impl": who[i][1], "round": r,
             "position": pos, "time_s": t} for i, r, pos, t in gt.rounds]


def breakdown_rows(row: dict, split: dict[str, float]) -> list[dict]:
    """breakdown.csv's rows of one case's breakdown pass: ms per step in each category."""
    case_columns = {k: row[k] for k in BREAKDOWN_COLUMNS if k in row}
    return [{**case_columns, "category": c, "ms": ms, "source": "pass"} for c, ms in split.items()]


def not_ok_rows(run_id: str, case, status: str, reason: str) -> dict[str, list[dict]]:
    """The rows of a [[gradients]] or [[task]] case that was skipped or failed, by table (its final table last)."""
    base = {"run_id": run_id, "impl": case.impl, "cell": registry.get(case.impl).cell, "hidden": case.hidden,
            "seq_len": case.seq_len, "batch": case.batch, "dtype": case.dtype, "device": case.device,
            "forget_bias": case.forget_bias, "status": status, "case_id": case_id(case), "autocast": case.autocast}
    if isinstance(case, GradientCase):
        base.update(init=case.init, nonlinearity=case.nonlinearity, seed=case.seed, input=case.input)
        return {GRADIENTS: [base], DECAY: [{**base, "seeds": case.seeds, "reason": reason}]}
    return {TRAINING: [{**base, "task": case.task, "lr": case.lr, "clip": case.clip, "seed": case.seed,
                        "reason": reason, "baseline_loss": tasks.baseline_loss(case.task, case.seq_len)}]}
