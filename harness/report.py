"""make report: a run's tables -> figures, the claims' verdicts, HTML and Markdown.

    python -m harness report                  # results/latest
    python -m harness report RUN_A,RUN_B      # one report over several runs (a CPU and a GPU run, say)

writes reports/<name>/: index.html (self-contained: no network, no scripts,
images beside it), report.md, figures/*.png and *.svg, summary.csv and
claims.csv. A run with only some sections still gets a report; figures and
claims without data say so. The verdicts come from harness/claims.py, the
figures from harness/plots.py; this module lays them out.
"""
from __future__ import annotations

import html
import math
import sys
from pathlib import Path

import pandas as pd

from harness import claims, env, plots, profiler, store
from harness.tables import TABLES, Runs, load_runs


# -- the report's own tables ------------------------------------------------------------------------
def summary(timings: pd.DataFrame | None) -> pd.DataFrame:
    if timings is None:
        return pd.DataFrame()
    t = timings
    ok = t[t["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame()
    g = ok.groupby(["device_label", "dtype", "phase", "impl", "backend"], as_index=False)
    s = g.agg(cases=("time_median_s", "size"), median_time_s=("time_median_s", "median"),
              median_tokens_per_s=("tokens_per_s", "median"), median_peak_fraction=("peak_fraction", "median"),
              max_peak_fraction=("peak_fraction", "max"), median_peak_mem_bytes=("peak_mem_bytes", "median"))
    return s


def not_ok(runs: Runs) -> pd.DataFrame:
    parts = []
    for key, cols in [("timings", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "phase"]),
                      ("decay", ["impl", "device", "dtype", "batch", "seq_len", "hidden", "init"]),
                      ("training", ["task", "impl", "device", "dtype", "seq_len", "hidden"])]:
        df = runs.tables[key]
        if df is None or "status" not in df:
            continue
        bad = df[df["status"].isin(["skipped", "failed", "oom"])]   # not: nan, underflow, no_fit (measurements)
        if bad.empty:
            continue
        cols = [c for c in cols if c in bad]
        b = bad[["run_id"] + cols + ["status", "reason"] if "reason" in bad else ["run_id"] + cols + ["status"]]
        b = b.assign(table=TABLES[key], case=b[cols].astype(str).agg(" ".join, axis=1))
        parts.append(b[["table", "run_id", "case", "status"] + (["reason"] if "reason" in b else [])])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["table", "run_id", "case",
                                                                                     "status", "reason"])


def noisy_groups(timings: pd.DataFrame | None) -> pd.DataFrame:
    """The comparison groups measured with more CPU steal than env.NOISY_STEAL (flagged `noisy`)."""
    if timings is None or "noisy" not in timings:
        return pd.DataFrame()
    t = timings[timings["noisy"].astype(str) == "True"]
    if t.empty:
        return pd.DataFrame()
    g = t.groupby(["run_id", "group_id", "device_label", "phase", "hidden", "batch", "seq_len"], as_index=False)
    return g.agg(members=("impl", "size"), steal_fraction=("steal_fraction", "max"), load_avg=("load_avg", "max"))


def environment_table(runs: Runs) -> pd.DataFrame:
    rows = []
    for m in runs.meta:
        e = m.environment
        peaks = "; ".join(f"{p.device} {p.dtype}: {p.gemm_peak_gflops_per_s:.0f} GFLOP/s" for p in m.gemm_peaks)
        rows.append({"run_id": m.run_id, "status": m.status, "scenario": m.scenario.get("name"),
                     "host": e.get("host"), "cpu": e.get("cpu_model"), "threads": e.get("threads"),
                     "gpu": e.get("gpu"), "torch": e.get("torch"), "cuda": e.get("cuda"), "cudnn": e.get("cudnn"),
                     "onednn": e.get("onednn"), "python": e.get("python"),
                     "commit": m.git.commit[:12] + ("+dirty" if m.git.dirty else ""),
                     "harness": m.harness_version, "started_utc": m.started_utc, "gemm_peak": peaks})
    return pd.DataFrame(rows)


# -- rendering ----------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.85em}th,td{border:1px solid #ccc;
padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
.supported{color:#0a6b2d;font-weight:bold}.contradicted{color:#a31515;font-weight:bold}
.not-measured{color:#777;font-style:italic}
.no-measurable-difference{color:#8a5a00;font-weight:bold}figure{margin:2em 0}figcaption{color:#555;font-size:.9em}"""


def df_html(df: pd.DataFrame, table_id: str = "") -> str:
    if df is None or df.empty:
        return "<p><em>none</em></p>"
    out = [f'<table id="{table_id}">' if table_id else "<table>", "<tr>"]
    out += [f"<th>{html.escape(str(c))}</th>" for c in df.columns] + ["</tr>"]
    for _, row in df.iterrows():
        out.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def df_md(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_none_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def render(spec: str, results: Path = env.RESULTS, out_root: Path = env.REPORTS, quiet: bool = False,
           strict: bool = False) -> Path:
    """The report of the runs in `spec` (a run id, several comma-separated, or latest) under out_root/<name>/.

    A figure that raises is left out and named in the report's warnings, so one broken figure does
    not lose the report; with `strict` (the tests' mode) it raises instead."""
    dirs = store.find_runs(results, spec)
    runs = load_runs(dirs)
    name = "+".join(d.name for d in dirs)
    out = out_root / name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    ratios = claims.cost_ratios(runs.tables["timings"], runs.tables["rounds"])
    inputs = {**runs.tables, "ratios": ratios}
    figures = []
    for stem, (fn, needs) in plots.FIGURES.items():
        try:
            fig = fn(*(inputs[n] for n in needs))
        except Exception as exc:  # noqa: BLE001 -- one broken figure must not lose the report
            if strict:
                raise
            runs.warnings.append(f"figure {stem}: not drawn ({type(exc).__name__}: {exc})")
            fig = None
        if fig is None:
            continue
        for ext in ("png", "svg"):
            fig.savefig(out / "figures" / f"{stem}.{ext}", dpi=110, bbox_inches="tight")
        plots.plt.close(fig)
        figures.append((stem, (fn.__doc__ or stem).strip().splitlines()[0]))
    cl = claims.claims(runs.tables, ratios)
    claims_df = pd.DataFrame([{"claim": c.claim, "verdict": c.verdict, "evidence": c.evidence, "rule": c.rule}
                              for c in cl])
    claims_df.to_csv(out / "claims.csv", index=False)
    summ = summary(runs.tables["timings"])
    summ.to_csv(out / "summary.csv", index=False)
    envt, bad, ops = environment_table(runs), not_ok(runs), profiler.top_ops_table(dirs)
    noisy = noisy_groups(runs.tables["timings"])
    if not noisy.empty:
        runs.warnings.append(f"{len(noisy)} comparison groups were measured with more than "
                             f"{100 * env.NOISY_STEAL:g}% CPU steal (noisy in timings.csv): see 'Noisy groups'")
    _write_html(out, name, runs, figures, cl, envt, bad, summ, ops, noisy)
    _write_md(out, name, runs, figures, claims_df, envt, bad, summ, ops, noisy)
    if not quiet:
        for w in runs.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return out


def _write_html(out, name, runs, figures, cl, envt, bad, summ, ops, noisy) -> None:
    rows = "\n".join(
        f'<tr><td>{html.escape(c.claim)}</td><td class="{c.verdict.replace(" ", "-")}">{c.verdict}</td>'
        f"<td>{html.escape(c.evidence)}</td><td>{html.escape(c.rule)}</td></tr>" for c in cl)
    figs = "\n".join(f'<figure><img src="figures/{s}.png" alt="{html.escape(cap)}">'
                     f"<figcaption>{html.escape(cap)} (<a href=\"figures/{s}.svg\">svg</a>)</figcaption></figure>"
                     for s, cap in figures) or "<p><em>No figure: this run has no ok rows.</em></p>"
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in runs.warnings)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lstm-bench report {html.escape(name)}</title>
<style>{CSS}</style></head><body>
<h1>lstm-bench report</h1>
<p>Runs: {", ".join(html.escape(i) for i in runs.ids)}. Every verdict below is computed from these runs' data by
the rule beside it.</p>
<h2>The tutorial's claims</h2>
<table id="claims"><tr><th>claim</th><th>verdict</th><th>evidence</th><th>rule</th></tr>
{rows}
</table>
<h2>Figures</h2>
{figs}
<h2>Summary</h2>
{df_html(summ, "summary")}
<h2>Environment</h2>
{df_html(envt, "environment")}
<h2>Skipped and failed cases</h2>
{df_html(bad, "not-ok")}
<h2>Noisy groups</h2>
<p>Comparison groups measured while the hypervisor took more than {100 * env.NOISY_STEAL:g}% of the CPU
(steal time, /proc/stat); their ratios are less trustworthy.</p>
{df_html(noisy, "noisy")}
<h2>Top profiler ops</h2>
{df_html(ops, "top-ops") if ops is not None else "<p><em>No profiles in these runs (make profile).</em></p>"}
{"<h2>Warnings</h2><ul>" + warn + "</ul>" if warn else ""}
</body></html>
"""
    (out / "index.html").write_text(page)


def _write_md(out, name, runs, figures, claims_df, envt, bad, summ, ops, noisy) -> None:
    parts = [f"# lstm-bench report\n\nRuns: {', '.join(runs.ids)}. Every verdict is computed from the data by the "
             "rule beside it.\n", "## The tutorial's claims\n", df_md(claims_df), "## Figures\n"]
    parts += [f"![{cap}](figures/{s}.png)\n\n_{cap}_\n" for s, cap in figures] or ["_No figure._\n"]
    parts += ["## Summary\n", df_md(summ), "## Environment\n", df_md(envt), "## Skipped and failed cases\n",
              df_md(bad), "## Noisy groups\n", df_md(noisy), "## Top profiler ops\n",
              df_md(ops) if ops is not None else "_No profiles._\n"]
    if runs.warnings:
        parts += ["## Warnings\n"] + [f"- {w}\n" for w in runs.warnings]
    (out / "report.md").write_text("\n".join(parts))
