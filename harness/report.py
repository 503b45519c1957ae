"""make report: the tidy tables of one or more runs -> figures, verdicts, HTML and Markdown.

    python -m harness report                  # results/latest
    python -m harness report RUN_A,RUN_B      # one report over several runs (a CPU and a GPU run, say)

writes reports/<name>/: index.html (self-contained: no network, no scripts,
images beside it), report.md, figures/*.png and *.svg, summary.csv and
claims.csv. A run with only some sections still gets a report; figures and
claims without data say so.

Rows of several runs are told apart by their environment: every figure panels
by `device_label` ("cpu: AMD EPYC @ host"), so the same device type on two
machines never mixes.
"""
from __future__ import annotations

import csv
import html
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import env, plots
from harness.cli import UsageError

REPORTS = env.REPO / "reports"
TABLES = {"timings": "timings.csv", "gradients": "gradients.csv", "decay": "decay.csv", "training": "training.csv"}
NUMERIC = ["batch", "seq_len", "hidden", "input", "layers", "rounds", "time_median_s", "time_iqr_s", "time_min_s",
           "tokens_per_s", "flops", "gflops_per_s", "gemm_peak_gflops_per_s", "peak_fraction", "peak_mem_bytes",
           "params", "threads", "seed", "step", "distance", "grad_norm", "decay_factor", "decay_ci_low",
           "decay_ci_high", "vanish_distance", "train_loss", "eval_loss", "baseline_loss", "eval_accuracy", "wall_s",
           "train_step", "forget_bias", "seeds"]
LEARNED = 0.5     # claim (c): a model "learned" the task when its final held-out loss < LEARNED * baseline


# -- reading runs ------------------------------------------------------------------------------
def read_table(path: Path, warnings: list[str]) -> pd.DataFrame | None:
    """A CSV, skipping (and naming) lines that are broken: wrong field count or undecodable."""
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        warnings.append(f"{path}: cannot read ({exc})")
        return None
    lines = text.splitlines()
    if not lines:
        warnings.append(f"{path}: empty file")
        return None
    header = next(csv.reader([lines[0]]))
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line]))
        except csv.Error as exc:
            warnings.append(f"{path}:{n}: skipped a broken line ({exc})")
            continue
        if len(fields) != len(header) or "\ufffd" in line:
            warnings.append(f"{path}:{n}: skipped a broken line ({len(fields)} fields, expected {len(header)})")
            continue
        rows.append(fields)
    df = pd.DataFrame(rows, columns=header)
    for col in NUMERIC:
        if col in df:
            df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce")
    return df


@dataclass
class Runs:
    ids: list[str]
    meta: list[dict]
    tables: dict[str, pd.DataFrame | None]
    warnings: list[str]


def resolve_runs(spec: str, results: Path) -> list[Path]:
    dirs = []
    for run_id in [s.strip() for s in spec.split(",") if s.strip()]:
        d = results / run_id
        if not (d / "run.json").is_file() and not any((d / f).is_file() for f in TABLES.values()):
            known = sorted(p.name for p in results.iterdir() if (p / "run.json").is_file()) if results.is_dir() else []
            raise UsageError(f"unknown run id {run_id!r} in {results}; newest runs: {', '.join(known[-5:]) or 'none'}")
        dirs.append(d.resolve())
    if not dirs:
        raise UsageError("report: give a run id, a comma-separated list of them, or latest")
    return dirs


def load_runs(dirs: list[Path]) -> Runs:
    warnings: list[str] = []
    metas, frames = [], {k: [] for k in TABLES}
    for d in dirs:
        try:
            meta = json.loads((d / "run.json").read_text())
        except (OSError, ValueError) as exc:
            warnings.append(f"{d / 'run.json'}: unreadable ({exc}); environment unknown")
            meta = {"run_id": d.name, "status": "unknown", "environment": {}}
        metas.append(meta)
        envd = meta.get("environment", {})
        for key, name in TABLES.items():
            df = read_table(d / name, warnings)
            if df is None or df.empty:
                continue
            df["run_id"] = df["run_id"].replace("", d.name) if "run_id" in df else d.name
            df["host"] = envd.get("host", "?")
            if "device_name" not in df:
                df["device_name"] = [envd.get("gpu") if str(dev).startswith("cuda") else envd.get("cpu_model")
                                     for dev in df.get("device", ["cpu"] * len(df))]
            if "device" in df:
                df["device_label"] = df["device"].astype(str) + ": " + df["device_name"].fillna("?").astype(str) \
                    + " @ " + df["host"].astype(str)
            frames[key].append(df)
    tables = {k: (pd.concat(v, ignore_index=True) if v else None) for k, v in frames.items()}
    return Runs([m.get("run_id", d.name) for m, d in zip(metas, dirs, strict=True)], metas, tables, warnings)


# -- derived tables -----------------------------------------------------------------------------
def cost_ratios(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """LSTM/RNN ratios at equal sizes: train-step time per backend pair, and parameters."""
    if timings is None:
        return None
    t = timings[(timings["status"] == "ok")]
    if t.empty:
        return None
    keys = ["device_label", "dtype", "phase", "hidden", "input", "batch", "seq_len"]
    out = []
    rnn_pairs = {"scratch-rnn": ["scratch-lstm"], "torch-rnn": ["torch-lstm", "onednn-lstm", "cudnn-lstm"]}
    for rnn, lstms in rnn_pairs.items():
        r = t[t["impl"] == rnn].set_index(keys)
        for lstm in lstms:
            lt = t[t["impl"] == lstm].set_index(keys)
            j = pd.merge(lt, r, left_index=True, right_index=True, suffixes=("_lstm", "_rnn"))
            if j.empty:
                continue
            same_backend = j["backend_lstm"] == j["backend_rnn"]
            j = j[same_backend]          # e.g. torch-lstm (native) with torch-rnn (native) on CPU
            for k, row in j.iterrows():
                d = dict(zip(keys, k, strict=True))
                if d["phase"] == "train":
                    out.append({**d, "pair": f"time {lstm}/{rnn}", "kind": "time",
                                "ratio": row["time_median_s_lstm"] / row["time_median_s_rnn"]})
                out.append({**d, "pair": "params LSTM/RNN", "kind": "params",
                            "ratio": row["params_lstm"] / row["params_rnn"]})
    if not out:
        return None
    return pd.DataFrame(out).drop_duplicates()


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


# -- the tutorial's claims ----------------------------------------------------------------------
@dataclass
class Claim:
    key: str
    claim: str
    verdict: str          # supported | contradicted | not measured
    evidence: str
    rule: str


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def claim_a(decay: pd.DataFrame | None) -> Claim:
    rule = ("supported when most RNN configurations (gradients sections, wrt x) have a decay interval entirely "
            "below 1 and fall below 1e-3 of the distance-0 norm within T; else contradicted")
    text = "(a) A vanilla RNN's gradient vanishes with distance"
    d = None if decay is None else decay[(decay["cell"] == "rnn") & (decay["wrt"] == "x") &
                                         (decay["task"].fillna("") == "") & (decay["status"] == "ok")]
    if d is None or d.empty:
        return Claim("a", text, "not measured", "no RNN gradient configurations in this run", rule)
    upper = d["decay_ci_high"].fillna(d["decay_factor"])
    vanish = (upper < 1) & d["vanishes_within_T"].astype(str).eq("True")
    n, k = len(d), int(vanish.sum())
    ev = (f"{k} of {n} RNN configurations vanish; per-step factor median {_fmt(d['decay_factor'].median())} "
          f"(range {_fmt(d['decay_factor'].min())}–{_fmt(d['decay_factor'].max())}); "
          f"below 1e-3 by distance {_fmt(d['vanish_distance'].median())} (median)")
    return Claim("a", text, "supported" if k > n / 2 else "contradicted", ev, rule)


def claim_b(decay: pd.DataFrame | None) -> Claim:
    rule = ("supported when most LSTM configurations keep their gradient above 1e-3 of its distance-0 value over "
            "the whole sequence; else contradicted. Evidence compares with RNNs of the same size and init")
    text = "(b) The LSTM's memory cell and gates keep long-range gradients"
    d = None if decay is None else decay[(decay["wrt"] == "x") & (decay["task"].fillna("") == "") &
                                         (decay["status"] == "ok")]
    if d is None or d[d["cell"] == "lstm"].empty:
        return Claim("b", text, "not measured", "no LSTM gradient configurations in this run", rule)
    lstm, rnn = d[d["cell"] == "lstm"], d[d["cell"] == "rnn"]
    kept = ~lstm["vanishes_within_T"].astype(str).eq("True")
    n, k = len(lstm), int(kept.sum())
    ev = f"{k} of {n} LSTM configurations keep the gradient over T; per-step factor median " \
         f"{_fmt(lstm['decay_factor'].median())}"
    by_fb = lstm.groupby("forget_bias")["decay_factor"].median()
    if len(by_fb) > 1:
        ev += " (" + ", ".join(f"forget_bias {fb:g}: {_fmt(v)}" for fb, v in by_fb.items()) + ")"
    if not rnn.empty:
        ev += f" vs RNN {_fmt(rnn['decay_factor'].median())}"
        far = lstm["vanish_distance"].fillna(lstm["seq_len"]).median()
        ev += f"; LSTM reaches 1e-3 at distance {_fmt(far)} (median; T where never) vs RNN " \
              f"{_fmt(rnn['vanish_distance'].fillna(rnn['seq_len']).median())}"
    return Claim("b", text, "supported" if k > n / 2 else "contradicted", ev, rule)


def final_losses(training: pd.DataFrame | None) -> pd.DataFrame | None:
    if training is None:
        return None
    t = training[training["status"] == "ok"].dropna(subset=["eval_loss"])
    if t.empty:
        return None
    keys = ["run_id", "task", "impl", "cell", "hidden", "seq_len", "forget_bias", "seed", "lr", "batch"]
    keys = [k for k in keys if k in t]
    t = t.assign(forget_bias=t["forget_bias"].fillna(-1))
    last = t.sort_values("step").groupby(keys, as_index=False, dropna=False).last()
    return last.assign(learned=last["eval_loss"] < LEARNED * last["baseline_loss"])


def claim_c(training: pd.DataFrame | None) -> Claim:
    rule = (f"a model learned a task when its final held-out loss is below {LEARNED} x the baseline. Supported "
            "when, for some task and seq_len, an LSTM learned it and no RNN did; contradicted when an RNN learned "
            "every one an LSTM learned, or no LSTM learned any")
    text = "(c) An LSTM learns a long-range dependency that an RNN cannot"
    last = final_losses(training)
    if last is None or not {"lstm", "rnn"} <= set(last["cell"]):
        return Claim("c", text, "not measured", "needs task runs of both an LSTM and an RNN", rule)
    parts, wins = [], 0
    for (task, T), g in last.groupby(["task", "seq_len"]):
        lstm, rnn = g[g["cell"] == "lstm"], g[g["cell"] == "rnn"]
        if lstm.empty or rnn.empty:
            continue
        base = g["baseline_loss"].iloc[0]
        lw, rw = bool(lstm["learned"].any()), bool(rnn["learned"].any())
        wins += lw and not rw
        parts.append(f"{task} T={int(T)}: best LSTM {_fmt(lstm['eval_loss'].min() / base)}x baseline, "
                     f"best RNN {_fmt(rnn['eval_loss'].min() / base)}x")
    if not parts:
        return Claim("c", text, "not measured", "no task and seq_len with both an LSTM and an RNN", rule)
    return Claim("c", text, "supported" if wins else "contradicted", "; ".join(parts), rule)


def claim_d(ratios: pd.DataFrame | None) -> Claim:
    rule = "supported when every LSTM/RNN parameter ratio at equal (input, hidden) is exactly 4; else contradicted"
    text = "(d) An LSTM has 4x the recurrent parameters of an RNN"
    r = None if ratios is None else ratios[ratios["kind"] == "params"]
    if r is None or r.empty:
        return Claim("d", text, "not measured", "needs throughput rows of an LSTM and an RNN at equal sizes", rule)
    vals = sorted(set(r["ratio"].round(12)))
    exact = all(v == 4.0 for v in vals)
    sizes = sorted(set(zip(r["input"].astype(int), r["hidden"].astype(int), strict=True)))
    ev = f"ratio {', '.join(_fmt(v) for v in vals)} at (input, hidden) in {sizes[:6]}" + (" ..." if len(sizes) > 6
                                                                                          else "")
    return Claim("d", text, "supported" if exact else "contradicted", ev, rule)


def claim_e(ratios: pd.DataFrame | None) -> Claim:
    rule = ("supported when the median LSTM/RNN train-step time ratio, at equal sizes and the same backend, "
            "is above 1; else contradicted")
    text = "(e) An LSTM trains more slowly than an RNN (and by how much)"
    r = None if ratios is None else ratios[ratios["kind"] == "time"]
    if r is None or r.empty:
        return Claim("e", text, "not measured", "needs train-phase rows of an LSTM and an RNN on one backend", rule)
    med = r["ratio"].median()
    per = r.groupby("pair")["ratio"].median()
    ev = f"median {_fmt(med)}x slower over {len(r)} sizes (range {_fmt(r['ratio'].min())}–{_fmt(r['ratio'].max())}); " \
         + ", ".join(f"{p}: {_fmt(v)}x" for p, v in per.items())
    return Claim("e", text, "supported" if med > 1 else "contradicted", ev, rule)


def claim_f(timings: pd.DataFrame | None) -> Claim:
    rule = ("speed-up = time(scratch-lstm) / time(kernel) at equal sizes, per kernel. Supported when every "
            "library kernel measured has a median speed-up above 1; else contradicted")
    text = "(f) nn.LSTM and the vendor kernels are faster than the scratch LSTM (by how much)"
    t = None if timings is None else timings[timings["status"] == "ok"]
    if t is None or "scratch-lstm" not in set(t["impl"]):
        return Claim("f", text, "not measured", "needs scratch-lstm timings", rule)
    keys = ["device_label", "dtype", "phase", "hidden", "input", "batch", "seq_len"]
    s = t[t["impl"] == "scratch-lstm"].set_index(keys)["time_median_s"].rename("scratch")
    parts, meds = [], []
    for kernel in ("torch-lstm", "onednn-lstm", "cudnn-lstm", "fused-lstm", "bptt-lstm"):
        k = t[t["impl"] == kernel].join(s, on=keys).dropna(subset=["scratch"])
        if k.empty:
            continue
        sp = k["scratch"] / k["time_median_s"]
        if kernel not in ("fused-lstm", "bptt-lstm"):             # from scratch: evidence, not the claim
            meds.append(sp.median())
        by_phase = ", ".join(f"{ph} {_fmt(v)}x" for ph, v in sp.groupby(k["phase"]).median().items())
        parts.append(f"{kernel}: median {_fmt(sp.median())}x ({by_phase}; range {_fmt(sp.min())}–{_fmt(sp.max())})")
    if not meds:
        return Claim("f", text, "not measured", "needs a library kernel timed beside scratch-lstm", rule)
    return Claim("f", text, "supported" if all(m > 1 for m in meds) else "contradicted", "; ".join(parts), rule)


def claims(runs: Runs, ratios: pd.DataFrame | None) -> list[Claim]:
    t = runs.tables
    return [claim_a(t["decay"]), claim_b(t["decay"]), claim_c(t["training"]), claim_d(ratios), claim_e(ratios),
            claim_f(t["timings"])]


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


def environment_table(runs: Runs) -> pd.DataFrame:
    rows = []
    for m in runs.meta:
        e, g = m.get("environment", {}), m.get("git", {})
        peaks = "; ".join(f"{p['device']} {p['dtype']}: {p['gemm_peak_gflops_per_s']:.0f} GFLOP/s"
                          for p in m.get("gemm_peaks", []))
        rows.append({"run_id": m.get("run_id"), "status": m.get("status"), "scenario":
                     m.get("scenario", {}).get("name"), "host": e.get("host"), "cpu": e.get("cpu_model"),
                     "threads": e.get("threads"), "gpu": e.get("gpu"), "torch": e.get("torch"),
                     "cuda": e.get("cuda"), "cudnn": e.get("cudnn"), "onednn": e.get("onednn"),
                     "python": e.get("python"), "commit": (g.get("commit") or "")[:12] + ("+dirty" if g.get("dirty")
                                                                                          else ""),
                     "started_utc": m.get("started_utc"), "gemm_peak": peaks})
    return pd.DataFrame(rows)


def top_ops(dirs: list[Path], limit: int = 10) -> pd.DataFrame | None:
    """Top ops by self time per profiled case, read from trace files (when profiles exist)."""
    try:
        from harness import profiles
    except ImportError:
        return None
    return profiles.top_ops_table(dirs, limit)


# -- rendering ----------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.85em}th,td{border:1px solid #ccc;
padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
.supported{color:#0a6b2d;font-weight:bold}.contradicted{color:#a31515;font-weight:bold}
.not-measured{color:#777;font-style:italic}figure{margin:2em 0}figcaption{color:#555;font-size:.9em}"""


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


def render(spec: str, results: Path = None, out_root: Path = None, quiet: bool = False) -> Path:
    results = results or (env.REPO / "results")
    out_root = out_root or REPORTS
    dirs = resolve_runs(spec, results)
    runs = load_runs(dirs)
    name = "+".join(d.name for d in dirs)
    out = out_root / name
    (out / "figures").mkdir(parents=True, exist_ok=True)
    ratios = cost_ratios(runs.tables["timings"])
    inputs = {**runs.tables, "ratios": ratios}
    figures = []
    for stem, (fn, needs) in plots.FIGURES.items():
        try:
            fig = fn(*(inputs[n] for n in needs))
        except Exception as exc:  # noqa: BLE001 -- one broken figure must not lose the report
            runs.warnings.append(f"figure {stem}: not drawn ({type(exc).__name__}: {exc})")
            fig = None
        if fig is None:
            continue
        for ext in ("png", "svg"):
            fig.savefig(out / "figures" / f"{stem}.{ext}", dpi=110, bbox_inches="tight")
        plots.plt.close(fig)
        figures.append((stem, (fn.__doc__ or stem).strip().splitlines()[0]))
    cl = claims(runs, ratios)
    claims_df = pd.DataFrame([{"claim": c.claim, "verdict": c.verdict, "evidence": c.evidence, "rule": c.rule}
                              for c in cl])
    claims_df.to_csv(out / "claims.csv", index=False)
    summ = summary(runs.tables["timings"])
    summ.to_csv(out / "summary.csv", index=False)
    envt, bad, ops = environment_table(runs), not_ok(runs), top_ops(dirs)
    _write_html(out, name, runs, figures, cl, envt, bad, summ, ops)
    _write_md(out, name, runs, figures, claims_df, envt, bad, summ, ops)
    if not quiet:
        for w in runs.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return out


def _write_html(out, name, runs, figures, cl, envt, bad, summ, ops) -> None:
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
<h2>Top profiler ops</h2>
{df_html(ops, "top-ops") if ops is not None else "<p><em>No profiles in these runs (make profile).</em></p>"}
{"<h2>Warnings</h2><ul>" + warn + "</ul>" if warn else ""}
</body></html>
"""
    (out / "index.html").write_text(page)


def _write_md(out, name, runs, figures, claims_df, envt, bad, summ, ops) -> None:
    parts = [f"# lstm-bench report\n\nRuns: {', '.join(runs.ids)}. Every verdict is computed from the data by the "
             "rule beside it.\n", "## The tutorial's claims\n", df_md(claims_df), "## Figures\n"]
    parts += [f"![{cap}](figures/{s}.png)\n\n_{cap}_\n" for s, cap in figures] or ["_No figure._\n"]
    parts += ["## Summary\n", df_md(summ), "## Environment\n", df_md(envt), "## Skipped and failed cases\n",
              df_md(bad), "## Top profiler ops\n", df_md(ops) if ops is not None else "_No profiles._\n"]
    if runs.warnings:
        parts += ["## Warnings\n"] + [f"- {w}\n" for w in runs.warnings]
    (out / "report.md").write_text("\n".join(parts))


def cmd_report(args) -> int:
    results = Path(args.results)
    spec = args.run
    if spec == "latest" and not (results / "latest").exists():
        raise UsageError(f"no runs in {results} yet: run one first (make bench)")
    out = render(spec, results, Path(args.out))
    print(f"report: {out / 'index.html'}")
    return 0


def add_commands(sub) -> None:
    import argparse

    p = sub.add_parser("report", help="render plots and an HTML report of one or more runs (make report)",
                       epilog="examples:\n  python -m harness report\n  python -m harness report RUN_A,RUN_B",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default="latest", help="run id, comma-separated run ids, or latest")
    p.add_argument("--results", default=str(env.REPO / "results"))
    p.add_argument("--out", default=str(REPORTS), help="reports directory (default: reports/)")
    p.set_defaults(func=cmd_report)

