"""make report: a run's tables -> findings, claims, figures and tables, as HTML and Markdown.

    python -m harness report                  # results/latest
    python -m harness report RUN_A,RUN_B      # one report over several runs (a CPU and a GPU run, or
                                              # before and after a change: each case's ratio B/A)

writes reports/<name>/: index.html (self-contained: no network, no scripts,
images beside it), report.md, figures/*.png and *.svg, summary.csv,
claims.csv, scaling.csv and, over several runs, run_ratios.csv. The page
answers first: what the run found (harness/findings.py), then the tutorial's
claims in its own words with their verdicts and rules (harness/claims.py),
the figures (harness/plots.py), the tables in human units (harness/units.py),
the environment and the cases that did not run, grouped by reason. A run
with only some sections still gets a report; a figure without data says so
in one line. This module lays them out.
"""
from __future__ import annotations

import html
import math
import sys
from pathlib import Path

import pandas as pd

from harness import claims, costs, env, files, findings, intervals, learning, plots, profiler, store, units
from harness.tables import TABLES, Runs, load_runs, plain


# -- the report's own tables ------------------------------------------------------------------------
def summary(timings: pd.DataFrame | None) -> pd.DataFrame:
    """Per device, dtype, phase and implementation: medians over its cases (SI units; summary.csv)."""
    if timings is None:
        return pd.DataFrame()
    ok = timings[timings["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame()
    if "stack" not in ok:
        ok = ok.assign(stack="")
    g = ok.groupby(["device_label", "dtype", "phase", "stack", "impl", "backend"], as_index=False)
    return g.agg(cases=("time_median_s", "size"), median_time_s=("time_median_s", "median"),
                 median_tokens_per_s=("tokens_per_s", "median"), median_peak_fraction=("peak_fraction", "median"),
                 max_peak_fraction=("peak_fraction", "max"), median_peak_mem_bytes=("peak_mem_bytes", "median"))


def summary_view(summ: pd.DataFrame) -> pd.DataFrame:
    """summary() in human units, three significant figures."""
    if summ.empty:
        return summ
    return pd.DataFrame({
        "device": summ["device_label"], "dtype": summ["dtype"], "phase": summ["phase"],
        "stack": summ["stack"].replace("", "1 layer"), "impl": summ["impl"],
        "backend": summ["backend"], "cases": summ["cases"],
        "median time": summ["median_time_s"].map(units.seconds),
        "median throughput": summ["median_tokens_per_s"].map(lambda x: units.rate(x, "tokens/s")),
        "GEMM peak, median": summ["median_peak_fraction"].map(units.percent),
        "GEMM peak, best": summ["max_peak_fraction"].map(units.percent),
        "peak memory, median": summ["median_peak_mem_bytes"].map(units.mebibytes)})


def not_ok(runs: Runs) -> pd.DataFrame:
    """Cases that did not run, one row per (table, status, reason): how many, and one example."""
    parts = []
    for key, cols in [("timings", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "stack", "phase"]),
                      ("decay", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "init"]),
                      ("training", ["task", "impl", "device", "dtype", "seq_len", "hidden"])]:
        df = runs.tables[key]
        if df is None or "status" not in df:
            continue
        bad = df[df["status"].isin(["skipped", "failed", "oom"])]   # not: nan, underflow, no_fit (measurements)
        if bad.empty:
            continue
        cols = [c for c in cols if c in bad]
        bad = bad.assign(table=TABLES[key], case=bad[cols].astype(str).agg(" ".join, axis=1).str.replace("  ", " "),
                         reason=bad["reason"].fillna("") if "reason" in bad else "")
        parts.append(bad[["table", "run_id", "case", "status", "reason"]])
    if not parts:
        return pd.DataFrame(columns=["table", "status", "reason", "cases", "example", "runs"])
    b = pd.concat(parts, ignore_index=True)
    g = b.groupby(["table", "status", "reason"], as_index=False, sort=False)
    out = g.agg(cases=("case", "size"), example=("case", "first"), runs=("run_id", "nunique"))
    return out.sort_values("cases", ascending=False, kind="stable").reset_index(drop=True)


def noisy_groups(timings: pd.DataFrame | None) -> pd.DataFrame:
    """The comparison groups measured with more CPU steal than env.NOISY_STEAL (flagged `noisy`)."""
    if timings is None or "noisy" not in timings:
        return pd.DataFrame()
    t = timings[timings["noisy"].astype(str) == "True"]
    if t.empty:
        return pd.DataFrame()
    g = t.groupby(["run_id", "group_id", "device_label", "phase", "hidden", "batch", "seq_len"], as_index=False)
    g = g.agg(members=("impl", "size"), steal_fraction=("steal_fraction", "max"), load_avg=("load_avg", "max"))
    return g.assign(steal_fraction=g["steal_fraction"].map(units.percent)).rename(columns={"steal_fraction": "steal"})


def environment_table(runs: Runs) -> pd.DataFrame:
    """One row per property, one column per run: narrow enough to read beside the others."""
    cols = {}
    for m in runs.meta:
        e = m.environment
        peaks = "; ".join(f"{p.device} {p.dtype} {p.threads} threads: "
                          f"{units.rate(p.gemm_peak_gflops_per_s * 1e9, 'FLOP/s')}" for p in m.gemm_peaks)
        cols[m.run_id] = {"status": m.status, "scenario": m.scenario.get("name"), "host": e.get("host"),
                          "cpu": e.get("cpu_model"), "threads": e.get("threads"), "gpu": e.get("gpu"),
                          "torch": e.get("torch"), "cuda": e.get("cuda"), "cudnn": e.get("cudnn"),
                          "onednn": e.get("onednn"), "python": e.get("python"),
                          "commit": m.git.commit[:12] + ("+dirty" if m.git.dirty else ""),
                          "harness": m.harness_version, "started (UTC)": m.started_utc, "GEMM peak": peaks,
                          "wall time": units.seconds(m.wall_s) if m.wall_s else ""}
    df = pd.DataFrame(cols)
    return df.rename_axis("property").reset_index()


def scaling_view(fits: pd.DataFrame | None) -> pd.DataFrame:
    if fits is None or fits.empty:
        return pd.DataFrame()
    return pd.DataFrame({"device": fits["device_label"], "phase": fits["phase"], "impl": fits["impl"],
                         **{f"exponent of {a}": fits[f"exp_{a}"].map(lambda x: units.sig(x, 2)) for a in findings.AXES},
                         "r²": fits["r2"].map(lambda x: units.sig(x, 3)), "points": fits["points"],
                         "fitted over": fits["range"]})


def run_ratio_view(rr: pd.DataFrame | None) -> pd.DataFrame:
    if rr is None or rr.empty:
        return pd.DataFrame()
    interval = [f"[{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else "" for lo, hi in
                zip(rr["ratio_ci_low"], rr["ratio_ci_high"], strict=True)]
    return pd.DataFrame({"run / base": rr["run"] + " / " + rr["base_run"], "impl": rr["impl"],
                         "device": rr["device"], "phase": rr["phase"],
                         "size": rr.apply(findings.size_label, axis=1),
                         "base": rr["base_time_s"].map(units.seconds), "run": rr["time_s"].map(units.seconds),
                         "ratio": rr["ratio"].map(units.times), "95% interval": interval,
                         "difference": [intervals.difference(lo, hi) if lo == lo else "" for lo, hi in
                                        zip(rr["ratio_ci_low"], rr["ratio_ci_high"], strict=True)]})


def compile_view(cc: pd.DataFrame | None) -> pd.DataFrame:
    """compile_costs() in human units: break-even in steps, "never" where the compiled step is not measurably
    faster, "no interval" where its rounds are missing."""
    if cc is None or cc.empty:
        return pd.DataFrame()

    def paid(r) -> str:
        if r["speedup_ci_low"] != r["speedup_ci_low"]:
            return "no interval"
        return "never" if r["break_even_steps"] != r["break_even_steps"] else f"{r['break_even_steps']:,.0f} steps"
    return pd.DataFrame({
        "device": cc["device_label"], "phase": cc["phase"], "size": cc.apply(findings.size_label, axis=1),
        "impl": cc["impl"], "mode": cc["compile_mode"].fillna(""), "autocast": cc["autocast"],
        "compile": cc["compile_s"].map(units.seconds), "recompiles": cc["recompiles"],
        "graph breaks": cc["graph_breaks"], "steady step": cc["time_s"].map(units.seconds), "against": cc["ref"],
        "its step": cc["ref_time_s"].map(units.seconds), "speed-up": cc["speedup"].map(units.times),
        "95% interval": [f"[{units.sig(lo)}, {units.sig(hi)}]" if lo == lo else "" for lo, hi in
                         zip(cc["speedup_ci_low"], cc["speedup_ci_high"], strict=True)],
        "break-even": [paid(r) for _, r in cc.iterrows()]})


# -- rendering ----------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222;line-height:1.4}table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3}.scroll{overflow-x:auto;max-width:100%}.scroll.tall{max-height:36em;overflow-y:auto}
img{max-width:100%;height:auto;border:1px solid #eee}table.claims{width:100%;table-layout:fixed}
table.claims col.claim{width:30%}table.claims col.verdict{width:10%}table.claims col.evidence{width:35%}
q{quotes:"\\201C" "\\201D"}.zh{font-size:1.05em}.measured{color:#555;font-size:.9em}
#findings li{margin:.3em 0}.supported{color:#0a6b2d;font-weight:bold}.partly-supported{color:#4d7a00;font-weight:bold}
.contradicted{color:#a31515;font-weight:bold}.inconclusive{color:#8a5a00;font-weight:bold}
.not-measured{color:#777;font-style:italic}figure{margin:2em 0}figcaption{color:#555;font-size:.9em}
.not-drawn{color:#777;font-size:.9em}"""


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else units.sig(v)
    return "" if v is None else str(v)


def df_html(df: pd.DataFrame, table_id: str = "", tall: bool = False) -> str:
    """A table inside its own scrolling box: a wide one never widens the page."""
    if df is None or df.empty:
        return "<p><em>none</em></p>"
    out = [f'<div class="scroll{" tall" if tall else ""}">', f'<table id="{table_id}">' if table_id else "<table>",
           "<tr>"]
    out += [f"<th>{html.escape(str(c))}</th>" for c in df.columns] + ["</tr>"]
    for _, row in df.iterrows():
        out.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>")
    return "\n".join(out + ["</table>", "</div>"])


def df_md(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_none_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


class Page:
    """Everything the report shows, in the order it shows it."""

    def __init__(self, name: str, runs: Runs):
        self.name, self.runs = name, runs
        self.found: list[str] = []
        self.claims: list[claims.Claim] = []
        self.figures: list[tuple[str, str]] = []      # (file stem, caption)
        self.not_drawn: list[str] = []                # one line per figure without data
        self.tables: list[tuple[str, str, str, pd.DataFrame | None, bool]] = []  # (id, title, intro, table, tall)


def render(spec: str, results: Path = env.RESULTS, out_root: Path = env.REPORTS, quiet: bool = False,
           strict: bool = False) -> Path:
    """The report of the runs in `spec` (a run id, several comma-separated, or latest) under out_root/<name>/.

    A figure that raises is left out and named in the report's warnings, so one broken figure does
    not lose the report; with `strict` (the tests' mode) it raises instead."""
    dirs = store.find_runs(results, spec)
    runs = load_runs(dirs)
    for d, meta in zip(dirs, runs.meta, strict=True):
        if meta.status == "running":           # its rows so far: each one whole (files.append_whole)
            pid = files.writer_pid(d)
            runs.warnings.append(f"run {d.name} is still running (pid {pid}): this report has the cases it has "
                                 "finished so far" if pid else f"run {d.name} says running, but no process "
                                 f"writes it (it was killed): resume it with python -m harness run --resume {d.name}")
    name = "+".join(d.name for d in dirs)
    out = out_root / name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    page = Page(name, runs)
    # claims, findings and the size figures compare one plain layer; stacks and lengths have their own figures
    flat = {**runs.tables, "timings": plain(runs.tables["timings"])}
    ratios = claims.cost_ratios(flat["timings"], runs.tables["rounds"])
    parts = [df for df in (runs.tables["breakdown"], profiler.time_breakdown(dirs)) if df is not None]
    breakdown = pd.concat(parts, ignore_index=True) if parts else None    # the sweep's passes, and traces
    rr = findings.run_ratios(runs.tables["timings"], runs.tables["rounds"], runs.ids)
    layer_costs = costs.layer_costs(runs.tables["timings"], runs.tables["rounds"])
    lengths_costs = costs.lengths_costs(runs.tables["timings"], runs.tables["rounds"])
    compile_costs = costs.compile_costs(runs.tables["timings"], runs.tables["rounds"])
    inputs = {**flat, "ratios": ratios, "breakdown": breakdown, "layer_costs": layer_costs,
              "lengths_costs": lengths_costs}
    rates = learning.success_rates(runs.tables["training"])
    by_radius = learning.decay_by_radius(runs.tables["decay"])
    forget = learning.forget_summary(runs.tables["dynamics"])
    for stem, (fn, needs) in plots.FIGURES.items():
        try:
            fig = fn(*(inputs[n] for n in needs))
        except Exception as exc:  # noqa: BLE001 -- one broken figure must not lose the report
            if strict:
                raise
            runs.warnings.append(f"figure {stem}: not drawn ({type(exc).__name__}: {exc})")
            fig = None
        if fig is None:
            page.not_drawn.append(f"{stem}: no data in this run (it needs {plots.NEEDS.get(stem, 'its tables')})")
            continue
        for ext in ("png", "svg"):
            fig.savefig(out / "figures" / f"{stem}.{ext}", dpi=110, bbox_inches="tight")
        plots.plt.close(fig)
        page.figures.append((stem, (fn.__doc__ or stem).strip().splitlines()[0]))
    page.found = findings.findings(flat, ratios, breakdown, rr, compile_costs)
    page.claims = claims.claims(flat, ratios)
    claims_df = pd.DataFrame([{"key": c.key, "claim": c.claim, "quote_zh": c.statement.quote_zh,
                               "quote_en": c.statement.quote_en, "measured": c.statement.measured,
                               "verdict": c.verdict, "evidence": c.evidence, "rule": c.rule} for c in page.claims])
    claims_df.to_csv(out / "claims.csv", index=False)
    summ = summary(runs.tables["timings"])
    summ.to_csv(out / "summary.csv", index=False)
    fits = findings.scaling(flat["timings"])
    (fits if fits is not None else pd.DataFrame()).to_csv(out / "scaling.csv", index=False)
    for table, file in ((rr, "run_ratios.csv"), (layer_costs, "layer_costs.csv"), (lengths_costs, "lengths_costs.csv"),
                        (compile_costs, "compile_costs.csv"),
                        (rates, "success_rates.csv"), (by_radius, "decay_by_radius.csv"),
                        (forget, "dynamics_summary.csv")):
        if table is not None:
            table.to_csv(out / file, index=False)
    noisy = noisy_groups(runs.tables["timings"])
    if not noisy.empty:
        runs.warnings.append(f"{len(noisy)} comparison groups were measured with more than "
                             f"{100 * env.NOISY_STEAL:g}% CPU steal (noisy in timings.csv): see 'Noisy groups'")
    ops = profiler.top_ops_table(dirs)
    page.tables = [
        ("summary", "Summary", "Medians over each implementation's cases (summary.csv has them unrounded).",
         summary_view(summ), False),
        ("scaling", "Scaling", "Exponents of time against each size, by log-log least squares over the sizes "
         "measured (time ~ hidden^a seq_len^b batch^c); an exponent of 1 is linear (scaling.csv).",
         scaling_view(fits), False),
        *([("compile", "Compilers: compile time against the steady speed-up", "Each compiled case against the eager "
            "implementations its comparison group timed: compile = its first call less a steady one; speed-up = "
            "their step over its step, with a paired 95% bootstrap interval; break-even = compile / (their step - "
            "its step) steps, where the interval's lower bound is above 1, else never (compile_costs.csv).",
            compile_view(compile_costs), False)] if compile_costs is not None else []),
        *([("run-ratios", "Between runs", f"Each case both runs timed: time in the run over time in the base run "
            f"({runs.ids[0]}), with a 95% bootstrap interval over their rounds (run_ratios.csv).",
            run_ratio_view(rr), True)] if len(runs.ids) > 1 else []),
        *([("classics", "Long-range tasks: solved across seeds", f"Rule: {learning.SOLVED_RULE}. Each seed is one "
            "training run (success_rates.csv).", learning.success_view(rates), False)] if rates is not None else []),
        *([("edge", "Vanishing or exploding: decay factor against spectral radius", "The per-step decay factor of "
            "||dL/dx_t|| with every recurrent gate block rescaled to spectral radius rho, mean and 95% t interval over "
            "seeds (decay_by_radius.csv). Below 1 the gradient vanishes with distance, above 1 it explodes; a linear "
            "RNN's factor is rho.", learning.radius_view(by_radius), False)] if by_radius is not None else []),
        *([("dynamics", "Inside the network while it learns", "The one-step Jacobian's largest singular value (power "
            "iteration on autograd's products; s = h, or (h, c) for an LSTM) and the LSTM's forget gate, averaged "
            "over the measured steps and the seeds, at the start, middle and end of training (dynamics.csv, "
            "dynamics_summary.csv).", learning.forget_view(forget), False)] if forget is not None else []),
        ("environment", "Environment", "", environment_table(runs), False),
        ("not-ok", "Skipped and failed cases", "One row per reason, with how many cases and one of them.",
         not_ok(runs), False),
        ("noisy", "Noisy groups", f"Comparison groups measured while the hypervisor took more than "
         f"{100 * env.NOISY_STEAL:g}% of the CPU (steal time, /proc/stat); their ratios are less trustworthy.",
         noisy, False),
        ("top-ops", "Top profiler ops", "By self time, per profiled case." if ops is not None else
         "No profiles in these runs (make profile).", ops, True),
    ]
    _write_html(out, page)
    _write_md(out, page)
    if not quiet:
        for w in runs.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return out


def _claim_cell(c: claims.Claim) -> str:
    st = c.statement
    return (f"<strong>{html.escape(c.claim)}</strong><br><q lang=\"zh\" class=\"zh\">{html.escape(st.quote_zh)}</q>"
            f"<br><q>{html.escape(st.quote_en)}</q><br><span class=\"measured\">measured: "
            f"{html.escape(st.measured)}</span>")


def _write_html(out: Path, page: Page) -> None:
    runs = page.runs
    found = ("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in page.found) + "</ul>" if page.found
             else "<p><em>These runs have no ok rows to report on.</em></p>")
    rows = "\n".join(
        f'<tr><td>{_claim_cell(c)}</td><td class="{c.verdict.replace(" ", "-")}">{c.verdict}</td>'
        f"<td>{html.escape(c.evidence)}</td><td>{html.escape(c.rule)}</td></tr>" for c in page.claims)
    figs = "\n".join(f'<figure><img src="figures/{s}.png" alt="{html.escape(cap)}">'
                      f"<figcaption>{html.escape(cap)} (<a href=\"figures/{s}.svg\">svg</a>)</figcaption></figure>"
                      for s, cap in page.figures)
    figs += "".join(f'<p class="not-drawn">{html.escape(n)}</p>' for n in page.not_drawn)
    tabs = "\n".join(f'<h2>{html.escape(title)}</h2>\n{f"<p>{html.escape(intro)}</p>" if intro else ""}\n'
                      + (df_html(df, tid, tall) if df is not None else "")
                      for tid, title, intro, df, tall in page.tables)
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in runs.warnings)
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lstm-bench report {html.escape(page.name)}</title>
<style>{CSS}</style></head><body>
<h1>lstm-bench report</h1>
<p>Runs: {", ".join(html.escape(i) for i in runs.ids)}. Every sentence and verdict below is computed from these
runs' data; each verdict by the rule beside it.</p>
<section id="findings"><h2>What this run found</h2>
{found}
</section>
<h2>The tutorial's claims</h2>
<p>Each claim as the tutorial (../shared/seed/) states it, in its words and in English; verdicts are supported,
partly supported, contradicted, inconclusive (the intervals straddle the rule's decision point) or not measured.</p>
<div class="scroll"><table id="claims" class="claims"><colgroup><col class="claim"><col class="verdict">
<col class="evidence"><col class="rule"></colgroup>
<tr><th>claim</th><th>verdict</th><th>evidence</th><th>rule</th></tr>
{rows}
</table></div>
<h2>Figures</h2>
{figs}
{tabs}
{"<h2>Warnings</h2><ul>" + warn + "</ul>" if warn else ""}
</body></html>
"""
    (out / "index.html").write_text(text)


def _write_md(out: Path, page: Page) -> None:
    runs = page.runs
    parts = [f"# lstm-bench report\n\nRuns: {', '.join(runs.ids)}. Every sentence and verdict is computed from the "
             "data; each verdict by the rule beside it.\n", "## What this run found\n"]
    parts += [f"- {f}" for f in page.found] or ["_No ok rows._"]
    parts += ["", "## The tutorial's claims\n"]
    for c in page.claims:
        st = c.statement
        parts += [f"### {c.claim}: **{c.verdict}**\n", f"> {st.quote_zh}\n>\n> {st.quote_en}\n",
                  f"- measured: {st.measured}", f"- evidence: {c.evidence}", f"- rule: {c.rule}", ""]
    parts += ["## Figures\n"]
    parts += [f"![{cap}](figures/{s}.png)\n\n_{cap}_\n" for s, cap in page.figures]
    parts += [f"- {n}" for n in page.not_drawn] + [""]
    for _, title, intro, df, _ in page.tables:
        parts += [f"## {title}\n"] + ([intro + "\n"] if intro else []) + ([df_md(df)] if df is not None else [])
    if runs.warnings:
        parts += ["## Warnings\n"] + [f"- {w}\n" for w in runs.warnings]
    (out / "report.md").write_text("\n".join(parts))
