"""make report: from a fixture run, from a timings-only run, files, verdicts, and a real browser."""
import csv
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness import claims, cli, intervals, report, scenario, store, sweep, tables

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    run, _ = sweep.run_sweep(scenario.load("smoke"), root / "results", quiet=True)
    out = report.render(run.run_id, root / "results", root / "reports", quiet=True, strict=True)
    return run, out


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
    assert {"vanishing_gradients", "learning_curves", "throughput", "roofline", "memory"} <= stems
    assert {p.stem for p in (out / "figures").glob("*.svg")} == stems


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
    assert [r["claim"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)"]
    # smoke's gradient sections are deterministic: torch-rnn (h8, T=10) falls below 1e-3 at distance 9 with a
    # decay interval below 1, scratch-lstm never does; it has no RNN task, no torch-rnn or scratch-lstm timing
    assert [r["verdict"] for r in rows] == ["supported", "supported"] + ["not measured"] * 4
    assert rows[0]["evidence"].startswith("1 of 1 RNN configurations vanish")
    assert '<table id="claims">' in (out / "index.html").read_text()


def test_skipped_cases_are_listed(smoke_report):
    _, out = smoke_report
    page = (out / "index.html").read_text()
    assert "cudnn-lstm runs on cuda only, not cpu" in page


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
    out = report.render("latest", tmp_path / "results", tmp_path / "reports", quiet=True, strict=True)
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
                                    else "no measurable difference")
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
    runs = tables.load_runs(store.find_runs(tmp_path / "r", f"{a.run_id},{b.run_id}"))
    labels = sorted(set(runs.tables["timings"]["device_label"]))
    assert len(labels) == 2 and labels[0].endswith("@ gpu-box")
    out = report.render(f"{a.run_id},{b.run_id}", tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)
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
            "vanish_distance": None, "seq_len": 100, "forget_bias": 0.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_claim_a_verdicts():
    vanishing = decay([{"cell": "rnn", "decay_factor": 0.5, "decay_ci_high": 0.6, "vanishes_within_T": True,
                        "vanish_distance": 10}] * 3)
    assert claims.claim_a(vanishing).verdict == "supported"
    assert claims.claim_a(vanishing).evidence.startswith("3 of 3 RNN configurations vanish")
    growing = decay([{"cell": "rnn", "decay_factor": 1.05, "decay_ci_high": 1.1, "vanishes_within_T": False}] * 2)
    assert claims.claim_a(growing).verdict == "contradicted"
    assert claims.claim_a(None).verdict == "not measured"
    assert claims.claim_a(decay([{"cell": "lstm", "decay_factor": 0.9, "vanishes_within_T": False}])).verdict == \
        "not measured"


def test_claim_b_verdicts():
    kept = decay([{"cell": "lstm", "decay_factor": 0.99, "vanishes_within_T": False}] * 2
                 + [{"cell": "rnn", "decay_factor": 0.5, "vanishes_within_T": True, "vanish_distance": 9}])
    assert claims.claim_b(kept).verdict == "supported"
    lost = decay([{"cell": "lstm", "decay_factor": 0.6, "vanishes_within_T": True, "vanish_distance": 14}])
    assert claims.claim_b(lost).verdict == "contradicted"


def training(rows):
    base = {"task": "adding", "status": "ok", "baseline_loss": 1 / 6, "seq_len": 50, "hidden": 8, "seed": 0,
            "lr": 1e-3, "batch": 8, "run_id": "r", "forget_bias": None}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_claim_c_verdicts():
    lstm_wins = training([{"impl": "onednn-lstm", "cell": "lstm", "step": 0, "eval_loss": 1.0},
                          {"impl": "onednn-lstm", "cell": "lstm", "step": 100, "eval_loss": 0.01},
                          {"impl": "torch-rnn", "cell": "rnn", "step": 100, "eval_loss": 0.17}])
    c = claims.claim_c(lstm_wins)
    assert c.verdict == "supported" and "adding T=50: best LSTM 0.06x baseline, best RNN 1.02x" in c.evidence
    both = training([{"impl": "onednn-lstm", "cell": "lstm", "step": 100, "eval_loss": 0.01},
                     {"impl": "torch-rnn", "cell": "rnn", "step": 100, "eval_loss": 0.02}])
    assert claims.claim_c(both).verdict == "contradicted"
    assert claims.claim_c(training([{"impl": "torch-rnn", "cell": "rnn", "step": 1, "eval_loss": 1}])).verdict == \
        "not measured"


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
    assert claims.claim_d(r.assign(ratio=3.0)).verdict == "contradicted"
    faster = r.assign(ratio=0.5, ratio_ci_low=0.4, ratio_ci_high=0.6)
    assert claims.claim_e(faster).verdict == "contradicted"
    unclear = r.assign(ratio_ci_low=0.9, ratio_ci_high=5.0)      # every interval holds 1, whatever the median says
    assert claims.claim_e(unclear).verdict == "no measurable difference"


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
    assert claims.claim_f(one_slower, rounds_of(one_slower)).verdict == "contradicted"
    close = timings([case("scratch-lstm", 0.0101), case("torch-lstm", 0.01)])
    noisy = rounds_of(close, noise=0.2)
    noisy.loc[noisy["case_id"] == "torch-lstm-10", "time_s"] = noisy["time_s"].iloc[::-1].to_numpy()[:8] / 1.01
    assert claims.claim_f(close, noisy).verdict == "no measurable difference"
    assert claims.claim_f(faster).verdict == "no measurable difference"      # no rounds, no interval
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
  var result = {errors: window.__errors, images: imgs.length,
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
def test_html_opens_in_headless_chromium_offline(smoke_report, tmp_path):
    _, out = smoke_report
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    page = (copy / "index.html").read_text()
    (copy / "index.html").write_text(page.replace("<head>", "<head>" + PROBE, 1))
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--virtual-time-budget=10000",
           "--dump-dom", (copy / "index.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["images"] >= 5 and result["broken"] == []
    assert result["claims"] and result["claimRows"] == 7          # header + six claims
