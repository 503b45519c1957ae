"""The report page written out: as self-contained HTML (no network, no scripts, images beside it) and as Markdown.

`Page` is everything the report shows, in the order it shows it (render.py fills it in); write_html
and write_md lay it out. A table sits in its own scrolling box, so a wide one never widens the page.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from harness.analysis.claims import Claim
from harness.analysis.quotes import TUTORIAL
from harness.analysis.tables import Runs
from harness.core import units

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
.not-drawn{color:#777;font-size:.9em}#numerics-off td{color:#a31515}"""


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
        self.claims: list[Claim] = []
        self.figures: list[tuple[str, str]] = []      # (file stem, caption)
        self.not_drawn: list[str] = []                # one line per figure without data
        self.tables: list[tuple[str, str, str, pd.DataFrame | None, bool]] = []  # (id, title, intro, table, tall)


def _claim_cell(c: Claim) -> str:
    st = c.statement
    zh = f"<br><q lang=\"zh\" class=\"zh\">{html.escape(st.quote_zh)}</q>" if st.quote_zh else ""
    source = "" if st.source == TUTORIAL else f"<br><span class=\"measured\">source: {html.escape(st.source)}</span>"
    return (f"<strong>{html.escape(c.claim)}</strong>{zh}<br><q>{html.escape(st.quote_en)}</q>{source}<br>"
            f"<span class=\"measured\">measured: {html.escape(st.measured)}</span>")


def write_html(out: Path, page: Page) -> None:
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
<h2>The tutorial's claims, and the paper's</h2>
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


def write_md(out: Path, page: Page) -> None:
    runs = page.runs
    parts = [f"# lstm-bench report\n\nRuns: {', '.join(runs.ids)}. Every sentence and verdict is computed from the "
             "data; each verdict by the rule beside it.\n", "## What this run found\n"]
    parts += [f"- {f}" for f in page.found] or ["_No ok rows._"]
    parts += ["", "## The tutorial's claims, and the paper's\n"]
    for c in page.claims:
        st = c.statement
        quote = f"> {st.quote_zh}\n>\n> {st.quote_en}\n" if st.quote_zh else f"> {st.quote_en}\n"
        parts += [f"### {c.claim}: **{c.verdict}**\n", quote]
        parts += [] if st.source == TUTORIAL else [f"- source: {st.source}"]
        parts += [f"- measured: {st.measured}", f"- evidence: {c.evidence}", f"- rule: {c.rule}", ""]
    parts += ["## Figures\n"]
    parts += [f"![{cap}](figures/{s}.png)\n\n_{cap}_\n" for s, cap in page.figures]
    parts += [f"- {n}" for n in page.not_drawn] + [""]
    for _, title, intro, df, _ in page.tables:
        parts += [f"## {title}\n"] + ([intro + "\n"] if intro else []) + ([df_md(df)] if df is not None else [])
    if runs.warnings:
        parts += ["## Warnings\n"] + [f"- {w}\n" for w in runs.warnings]
    (out / "report.md").write_text("\n".join(parts))
