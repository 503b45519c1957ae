"""make report: from a fixture run, from a timings-only run, files, verdicts, and a real browser."""
import csv
import html
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness import cli
from harness.analysis import claims, findings, learning, quotes, ratios, summary, tables
from harness.config import scenario
from harness.core import intervals
from harness.report import figures, views
from harness.report.render import render
from harness.run import sweep
from harness.store.runs import find_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    a, _ = sweep.run_sweep(scenario.load("smoke"), root / "results", quiet=True)
    b, _ = sweep.run_sweep(scenario.load("smoke"), root / "results", quiet=True)
    return root, a, b


@pytest.fixture(scope="module")
def smoke_report(smoke_runs):
    root, run, _ = smoke_runs
    out = render(run.run_id, root / "results", root / "reports", quiet=True, strict=True)
    return run, out


@pytest.fixture(scope="module")
def two_run_report(smoke_runs):
    """make report RUN=a,b: two runs of one scenario, before and after."""
    root, a, b = smoke_runs
    return a, b, render(f"{a.run_id},{b.run_id}", root / "results", root / "reports", quiet=True, strict=True)


def referenced(out: Path) -> list[str]:
    page = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"\]\(([^)]+)\)", md)


def test_report_files(smoke_report):
    run, out = smoke_report
    assert out.name == run.run_id
    for name in ("index.html", "report.md", "summary.csv", "claims.csv"):
        assert (out / name).is_file()
    stems = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"vanishing_gradients", "learning_curves", "throughput", "roofline", "memory", "dynamics"} <= stems
    assert "decay_vs_radius" not in stems and not (out / "decay_by_radius.csv").exists()   # smoke sweeps no rho
    assert {p.stem for p in (out / "figures").glob("*.svg")} == stems
    page = (out / "index.html").read_text()
    assert "<h2>Long-range tasks: solved across seeds</h2>" in page and html.escape(learning.SOLVED_RULE) in page
    assert "<h2>Inside the network while it learns</h2>" in page
    with open(out / "success_rates.csv", newline="") as f:
        rates = list(csv.DictReader(f))
    assert [(r["task"], r["model"], r["seeds"]) for r in rates] == [("adding", "torch-lstm fb=0.0", "1")]


def test_every_referenced_file_exists(smoke_report):
    _, out = smoke_report
    refs = referenced(out)
    assert len(refs) >= 10
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), ref    # self-contained: nothing from the network
        assert (out / ref).is_file(), ref


def test_claims_table_is_computed(smoke_report):
    _, out = smoke_report
    with open(out / "claims.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["claim"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)"]
    # smoke's gradient sections are deterministic: torch-rnn (h8, T=10) vanishes (interval 0.211-0.750) and
    # nothing explodes, so (a) is half shown; scratch-lstm's interval (0.244-0.929, 2 seeds) overlaps the RNN's,
    # so (b) is inconclusive; it has no RNN task, no torch-rnn or scratch-lstm timing
    assert [r["verdict"] for r in rows] == ["partly supported", "inconclusive"] + ["not measured"] * 5
    assert rows[0]["evidence"].startswith("1 of 1 RNN configurations vanish, 0 explode, 0 hold 1 in their interval")
    assert rows[1]["evidence"].startswith("0 of 1 comparable LSTM/tanh-RNN pairs: the LSTM decays measurably slower, "
                                          "0 faster; LSTM forget bias 0 against the tanh RNN: no measurable difference "
                                          "at 1 configuration (0.587 against 0.481)")
    assert rows[0]["quote_zh"] == "容易造成梯度消失/爆炸" and rows[0]["quote_en"].startswith("[an RNN] easily")
    assert '<table id="claims"' in (out / "index.html").read_text()


def test_skipped_cases_are_grouped_by_reason(smoke_report):
    run, out = smoke_report
    bad = summary.not_ok(tables.load_runs([run.dir]))
    # smoke: cudnn-lstm at one size, two phases, skipped on the CPU; one row for the reason, with its count
    assert bad.to_dict("records") == [{"table": "timings.csv", "status": "skipped",
                                       "reason": "cudnn-lstm runs on cuda only, not cpu", "cases": 2,
                                       "example": "cudnn-lstm cpu float32 2 5 16 forward", "runs": 1}]
    assert "cudnn-lstm runs on cuda only, not cpu" in (out / "index.html").read_text()


def test_summary_is_in_human_units(smoke_report):
    _, out = smoke_report
    page = (out / "index.html").read_text()
    summary = re.search(r'<table id="summary">(.*?)</table>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", summary)
    assert any(re.fullmatch(r"\d+(\.\d+)? (ms|µs|s)", c) for c in cells)          # median time
    assert any(re.fullmatch(r"\d+(\.\d+)? (k|M)?tokens/s", c) for c in cells)
    assert any(re.fullmatch(r"\d+(\.\d+)? (KiB|MiB)", c) for c in cells)
    assert not any(re.fullmatch(r"\d\.\d{4,}|.*e[+-]\d\d", c) for c in cells)   # no 0.008318, no 5.151e+06
    assert all(len(re.sub(r"\D", "", c.split()[0])) <= 3 for c in cells if re.fullmatch(r"[\d.]+ (ms|µs|s)", c))


def test_findings_come_first(smoke_report):
    _, out = smoke_report
    page = (out / "index.html").read_text()
    found = re.search(r'<section id="findings">(.*?)</section>', page, re.S).group(1)
    items = [html.unescape(i) for i in re.findall(r"<li>(.*?)</li>", found)]
    # smoke: the fastest LSTM (fused or onednn, timed beside each other), the decay factors, the task; no
    # scratch-lstm or RNN/LSTM pair is timed, so no speed-up or cost sentence
    assert 3 <= len(items) <= 8 and all(re.search(r"\d", i) for i in items)
    assert items[0].startswith("On cpu (") and "is the fastest LSTM for a train step at 1 of 1 sizes (b2 t5 h16)" \
        in items[0]
    assert any(i.startswith("Gradients shrink with distance: the LSTM's by 0.") for i in items)
    assert page.index('id="findings"') < page.index('id="claims"') < page.index("<h2>Figures</h2>") \
        < page.index('id="summary"') < page.index('id="environment"') < page.index('id="not-ok"')
    assert (out / "report.md").read_text().index("## What this run found") < \
        (out / "report.md").read_text().index("## The tutorial's claims")


def test_figures_without_data_say_so(smoke_report):
    _, out = smoke_report
    page = (out / "index.html").read_text()
    notes = re.findall(r'<p class="not-drawn">(.*?)</p>', page)
    # smoke has no scratch-lstm beside an RNN of its size, no torch-lstm reference, no memory = false...
    assert "cost_ratio: no data in this run (it needs an LSTM and an RNN timed at equal sizes)" in notes
    drawn = {p.stem for p in (out / "figures").glob("*.png")}
    assert all(n.split(":")[0] not in drawn for n in notes)
    assert len(drawn) + len(notes) == len(figures.FIGURES)


def test_breakdown_pass_of_an_unprofiled_run(smoke_report):
    run, out = smoke_report
    b = pd.read_csv(run.dir / "breakdown.csv")
    # smoke's train group (dummy, fused-lstm, onednn-lstm, scratch-rnn; cudnn-lstm skipped), four categories each
    assert sorted(b["impl"].unique()) == ["dummy", "fused-lstm", "onednn-lstm", "scratch-rnn"]
    assert set(b["phase"]) == {"train"} and set(b["source"]) == {"pass"}
    assert b.groupby("impl")["category"].apply(list).map(tuple).unique().tolist() == [
        ("GEMM", "elementwise", "other ops", "overhead")]
    assert (b["ms"] >= 0).all() and (b.groupby("impl")["ms"].sum() > 0).all()
    assert b.loc[(b["impl"] == "onednn-lstm") & (b["category"] == "GEMM"), "ms"].iloc[0] > 0   # mkldnn_rnn_layer
    assert not (run.dir / "profiles").exists()              # numbers only: no trace files for a plain run
    assert (out / "figures" / "time_breakdown.png").is_file()


def test_two_run_report_shows_each_case_ratio(two_run_report):
    a, b, out = two_run_report
    rr = pd.read_csv(out / "run_ratios.csv")
    ta = pd.read_csv(a.dir / "timings.csv")
    ok = ta[ta["status"] == "ok"]
    assert len(rr) == len(ok) and set(rr["run"]) == {b.run_id} and set(rr["base_run"]) == {a.run_id}
    tb = pd.read_csv(b.dir / "timings.csv").set_index(["impl", "phase"])
    for r in rr.itertuples():
        assert r.ratio == pytest.approx(tb.loc[(r.impl, r.phase), "time_median_s"] / r.base_time_s)
        assert r.ratio_ci_low <= r.ratio <= r.ratio_ci_high      # from both runs' rounds (3 each)
    page = (out / "index.html").read_text()
    assert '<table id="run-ratios">' in page and f"{b.run_id} / {a.run_id}" in page
    assert f"Run {b.run_id} took a median " in page


def test_report_from_timings_only(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text(textwrap.dedent("""
        name = "timings-only"
        [defaults]
        threads = 1
        rounds = 6
        warmup = 0
        [[throughput]]
        impl = ["scratch-lstm", "torch-lstm", "scratch-rnn"]
        hidden = 4
        seq_len = [2, 4]
        batch = 1
        phase = "train"
    """))
    run, _ = sweep.run_sweep(scenario.load(p), tmp_path / "results", quiet=True)
    out = render("latest", tmp_path / "results", tmp_path / "reports", quiet=True, strict=True)
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims["verdict"][:3]) == ["not measured"] * 3
    assert claims["verdict"][3] == "supported"                      # 4x parameters, from the params column
    # (f) by its printed rule, from the rounds themselves: time(scratch-lstm) / time(torch-lstm) per size, paired
    # by round within the comparison group; measurably faster at a size where the interval lies above 1
    t = pd.read_csv(run.dir / "timings.csv").set_index(["impl", "seq_len"])
    r = pd.read_csv(run.dir / "rounds.csv").sort_values("round")
    times = {k: g["time_s"].to_numpy() for k, g in r.groupby("case_id")}
    per_size = [intervals.ratio_ci(times[t.loc[("scratch-lstm", T), "case_id"]],
                                   times[t.loc[("torch-lstm", T), "case_id"]], paired=True) for T in (2, 4)]
    faster, slower = sum(lo > 1 for _, lo, _ in per_size), sum(hi < 1 for _, _, hi in per_size)
    assert claims["verdict"][5] == ("supported" if faster == 2 else "contradicted" if slower == 2
                                    else "inconclusive")
    median = (per_size[0][0] + per_size[1][0]) / 2
    assert f"torch-lstm: median {median:.3g}x" in claims["evidence"][5]
    assert f"measurably faster at {faster} of 2 sizes, slower at {slower}" in claims["evidence"][5]
    assert (out / "figures" / "throughput.png").is_file()
    assert not (out / "figures" / "vanishing_gradients.png").exists()
    assert out.name == run.run_id


def test_report_of_two_runs_keys_rows_by_environment(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('name = "two"\n[defaults]\nthreads = 1\nrounds = 2\nwarmup = 0\n[[throughput]]\nimpl = "dummy"\n'
                 'hidden = 4\nseq_len = 2\nbatch = 1\nphase = "train"\n')
    a, _ = sweep.run_sweep(scenario.load(p), tmp_path / "r", quiet=True)
    b, _ = sweep.run_sweep(scenario.load(p), tmp_path / "r", quiet=True)
    meta = json.loads((b.dir / "run.json").read_text())
    meta["environment"]["host"] = "gpu-box"
    (b.dir / "run.json").write_text(json.dumps(meta))
    runs = tables.load_runs(find_runs(tmp_path / "r", f"{a.run_id},{b.run_id}"))
    labels = sorted(set(runs.tables["timings"]["device_label"]))
    assert len(labels) == 2 and labels[0].endswith("@ gpu-box")
    out = render(f"{a.run_id},{b.run_id}", tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)
    assert out.name == f"{a.run_id}+{b.run_id}"
    assert "gpu-box" in (out / "index.html").read_text()


def test_unknown_run_is_one_line(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    assert cli.main(["report", "nope", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: unknown run id 'nope' in {tmp_path / 'r'}; newest runs: none"]


# -- verdicts on literal data -------------------------------------------------------------------
def decay(rows):
    base = {"wrt": "x", "task": "", "status": "ok", "decay_ci_low": None, "decay_ci_high": None,
            "vanish_distance": None, "seq_len": 100, "forget_bias": 0.0, "device": "cpu", "dtype": "float32"}
    return pd.DataFrame([{**base, **r} for r in rows])


def rnn(factor, lo, hi, impl="torch-rnn", init="pytorch", hidden=64, **kw):
    return {"cell": "rnn", "impl": impl, "init": init, "hidden": hidden, "decay_factor": factor, "decay_ci_low": lo,
            "decay_ci_high": hi, "forget_bias": None, **kw}


def lstm(factor, lo, hi, fb=0.0, init="pytorch", hidden=64, **kw):
    return {"cell": "lstm", "impl": "torch-lstm", "init": init, "hidden": hidden, "decay_factor": factor,
            "decay_ci_low": lo, "decay_ci_high": hi, "forget_bias": fb, **kw}


def test_claim_a_vanishing_and_exploding_halves():
    vanish = rnn(0.5, 0.45, 0.55, vanish_distance=10)
    explode = rnn(1.05, 1.02, 1.08, init="orthogonal")
    both = claims.claim_a(decay([vanish, explode]))
    assert both.verdict == "supported"
    assert both.evidence.startswith("1 of 2 RNN configurations vanish, 1 explode, 0 hold 1 in their interval")
    only = claims.claim_a(decay([vanish, {**vanish, "impl": "scratch-rnn"}]))   # two impls: one configuration
    assert only.verdict == "partly supported"
    assert only.evidence.startswith("1 of 1 RNN configurations vanish, 0 explode")
    assert "only vanishing was seen" in only.evidence
    assert claims.claim_a(decay([explode])).verdict == "partly supported"
    # T = 100: 0.001^(1/100) = 0.933; an interval inside [0.933, 1.072] neither vanishes nor explodes over T
    steady = claims.claim_a(decay([rnn(1.0, 0.98, 1.02), rnn(0.99, 0.95, 1.01, init="orthogonal")]))
    assert steady.verdict == "contradicted"
    wide = claims.claim_a(decay([rnn(1.0, 0.5, 1.5)]))           # holds 1, but could be anything
    assert wide.verdict == "inconclusive"
    assert claims.claim_a(None).verdict == "not measured"
    assert claims.claim_a(decay([lstm(0.9, 0.85, 0.95)])).verdict == "not measured"


def test_claim_b_is_comparative():
    r = rnn(0.5, 0.45, 0.55, vanish_distance=9)
    eases = claims.claim_b(decay([r, lstm(0.8, 0.75, 0.85, vanish_distance=30), lstm(0.9, 0.88, 0.92, fb=1.0)]))
    assert eases.verdict == "supported"
    assert eases.evidence == ("2 of 2 comparable LSTM/tanh-RNN pairs: the LSTM decays measurably slower, 0 faster; "
                              "LSTM forget bias 0 against the tanh RNN: slower at 1 configuration (0.8 against 0.5); "
                              "below 0.001 at distance 30 vs RNN 9; LSTM forget bias 1 against the tanh RNN: slower at "
                              "1 configuration (0.9 against 0.5); below 0.001 at distance > T=100 vs RNN 9")
    # the tutorial claims "better than an RNN", not "never vanishes": both vanish within T here, yet it eases
    assert claims.claim_b(decay([r, lstm(0.7, 0.65, 0.75, vanish_distance=20)])).verdict == "supported"
    worse = claims.claim_b(decay([r, lstm(0.3, 0.25, 0.35)]))
    assert worse.verdict == "contradicted"
    mixed = claims.claim_b(decay([r, lstm(0.8, 0.75, 0.85), lstm(0.3, 0.25, 0.35, fb=1.0)]))
    assert mixed.verdict == "partly supported"
    overlap = claims.claim_b(decay([r, lstm(0.52, 0.4, 0.6)]))
    assert overlap.verdict == "inconclusive"
    # an RNN of another hidden size or init is no comparison
    assert claims.claim_b(decay([r, lstm(0.8, 0.75, 0.85, hidden=128)])).verdict == "not measured"
    assert claims.claim_b(decay([r, lstm(0.8, 0.75, 0.85, init="orthogonal")])).verdict == "not measured"
    assert claims.claim_b(decay([lstm(0.8, 0.75, 0.85)])).verdict == "not measured"


def _sweep(lstm_factors, rnn_factors, nonlinearity="tanh", fb=0.0):
    """Decay rows of a spectral-radius sweep: {rho: factor}, each with a +-0.01 interval."""
    out = [rnn(f, f - 0.01, f + 0.01, impl="scratch-rnn", init="orthogonal", spectral_radius=rho,
               nonlinearity=nonlinearity) for rho, f in rnn_factors.items()]
    return out + [lstm(f, f - 0.01, f + 0.01, fb=fb, init="orthogonal", spectral_radius=rho)
                  for rho, f in lstm_factors.items()]


def test_claim_b_sets_an_exploding_rnn_apart_instead_of_calling_the_lstm_no_slower():
    b = claims.claim_b(decay(_sweep({0.5: 0.6, 2.0: 1.0}, {0.5: 0.4, 2.0: 1.6})))
    assert b.verdict == "supported"                       # the one comparable pair eases; the other is set apart
    assert b.evidence.startswith("1 of 1 comparable LSTM/tanh-RNN pairs: the LSTM decays measurably slower, 0 faster; "
                                 "1 pairs set apart, where the tanh RNN explodes")
    assert "at rho 2 the tanh RNN explodes (1.6) and this LSTM holds 1" in b.evidence
    alone = claims.claim_b(decay(_sweep({2.0: 1.0}, {2.0: 1.6})))
    assert alone.verdict == "inconclusive" and alone.evidence.startswith("0 of 0 comparable")


def test_claim_b_an_lstm_above_the_tanh_rnn_below_rho_1_5_is_supported_and_relu_stays_apart():
    rhos = {0.5: (0.8, 0.4), 0.8: (0.85, 0.6), 1.0: (0.9, 0.75), 1.25: (0.92, 0.86), 1.5: (0.96, 0.965),
            2.0: (0.99, 1.3)}
    rows = _sweep({r: a for r, (a, _) in rhos.items()}, {r: b for r, (_, b) in rhos.items()})
    rows += _sweep({}, {0.5: 0.5, 2.0: 2.0}, nonlinearity="relu")     # never pooled with the tanh RNN
    b = claims.claim_b(decay(rows))
    assert b.verdict == "supported"
    assert ("slower at rho 0.5, 0.8, 1, 1.25 (0.8–0.92 against 0.4–0.86); no measurable difference at rho 1.5 (0.96 "
            "against 0.965); at rho 2 the tanh RNN explodes (1.3) and this LSTM holds 0.99") in b.evidence
    assert "beside them, not pooled: the relu RNN's factor 0.5–2 at rho 0.5, 2" in b.evidence
    behind = claims.claim_b(decay(_sweep({0.5: 0.3, 0.8: 0.35, 0.9: 0.9}, {0.5: 0.4, 0.8: 0.6, 0.9: 0.6})))
    assert behind.verdict == "contradicted"


def test_claim_b_quotes_the_far_end_after_training():
    rows = []
    for cell, impl, before, after in (("lstm", "torch-lstm", 1e-4, 0.5), ("rnn", "torch-rnn", 1e-9, 1e-8)):
        for step, far in ((0, before), (100, after)):
            rows += [{"status": "ok", "wrt": "x", "task": "adding", "impl": impl, "cell": cell, "hidden": 8,
                      "seq_len": 50, "forget_bias": 1.0 if cell == "lstm" else None, "train_step": step,
                      "distance": d, "grad_norm": g} for d, g in ((0, 2.0), (49, 2.0 * far))]
    noise = [{**rows[0], "grad_norm": 99.0, **change} for change in (
        {"status": "nan"}, {"wrt": "h"}, {"task": ""}, {"task": None})]       # none of these is a task's x curve
    far = learning.far_end_gradients(pd.DataFrame(rows + noise))
    assert far.set_index(["cell", "train_step"])["far_ratio"].to_dict() == pytest.approx(
        {("lstm", 0): 1e-4, ("lstm", 100): 0.5, ("rnn", 0): 1e-9, ("rnn", 100): 1e-8})
    assert far.groupby("cell")["forget_bias"].first().to_dict() == {"lstm": 1.0, "rnn": -1.0}   # -1: none
    assert learning.far_end_gradients(pd.DataFrame(noise[1:])) is None
    b = claims.claim_b(decay([rnn(0.5, 0.45, 0.55), lstm(0.8, 0.75, 0.85)]), pd.DataFrame(rows))
    assert b.evidence.endswith("adding T=50, gradient at distance 49 over distance 0, start -> end of training (step "
                               "100, or where early_stop ended it): LSTM 0.0001 -> 0.5, RNN 1e-09 -> 1e-08")


def test_claims_quote_the_tutorial():
    seed = Path(__file__).resolve().parents[2] / "shared" / "seed"
    texts = [p.read_text() for p in seed.glob("*.txt")] if seed.is_dir() else []
    assert set(quotes.STATEMENTS) == set("abcdefg")
    tutorial = [st for st in quotes.STATEMENTS.values() if st.source == quotes.TUTORIAL]
    assert [st.key for st in tutorial] == list("abcdef")
    for st in quotes.STATEMENTS.values():
        assert st.quote_en and st.measured and st.claim.startswith(f"({st.key}) ")
        assert bool(st.quote_zh) == (st.source == quotes.TUTORIAL)
    assert quotes.STATEMENTS["g"].quote_en == ("fully parallelizable during training (175× faster for a sequence of "
                                               "length 512)")
    if not texts:
        pytest.skip(f"the tutorial is not at {seed} (a clone outside the workspace)")
    for st in tutorial:
        assert any(st.quote_zh in t for t in texts), st.key      # its own words, verbatim


def training(rows):
    base = {"task": "adding", "status": "ok", "baseline_loss": 1 / 6, "seq_len": 50, "hidden": 8, "lr": 1e-3,
            "batch": 8, "run_id": "r", "forget_bias": None, "eval_accuracy": 0.5, "wall_s": 1.0, "init": "pytorch",
            "nonlinearity": None}
    return pd.DataFrame([{**base, "case_id": f"{r['impl']}{r.get('nonlinearity')}{r['seed']}", **r} for r in rows])


def seeds(impl, cell, losses, **kw):
    """A model's seeds, each with its final evaluation at step 100 (eval_loss: a multiple of the baseline)."""
    return [{"impl": impl, "cell": cell, "seed": s, "step": 100, "eval_loss": rel / 6,
             "status": "ok" if rel == rel else "nan", **kw} for s, rel in enumerate(losses)]


LSTM_2_OF_3 = seeds("onednn-lstm", "lstm", [0.05, 0.5, 0.02], forget_bias=1.0)
TANH_0_OF_3 = seeds("torch-rnn", "rnn", [1.0, 0.99, 1.01], nonlinearity="tanh")
IRNN_3_OF_3 = seeds("torch-rnn", "rnn", [0.01, 0.02, 0.03], nonlinearity="relu", init="identity")


def test_claim_c_counts_seeds_and_keeps_the_irnn_apart():
    c = claims.claim_c(training(LSTM_2_OF_3 + TANH_0_OF_3))
    assert c.verdict == "supported"
    assert c.evidence == ("adding T=50: LSTM (onednn-lstm fb=1.0) solved 2 of 3, tanh RNN (torch-rnn tanh) 0 of 3")
    with_irnn = claims.claim_c(training(LSTM_2_OF_3 + TANH_0_OF_3 + IRNN_3_OF_3))
    assert with_irnn.verdict == "supported"                       # the IRNN never decides it
    assert with_irnn.evidence.endswith("; the IRNN (Le et al. 2015), an RNN made for this task, solved it in 3 of 3")
    nothing = claims.claim_c(training(seeds("onednn-lstm", "lstm", [0.5, 0.6, 0.7], forget_bias=1.0) + TANH_0_OF_3))
    assert nothing.verdict == "inconclusive" and nothing.evidence.endswith(claims.BUDGET_NOTE)
    diverged = claims.claim_c(training(seeds("onednn-lstm", "lstm", [0.05, float("nan"), 0.5], forget_bias=1.0)
                                       + TANH_0_OF_3))
    assert diverged.verdict == "partly supported"                 # 1 of 3: not most
    assert "LSTM (onednn-lstm fb=1.0) solved 1 of 3 (1 diverged)" in diverged.evidence
    both = claims.claim_c(training(LSTM_2_OF_3 + seeds("torch-rnn", "rnn", [0.05, 1.0, 1.0], nonlinearity="tanh")))
    assert both.verdict == "partly supported"
    rnn_wins = claims.claim_c(training(seeds("onednn-lstm", "lstm", [0.5, 0.6, 0.7], forget_bias=1.0)
                                       + seeds("torch-rnn", "rnn", [0.05, 0.06, 1.0], nonlinearity="tanh")))
    assert rnn_wins.verdict == "contradicted"
    assert claims.claim_c(training(IRNN_3_OF_3)).verdict == "not measured"       # no LSTM: nothing to set beside


def test_the_findings_say_what_the_task_table_says():
    """A finding that said "learned" where the table says 0 of 3 would fail here: both read success_rates."""
    t = training(LSTM_2_OF_3 + TANH_0_OF_3 + IRNN_3_OF_3)
    table = views.success_view(learning.success_rates(t))
    (sentence,) = findings.tasks(t)
    for _, row in table.iterrows():
        assert f"{row['model']}{' (the IRNN)' if row['model'].endswith('identity') else ''} {row['solved']}" \
            in sentence
    assert "learned" not in sentence and "0 of 3" in sentence and "2 of 3" in sentence


def test_claims_d_e_from_ratios():
    def time(ratio, lo, hi, hidden):
        return {"kind": "time", "ratio": ratio, "ratio_ci_low": lo, "ratio_ci_high": hi, "input": 8, "hidden": hidden,
                "pair": "time a/b"}
    params = {"kind": "params", "ratio": 4.0, "input": 8, "hidden": 8, "pair": "params LSTM/RNN"}
    r = pd.DataFrame([params, time(3.0, 2.5, 3.5, 8), time(2.0, 1.5, 2.5, 16), time(1.1, 0.9, 1.3, 32)])
    assert claims.claim_d(r).verdict == "supported"
    e = claims.claim_e(r)
    assert e.verdict == "supported"
    assert e.evidence == ("measurably slower at 2 of 3 sizes, faster at 0, no measurable difference at 1; median 2x "
                          "(range 1.1–3); time a/b: 2x")
    assert claims.claim_d(r).evidence == "ratio 4 at (input, hidden) in [(8, 8)]; exactly 4 at every size"
    three = claims.claim_d(r.assign(ratio=3.0))                # "more" parameters, as the tutorial says; not 4x
    assert three.verdict == "supported" and three.evidence == "ratio 3 at (input, hidden) in [(8, 8)]"
    assert claims.claim_d(r.assign(ratio=0.9)).verdict == "contradicted"
    faster = r.assign(ratio=0.5, ratio_ci_low=0.4, ratio_ci_high=0.6)
    assert claims.claim_e(faster).verdict == "contradicted"
    unclear = r.assign(ratio_ci_low=0.9, ratio_ci_high=5.0)      # every interval holds 1, whatever the median says
    assert claims.claim_e(unclear).verdict == "inconclusive"
    some = r.assign(ratio_ci_low=[4.0, 1.5, 0.9, 0.9], ratio_ci_high=[4.0, 2.5, 1.3, 1.3])   # 1 of 3 slower, 0 faster
    assert claims.claim_e(some).verdict == "partly supported"


def timings(rows):
    base = {"status": "ok", "device_label": "cpu: x @ h", "dtype": "float32", "hidden": 8, "input": 8, "batch": 2,
            "run_id": "r", "group_id": "g"}
    return pd.DataFrame([{**base, **r, "case_id": f"{r['impl']}-{r['seq_len']}"} for r in rows])


def rounds_of(t: pd.DataFrame, noise=0.01, n=8) -> pd.DataFrame:
    """n rounds per case, around its median, +-noise (a fixed pattern, shared by the group's members)."""
    wiggle = [(-1) ** k * noise * (k % 3) for k in range(n)]
    return pd.DataFrame([{"run_id": r.run_id, "case_id": r.case_id, "round": k, "time_s": r.time_median_s * (1 + w)}
                         for r in t.itertuples() for k, w in enumerate(wiggle)])


def test_claim_f_verdicts():
    def case(impl, seconds, T=10, phase="train"):
        return {"impl": impl, "time_median_s": seconds, "seq_len": T, "phase": phase}

    faster = timings([case("scratch-lstm", 0.03), case("torch-lstm", 0.01), case("onednn-lstm", 0.006),
                      case("fused-lstm", 0.04)])                 # fused-lstm: evidence only, not in the rule
    f = claims.claim_f(faster, rounds_of(faster))
    assert f.verdict == "supported"
    assert f.evidence == ("torch-lstm: median 3x (train 3x; range 3–3), measurably faster at 1 of 1 sizes, slower at 0;"
                          " onednn-lstm: median 5x (train 5x; range 5–5), measurably faster at 1 of 1 sizes, slower at"
                          " 0; fused-lstm: median 0.75x (train 0.75x; range 0.75–0.75), measurably faster at 0 of 1 "
                          "sizes, slower at 1")
    one_slower = timings([case("scratch-lstm", 0.03), case("torch-lstm", 0.01), case("onednn-lstm", 0.06)])
    assert claims.claim_f(one_slower, rounds_of(one_slower)).verdict == "partly supported"
    all_slower = timings([case("scratch-lstm", 0.03), case("torch-lstm", 0.05), case("onednn-lstm", 0.06)])
    assert claims.claim_f(all_slower, rounds_of(all_slower)).verdict == "contradicted"
    close = timings([case("scratch-lstm", 0.0101), case("torch-lstm", 0.01)])
    noisy = rounds_of(close, noise=0.2)
    noisy.loc[noisy["case_id"] == "torch-lstm-10", "time_s"] = noisy["time_s"].iloc[::-1].to_numpy()[:8] / 1.01
    assert claims.claim_f(close, noisy).verdict == "inconclusive"
    assert claims.claim_f(faster).verdict == "inconclusive"      # no rounds, no interval
    split = timings([case("scratch-lstm", 0.03), case("torch-lstm", 0.01), case("onednn-lstm", 0.03)])
    assert claims.claim_f(split, rounds_of(split)).verdict == "partly supported"
    # a kernel at another size is not compared; without a common size it is not measured
    apart = timings([case("scratch-lstm", 0.03, T=10), case("torch-lstm", 0.01, T=20)])
    assert claims.claim_f(apart).verdict == "not measured"
    assert claims.claim_f(timings([case("torch-lstm", 0.01)])).evidence == "needs scratch-lstm timings"


def test_broken_csv_is_named_and_skipped(tmp_path):
    p = tmp_path / "timings.csv"
    p.write_text("a,b,status\n1,2,ok\n3,4\n5,6,ok\n7,8,o")
    warnings = []
    df = tables.read_table(p, warnings)
    assert list(df["a"]) == ["1", "5"]                  # "7,8,o": a write cut short (no line end), dropped
    assert warnings == [f"{p}:3: skipped a broken line (2 fields, expected 3)",
                        f"{p}:5: skipped a broken line (cut short: no line end)"]


# -- a real browser ----------------------------------------------------------------------------------
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'unknown'));
}, true);
var _ce = console.error;
console.error = function () { window.__errors.push('console.error: ' + Array.from(arguments).join(' ')); };
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var found = document.getElementById('findings');
  var result = {errors: window.__errors, images: imgs.length,
                scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                findings: found ? Array.from(found.querySelectorAll('li')).map(function (l) { return l.textContent; })
                                : null,
                verdicts: Array.from(document.querySelectorAll('#claims td:nth-child(2)'))
                               .map(function (t) { return t.textContent; }),
                broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                            .map(function (i) { return i.getAttribute('src'); }),
                claims: !!document.getElementById('claims'),
                claimRows: document.querySelectorAll('#claims tr').length};
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_html_opens_in_headless_chromium_offline(two_run_report, tmp_path):
    _, _, out = two_run_report          # every section, the between-runs table included
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    page = (copy / "index.html").read_text()
    (copy / "index.html").write_text(page.replace("<head>", "<head>" + PROBE, 1))
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--virtual-time-budget=10000",
           "--window-size=1280,900", "--dump-dom", (copy / "index.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["images"] >= 5 and result["broken"] == []
    assert result["claims"] and result["claimRows"] == 8          # header + seven claims
    assert result["innerWidth"] == 1280 and result["scrollWidth"] <= 1280   # never scrolls sideways
    assert result["findings"] and all(re.search(r"\d", f) for f in result["findings"])
    assert len(result["verdicts"]) == 7 and set(result["verdicts"]) <= set(claims.VERDICTS)


def test_configurations_pool_implementations_and_stand_in_for_a_missing_interval():
    d = decay([rnn(0.5, None, None), rnn(0.6, 0.55, 0.7, impl="scratch-rnn"), rnn(0.9, None, None, hidden=128)])
    got = learning.configurations(d).set_index("hidden")[["lo", "hi", "decay_factor"]].to_dict("index")
    assert got == {64: {"lo": 0.5, "hi": 0.7, "decay_factor": pytest.approx(0.55)},      # envelope, median
                   128: {"lo": 0.9, "hi": 0.9, "decay_factor": 0.9}}                     # no interval: the factor


def test_far_end_reads_the_farthest_distance_the_last_step_and_every_task():
    def curve(task, cell, impl, step, norms, T=50):
        return [{"status": "ok", "wrt": "x", "task": task, "impl": impl, "cell": cell, "hidden": 8, "seq_len": T,
                 "forget_bias": None, "train_step": step, "distance": d, "grad_norm": g} for d, g in norms]
    rows = []
    for step, far in ((0, 1e-6), (50, 1e-4), (100, 1e-2)):                  # three steps: first and last quoted
        rows += curve("adding", "rnn", "torch-rnn", step, [(0, 2.0), (10, 1.0), (49, 2.0 * far)])
    rows += curve("copy", "rnn", "torch-rnn", 0, [(0, 1.0), (19, 0.5)], T=20)
    rows += curve("copy", "rnn", "torch-rnn", 10, [(0, 1.0), (19, 0.25)], T=20)
    rows += curve("adding", "rnn", "scratch-rnn", 0, [(10, 1.0), (49, 0.5)])   # no distance 0: no ratio
    rows += curve("adding", "lstm", "torch-lstm", 0, [(0, 0.0), (49, 0.5)])    # zero at distance 0: no ratio
    far = learning.far_end_gradients(pd.DataFrame(rows))
    assert sorted(far["impl"]) == ["torch-rnn"] * 5
    assert far[far["task"] == "adding"].set_index("train_step")["far_ratio"].to_dict() == pytest.approx(
        {0: 1e-6, 50: 1e-4, 100: 1e-2})
    assert set(far["far_distance"]) == {49, 19}
    b = claims.claim_b(decay([rnn(0.5, 0.45, 0.55), lstm(0.8, 0.75, 0.85)]), pd.DataFrame(rows))
    assert b.evidence.endswith("adding T=50, gradient at distance 49 over distance 0, start -> end of training (step "
                               "100, or where early_stop ended it): RNN 1e-06 -> 0.01; copy T=20, gradient at distance "
                               "19 over distance 0, start -> end of training (step 10, or where early_stop ended it): "
                               "RNN 0.5 -> 0.25")
    early = [{**r, "case_id": "s1", "train_step": 60 if r["train_step"] == 100 else r["train_step"]}
             for r in rows if r["task"] == "adding" and r["impl"] == "torch-rnn"]       # a seed stopped at 60
    b = claims.claim_b(decay([rnn(0.5, 0.45, 0.55), lstm(0.8, 0.75, 0.85)]),
                       pd.DataFrame([{**r, "case_id": "s0"} for r in rows] + early))
    assert "(step 100, or where early_stop ended it): RNN 1e-06 -> 0.01;" in b.evidence   # each seed at its own end
    irnn = [{**r, "case_id": f"i{k}", "nonlinearity": "relu", "init": "identity", "grad_norm": 1.0} for k in (1, 2)
            for r in rows if r["task"] == "adding" and r["impl"] == "torch-rnn"]
    b = claims.claim_b(decay([rnn(0.5, 0.45, 0.55), lstm(0.8, 0.75, 0.85)]),
                       pd.DataFrame([{**r, "case_id": "s0"} for r in rows] + irnn))
    assert "RNN 1e-06 -> 0.01;" in b.evidence           # two IRNN seeds at 1 -> 1: never pooled with the tanh RNN
    half = pd.DataFrame(curve("adding", "lstm", "torch-lstm", 0, [(0, 0.5), (49, 0.25)]))
    assert learning.far_end_gradients(half)["far_ratio"].tolist() == [0.5]     # a norm below 1 at distance 0 counts
    assert learning.far_end_gradients(pd.DataFrame(rows[-4:])) is None            # no usable curve: None, not empty


RULES = {
    "a": ("per RNN configuration (gradients sections, wrt x; implementations of one configuration pooled): vanishing "
          "where its decay interval lies wholly below 1, exploding where wholly above. Supported when both are seen; "
          "partly supported when only one half is (which is named); contradicted when every interval lies within "
          "0.001^(±1/T) of 1 (neither below 0.001 nor above 1000 over the sequence); else inconclusive"),
    "b": ("like with like: each LSTM configuration (implementations pooled) beside the tanh RNN of the same hidden "
          "size, sequence length, init, spectral radius, layers, device and dtype. A pair whose RNN interval lies "
          "wholly above 1 (it explodes) is no vanishing comparison and is counted apart. In the others the LSTM eases "
          "vanishing where its decay interval lies wholly above the RNN's, does worse where wholly below. Supported "
          "when most comparable pairs ease it and none does worse; contradicted when most do worse; partly supported "
          "when some ease it; else inconclusive. relu and linear RNNs are reported beside the tanh RNN, never pooled "
          "with it"),
    "c": ("per task and T, each model's seeds solved (solved: the final held-out loss below 0.1 x the task's baseline "
          "(1/6 for adding, 10 ln 8 / (T + 20) for copy); a diverged seed is not solved), the best LSTM beside the "
          "best tanh RNN. Supported when somewhere the LSTM solves in most seeds and the tanh RNN in none, and nowhere "
          "does the tanh RNN solve more; contradicted when somewhere the tanh RNN solves more and nowhere the LSTM "
          "does; inconclusive when neither solves a seed at any T; else partly supported. The IRNN (Le et al. 2015), "
          "an RNN built for the adding problem, is reported beside and never decides it"),
    "d": ("supported when every LSTM/RNN parameter ratio at equal (input, hidden) is above 1 (the tutorial's "
          "'more'); else contradicted. The evidence says whether it is exactly 4"),
    "e": ("each LSTM/RNN train-step time ratio at equal sizes on the same backend has a 95% bootstrap interval over "
          "rounds; a size is measurably slower where it lies above 1, faster where below. Supported when most sizes "
          "are measurably slower, contradicted when most are measurably faster, partly supported when more are "
          "measurably slower than faster, else inconclusive"),
    "f": ("speed-up = time(scratch-lstm) / time(kernel) at equal sizes, with a 95% bootstrap interval over rounds; a "
          "kernel is measurably faster at a size where the interval lies above 1, slower where below. Supported when "
          "every library kernel measured is measurably faster at most of its sizes, contradicted when every one is "
          "measurably slower at most of its sizes, partly supported when some are faster at most of their sizes, "
          "else inconclusive"),
}


def test_each_claim_not_measured_says_whole_what_it_lacks_and_prints_its_rule():
    r = rnn(0.5, 0.45, 0.55)
    apart = timings([{"impl": "scratch-lstm", "time_median_s": 0.03, "seq_len": 10, "phase": "train"},
                     {"impl": "torch-lstm", "time_median_s": 0.01, "seq_len": 20, "phase": "train"}])
    two_lengths = training([{"impl": "onednn-lstm", "cell": "lstm", "step": 100, "eval_loss": 0.01, "seq_len": 50,
                             "seed": 0},
                            {"impl": "torch-rnn", "cell": "rnn", "step": 100, "eval_loss": 0.02, "seq_len": 60,
                             "seed": 0}])
    got = [claims.claim_a(None), claims.claim_b(decay([lstm(0.8, 0.75, 0.85)])),
           claims.claim_b(decay([r, lstm(0.8, 0.75, 0.85, hidden=128)])), claims.claim_c(None),
           claims.claim_c(two_lengths), claims.claim_d(None), claims.claim_e(None), claims.claim_f(None),
           claims.claim_f(apart)]
    assert [(c.key, c.verdict, c.evidence) for c in got] == [
        ("a", "not measured", "no RNN gradient configurations in this run"),
        ("b", "not measured", "needs LSTM and RNN gradient configurations of the same sizes"),
        ("b", "not measured", "no LSTM configuration has a tanh RNN of the same sizes, init and spectral radius"),
        ("c", "not measured", "needs task runs of both an LSTM and a tanh RNN"),
        ("c", "not measured", "no task and seq_len with both an LSTM and a tanh RNN"),
        ("d", "not measured", "needs throughput rows of an LSTM and an RNN at equal sizes"),
        ("e", "not measured", "needs train-phase rows of an LSTM and an RNN on one backend"),
        ("f", "not measured", "needs scratch-lstm timings"),
        ("f", "not measured", "needs a library kernel timed beside scratch-lstm"),
    ]
    assert all(c.claim == c.statement.claim and c.rule == RULES[c.key] for c in got)


def test_claim_d_lists_every_ratio_and_the_first_six_sizes():
    rows = [{"kind": "params", "ratio": 4.0 if h < 64 else 3.0, "input": 8, "hidden": h, "pair": "params LSTM/RNN"}
            for h in (8, 16, 24, 32, 48, 64, 96)]
    d = claims.claim_d(pd.DataFrame(rows))
    assert (d.verdict, d.evidence) == ("supported", "ratio 3, 4 at (input, hidden) in [(8, 8), (8, 16), (8, 24), "
                                                    "(8, 32), (8, 48), (8, 64)] ...")


def test_claim_a_an_interval_touching_the_steady_bound_is_within_it():
    """0.001^(1/T) at T=100 is the lower edge of 'holds 1 over the sequence': an interval from exactly there counts."""
    edge = 0.001 ** (1 / 100)
    a = claims.claim_a(decay([rnn(0.97, edge, 1.0)]))
    assert a.verdict == "contradicted"
    assert claims.claim_a(decay([rnn(0.97, edge * 0.999, 1.0)])).verdict == "inconclusive"


def test_cost_ratios_pair_each_lstm_with_the_rnn_of_its_backend_at_equal_sizes():
    """torch-rnn (native) pairs with torch-lstm (native), not onednn-lstm (onednn); scratch-rnn with scratch-lstm;
    a forward row gives a parameter ratio only; no rounds: the ratio of medians, without an interval."""
    def row(impl, backend, seconds, params, phase="train", hidden=8):
        return {"impl": impl, "backend": backend, "time_median_s": seconds, "params": params, "seq_len": 10,
                "phase": phase, "hidden": hidden}
    t = timings([row("torch-rnn", "native", 0.01, 144), row("torch-lstm", "native", 0.03, 576),
                 row("onednn-lstm", "onednn", 0.02, 576), row("scratch-rnn", "python", 0.02, 144),
                 row("scratch-lstm", "python", 0.05, 576), row("torch-lstm", "native", 0.04, 576, hidden=16),
                 row("torch-rnn", "native", 0.01, 144, phase="forward"),
                 row("torch-lstm", "native", 0.02, 576, phase="forward")])
    r = ratios.cost_ratios(t)
    got = sorted((x.pair, x.phase, x.kind, x.ratio) for x in r.itertuples())
    assert got == [("params LSTM/RNN", "forward", "params", 4.0), ("params LSTM/RNN", "train", "params", 4.0),
                   ("time scratch-lstm/scratch-rnn", "train", "time", pytest.approx(2.5)),
                   ("time torch-lstm/torch-rnn", "train", "time", pytest.approx(3.0))]
    assert r[r["kind"] == "time"]["ratio_ci_low"].isna().all()
    assert ratios.cost_ratios(None) is None and ratios.cost_ratios(t.assign(status="failed")) is None
    assert ratios.cost_ratios(t[t["impl"] == "torch-rnn"]) is None


def test_claim_f_takes_the_last_scratch_row_of_a_size_timed_twice():
    def row(impl, seconds, run):
        return {"impl": impl, "time_median_s": seconds, "seq_len": 10, "phase": "train", "run_id": run}
    t = timings([row("scratch-lstm", 0.03, "r1"), row("scratch-lstm", 0.06, "r2"), row("torch-lstm", 0.01, "r2")])
    assert claims.claim_f(t).evidence.startswith("torch-lstm: median 6x (train 6x; range 6–6)")
