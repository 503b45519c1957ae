"""Every table derived from a run's tables, computed once, in one place: what the figures, the findings, the claims
and the report's tables all read.

    derived = Derived.of(load_runs(dirs))
    derived.frames["layer_costs"]        # a derived table, or None where the runs have no data for it
    derived.frames["timings"]            # the runs' own timings, cut to one plain layer at fixed length
    derived.csv_files()                  # {"summary.csv": DataFrame, ...}: what the report writes beside the page

`frames` holds the runs' own tables (tables.FRAMES' keys), with `timings` cut to one plain layer at
fixed length (tables.plain: what the claims, findings and size figures compare; the stacks and the
variable lengths have derived tables of their own) and `all_timings` uncut, and each derived table
under its name. Each derived table's CSV is its name plus ".csv" (WRITTEN).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis import learning, numerics, parallel, ratios, summary
from harness.analysis.tables import Runs, plain
from harness.store import traces

WRITTEN = ("summary", "scaling", "run_ratios", "layer_costs", "lengths_costs", "compile_costs", "success_rates",
           "decay_by_radius", "dynamics_summary", "attribution", "ceilings", "errors",
           "precision_decay", "parallel_speedups", "crossovers", "parallel_memory", "closed_form")
# what the report writes, as NAME.csv
ALWAYS = ("summary", "scaling")                     # written even when empty (a header, or nothing)


@dataclass
class Derived:
    frames: dict[str, pd.DataFrame | None]

    @classmethod
    def of(cls, runs: Runs) -> Derived:
        t = runs.tables
        timings, rounds = t["timings"], t["rounds"]
        flat = plain(timings)
        parts = [df for df in (t["breakdown"], traces.time_breakdown(runs.dirs)) if df is not None]
        frames = {**t, "timings": flat, "all_timings": timings,
                  "cost_ratios": ratios.cost_ratios(flat, rounds),
                  "breakdown": pd.concat(parts, ignore_index=True) if parts else None,  # the sweep's passes, traces
                  "run_ratios": ratios.run_ratios(timings, rounds, runs.ids),
                  "layer_costs": ratios.layer_costs(timings, rounds),
                  "lengths_costs": ratios.lengths_costs(timings, rounds),
                  "compile_costs": ratios.compile_costs(timings, rounds),
                  "attribution": ratios.attribution(timings, rounds),
                  "ceilings": summary.ceilings(runs),
                  "above_ceiling": summary.above_ceiling(timings),
                  "success_rates": learning.success_rates(t["training"]),
                  "decay_by_radius": learning.decay_by_radius(t["decay"]),
                  "dynamics_summary": learning.forget_summary(t["dynamics"]),
                  "summary": summary.summary(timings),
                  "scaling": summary.scaling(flat),
                  "noisy_groups": summary.noisy_groups(timings),
                  "errors": numerics.error_rows(timings),          # every stack and precision: all timings
                  "numerics_off": numerics.off_rows(timings),
                  "precision_decay": numerics.precision_decay(t["gradients"]),
                  "top_ops": traces.top_ops_table(runs.dirs),
                  "parallel_speedups": (sp := parallel.speedups(flat, rounds)),
                  "crossovers": parallel.crossover_table(sp),
                  "parallel_memory": parallel.memory_rows(flat),
                  "closed_form": parallel.closed_form_rows(t["decay"])}
        return cls(frames)

    def csv_files(self) -> dict[str, pd.DataFrame]:
        """File name -> table, for every WRITTEN table the runs have (and the ALWAYS ones, even empty)."""
        out = {}
        for name in WRITTEN:
            df = self.frames[name]
            if df is not None or name in ALWAYS:
                out[f"{name}.csv"] = df if df is not None else pd.DataFrame()
        return out
