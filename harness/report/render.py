"""make report: a run's tables -> findings, claims, figures and tables, written as HTML and Markdown.

    python -m harness report                  # results/latest
    python -m harness report RUN_A,RUN_B      # one report over several runs (a CPU and a GPU run, or
                                              # before and after a change: each case's ratio B/A)

writes reports/<name>/: index.html (self-contained: no network, no scripts,
images beside it), report.md, figures/*.png and *.svg, claims.csv and the
derived tables as CSV (summary.csv, scaling.csv, and run_ratios.csv,
layer_costs.csv, ... where the runs have them: analysis/derived.py). The page
answers first: what the run found (analysis/findings.py), then the tutorial's
claims in its own words with their verdicts and rules (analysis/claims.py),
the figures (figures/), the tables in human units (views.py), the environment
and the cases that did not run, grouped by reason. A run with only some
sections still gets a report; a figure without data says so in one line.
This module fills the page in; writers.py lays it out.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from harness.analysis import learning, numerics
from harness.analysis.claims import claims
from harness.analysis.derived import Derived
from harness.analysis.findings import findings
from harness.analysis.summary import not_ok
from harness.analysis.tables import Runs, load_runs
from harness.core import env
from harness.core.thresholds import ABOVE_CEILING, CANARY_MOVED, CANARY_SPREAD, NOISY_STEAL, TOLERANCES, VANISH_RATIO
from harness.report import figures, views
from harness.report.writers import Page, write_html, write_md
from harness.store.atomic import writer_pid
from harness.store.runs import find_runs, writer_gone


def render(spec: str, results: Path = env.RESULTS, out_root: Path = env.REPORTS, quiet: bool = False,
           strict: bool = False) -> Path:
    """The report of the runs in `spec` (a run id, several comma-separated, or latest) under out_root/<name>/.

    A figure that raises is left out and named in the report's warnings, so one broken figure does
    not lose the report; with `strict` (the tests' mode) it raises instead."""
    dirs = find_runs(results, spec)
    runs = load_runs(dirs)
    _still_running(runs)
    name = "+".join(d.name for d in dirs)
    out = out_root / name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    derived = Derived.of(runs)
    f = derived.frames
    page = Page(name, runs)
    _draw(page, f, out / "figures", strict)
    page.found = findings(f, f["cost_ratios"], f["breakdown"], f["run_ratios"], f["compile_costs"])
    page.claims = claims(f, f["cost_ratios"])
    pd.DataFrame([{"key": c.key, "claim": c.claim, "source": c.statement.source, "quote_zh": c.statement.quote_zh,
                   "quote_en": c.statement.quote_en,
                   "measured": c.statement.measured, "verdict": c.verdict, "evidence": c.evidence, "rule": c.rule}
                  for c in page.claims]).to_csv(out / "claims.csv", index=False)
    for file, table in derived.csv_files().items():
        table.to_csv(out / file, index=False)
    if not (noisy := f["noisy_groups"]).empty:
        counts = {k: int(noisy["why"].str.contains(k, regex=False).sum())
                  for k in ("steal", "canary +-", "canary moved")}
        runs.warnings.append(f"{len(noisy)} comparison groups were noisy (noisy in timings.csv; {counts['steal']} by "
                             f"CPU steal over {100 * NOISY_STEAL:g}%, {counts['canary +-']} by a canary wider than "
                             f"+-{100 * CANARY_SPREAD:g}%, {counts['canary moved']} by a canary that moved over "
                             f"{100 * CANARY_MOVED:g}% from the run's median so far): see 'Noisy groups'")
    page.tables = _tables(runs, f)
    write_html(out, page)
    write_md(out, page)
    if not quiet:
        for w in runs.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return out


def _still_running(runs: Runs) -> None:
    """A warning for each run that says running: still being written (its rows so far are whole), or its writer
    gone (it reads as interrupted: runs.writer_gone)."""
    for d, meta in zip(runs.dirs, runs.meta, strict=True):
        if meta.status == "running":
            gone = writer_gone(d, meta)
            runs.warnings.append(gone or f"run {d.name} is still running (pid {writer_pid(d)}): this report has the "
                                 "cases it has finished so far")


def _draw(page: Page, frames: dict, directory: Path, strict: bool) -> None:
    """Every figure of figures.FIGURES the runs have data for, saved; one line for each of the others."""
    for stem, (fn, needs) in figures.FIGURES.items():
        try:
            fig = fn(*(frames[n] for n in needs))
        except Exception as exc:  # noqa: BLE001 -- one broken figure must not lose the report
            if strict:
                raise
            page.runs.warnings.append(f"figure {stem}: not drawn ({type(exc).__name__}: {exc})")
            fig = None
        if fig is None:
            page.not_drawn.append(f"{stem}: no data in this run (it needs {figures.NEEDS.get(stem, 'its tables')})")
            continue
        figures.save(fig, directory, stem)
        page.figures.append((stem, figures.caption(stem)))


def _tables(runs: Runs, f: dict) -> list[tuple[str, str, str, pd.DataFrame | None, bool]]:
    """The page's tables, in order: (id, title, intro, table in human units, tall)."""
    cc, rr, rates, by_radius, forget = (f["compile_costs"], f["run_ratios"], f["success_rates"],
                                        f["decay_by_radius"], f["dynamics_summary"])
    ops = f["top_ops"]
    errs = numerics.error_summary(f["errors"])
    tolerances = ", ".join(f"{k} {v:g}" for k, v in TOLERANCES.items())
    return [
        ("summary", "Summary", "Medians over each implementation's cases (summary.csv has them unrounded).",
         views.summary_view(f["summary"]), False),
        ("scaling", "Scaling", "Exponents of time against each size, by log-log least squares over the sizes "
         "measured (time ~ hidden^a seq_len^b batch^c); an exponent of 1 is linear (scaling.csv).",
         views.scaling_view(f["scaling"]), False),
        *([("accuracy", "Speed beside accuracy: error against float64", "After its timed rounds, each row ran one "
            "untimed step against the same architecture in float64 (nn.LSTM / nn.RNN / nn.GRU on the CPU, the row's "
            "own weights and inputs): out_err is max |y - y64| / max |y64| over the output and final state, grad_err "
            "the same over the parameter gradients (train). compute_dtype names the dtype the GEMMs ran in; out_err "
            "measures the result, and the two can disagree (a float32 output can carry a bfloat16-sized error). "
            f"Tolerances by what the step computes in: {tolerances}.", views.errors_view(errs), False)]
          if errs is not None else []),
        *([("numerics-off", "Rows off their float64 reference", "Timed rows whose error is above the tolerance of what "
            "they computed in: a wrong kernel at a timed size, or a precision too coarse for the size. Their times "
            "stand; their results do not.", views.off_view(f["numerics_off"]), False)]
          if f["numerics_off"] is not None else []),
        *([("precision-decay", "Precision and the vanishing gradient", "Each model's per-step decay factor of "
            "||dL/dx_t|| in float32 and under autocast, from the same weights and inputs, paired by seed: the "
            "difference (autocast - float32) with its 95% t interval over seeds; the vanish distance is where the norm "
            f"falls below {VANISH_RATIO:g} of its value at distance 0, a mean over seeds ('never': within T for some "
            "seed it did not).", views.precision_decay_view(f["precision_decay"]), False)]
          if f["precision_decay"] is not None else []),
        *([("parallel", "Parallel scan against T: speed-ups", "Each min model's scan (mingru-scan, minlstm-scan) "
            "beside its own loop and the library layers: time(slow) / time(fast) at equal batch and T, so also the "
            "ratio of tokens/s, with a 95% bootstrap interval over rounds (paired within a comparison group; at equal "
            "parameters the minLSTM is a group of its own, unpaired). Where each crossover lies is in crossovers.csv "
            "and the findings (parallel_speedups.csv).", views.speedups_view(f["parallel_speedups"]), True)]
          if f["parallel_speedups"] is not None else []),
        *([("closed-form", "A min cell's gradient against its closed form", "Per-step decay factor of ||dL/dx_t|| "
            "(measured by autograd) beside that of ||dL/dh_t|| in closed form, (1/B) g times the product of the a "
            "gates after t (f' for minLSTM, 1 - z for minGRU): a min cell has no recurrent matrix, so nothing else "
            "carries the gradient back. Mean over seeds with a 95% t interval (closed_form.csv).",
            views.closed_form_view(f["closed_form"]), False)] if f["closed_form"] is not None else []),
        *([("compile", "Compilers: compile time against the steady speed-up", "Each compiled case against the eager "
            "implementations its comparison group timed: compile = its first call less a steady one; speed-up = "
            "their step over its step, with a paired 95% bootstrap interval; break-even = compile / (their step - "
            "its step) steps, where the interval's lower bound is above 1, else never (compile_costs.csv).",
            views.compile_view(cc), False)] if cc is not None else []),
        *([("run-ratios", "Between runs", f"Each case both runs timed: time in the run over time in the base run "
            f"({runs.ids[0]}), with a 95% bootstrap interval over their rounds (run_ratios.csv).",
            views.run_ratio_view(rr), True)] if len(runs.ids) > 1 else []),
        *([("classics", "Long-range tasks: solved across seeds", f"Rule: {learning.SOLVED_RULE}. Each seed is one "
            "training run (success_rates.csv).", views.success_view(rates), False)] if rates is not None else []),
        *([("edge", "Vanishing or exploding: decay factor against spectral radius", "The per-step decay factor of "
            "||dL/dx_t|| with every recurrent gate block rescaled to spectral radius rho, mean and 95% t interval over "
            "seeds (decay_by_radius.csv). Below 1 the gradient vanishes with distance, above 1 it explodes; a linear "
            "RNN's factor is rho.", views.radius_view(by_radius), False)] if by_radius is not None else []),
        *([("dynamics", "Inside the network while it learns", "The one-step Jacobian's largest singular value (power "
            "iteration on autograd's products; s = h, or (h, c) for an LSTM) and the LSTM's forget gate, averaged "
            "over the measured steps and the seeds, at the start, middle and end of training (dynamics.csv, "
            "dynamics_summary.csv).", views.forget_view(forget), False)] if forget is not None else []),
        *([("vendor", "Where a vendor LSTM's speed-up comes from", "Each step from nn.LSTM on native kernels "
            "(torch-lstm) to the vendor's LSTM that a comparison group timed: time(from) / time(to), above 1 where "
            "`to` is faster, with a paired 95% bootstrap interval over the group's rounds; the steps multiply to the "
            "whole way (attribution.csv).", views.attribution_view(f["attribution"]), False)]
          if f["attribution"] is not None else []),
        *([("above-ceiling", "Above the measured ceiling", f"Cases whose GEMM rate is more than {ABOVE_CEILING:g}x the "
            "best GEMM peak this run measured (every library's: ceilings.csv). The ceiling is in doubt (a faster GEMM "
            "path than those measured, or a slower machine while they were); these are no success.",
            views.above_ceiling_view(f["above_ceiling"]), False)] if f["above_ceiling"] is not None else []),
        ("environment", "Environment", "", views.environment_table(runs), False),
        ("not-ok", "Skipped and failed cases", "One row per reason, with how many cases and one of them.",
         not_ok(runs), False),
        ("noisy", "Noisy groups", f"Comparison groups measured on a machine that did not hold still: the "
         f"hypervisor took more than {100 * NOISY_STEAL:g}% of the CPU (steal time, /proc/stat), or the canary timed "
         f"with the group (a fixed GEMM) had a median interval wider than +-{100 * CANARY_SPREAD:g}% or moved more "
         f"than {100 * CANARY_MOVED:g}% from the run's median so far; their ratios are less trustworthy.",
         views.noisy_view(f["noisy_groups"]), False),
        ("top-ops", "Top profiler ops", "By self time, per profiled case." if ops is not None else
         "No profiles in these runs (make profile).", ops, True),
    ]
