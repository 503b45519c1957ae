"""The regression gate on synthetic raw rounds: a rank test and a ratio interval per case."""
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_intervals import write_group
from test_sweep import write_tiny

from harness import cli
from harness.config import scenario
from harness.measure import timing
from harness.run import sweep
from harness.store.runs import Run, read_rows

ROUNDS = 20


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, small_gemm):
    """Two real runs of one tiny scenario (the dummy, one train case), made once."""
    tmp = tmp_path_factory.mktemp("compare")
    return two_sweeps(write_tiny(tmp))


def two_sweeps(path) -> tuple:
    """(results dir, run id, run id): the scenario at `path` swept twice, into results/ beside it."""
    sc, results = scenario.load(path), path.parent / "r"
    a, _ = sweep.run_sweep(sc, results, quiet=True)
    b, _ = sweep.run_sweep(sc, results, quiet=True)
    return results, a.run_id, b.run_id


def with_rounds(src, dest, seconds) -> str:
    """A copy of run `src` whose only case has these raw rounds (and their median in timings.csv)."""
    shutil.copytree(src, dest / src.name, symlinks=True)
    run = Run.open(dest / src.name)
    [row] = read_rows(run.dir / "timings.csv")
    row["time_median_s"], row["rounds"] = repr(float(np.median(seconds))), len(seconds)
    run.rewrite_table("timings.csv", [row])
    run.rewrite_table("rounds.csv", [{"run_id": run.run_id, "case_id": row["case_id"], "group_id": row["group_id"],
                                      "impl": row["impl"], "round": k, "position": 0, "time_s": t}
                                     for k, t in enumerate(seconds)])
    return run.run_id


@pytest.fixture
def gate(two_runs, tmp_path, capsys):
    results, a, b = two_runs
    rng = np.random.default_rng(0)
    base_times = 1e-3 * rng.lognormal(0, 0.02, ROUNDS)            # 1 ms, 2% noise

    def run(factor, args=(), same_draw=False):
        new_times = base_times if same_draw else 1e-3 * factor * rng.lognormal(0, 0.02, ROUNDS)
        base = with_rounds(results / a, tmp_path, base_times)
        new = with_rounds(results / b, tmp_path, new_times)
        capsys.readouterr()
        code = cli.main(["compare", base, new, "--results", str(tmp_path), *args])
        out = capsys.readouterr()
        shutil.rmtree(tmp_path / base), shutil.rmtree(tmp_path / new)
        return code, out.out, out.err
    return run


def test_identical_rounds_pass(gate):
    code, out, _ = gate(1.0, same_draw=True)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("dummy cpu float32"))
    change, lo, hi = (float(x) for x in line.split("ms")[-1].replace("%", "").replace("[", "").replace(",", "")
                      .replace("]", "").split()[:3])
    assert change == 0.0 and lo < 0 < hi and line.endswith(" same")          # the interval holds no change
    assert out.rstrip().endswith("0 faster, 1 the same")


def test_rounds_30_percent_slower_fail(gate):
    code, out, _ = gate(1.3)
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("dummy cpu float32"))
    assert line.endswith("SLOWER")
    change = float(line.split("%")[0].split()[-1])
    assert 25 < change < 35
    assert "1 of 1 cases slower than" in out and "(ratio > 1.1 and p < 0.01), 0 faster, 0 the same" in out


def test_rounds_3_percent_slower_pass_a_10_percent_threshold(gate):
    code, out, _ = gate(1.03, ["--threshold", "10"])
    assert code == 0
    assert "0 of 1 cases slower" in out and out.splitlines()[-2].endswith("same")


def test_a_big_threshold_or_a_strict_alpha_passes_what_would_fail(gate):
    assert gate(1.3, ["--threshold", "50"])[0] == 0
    assert gate(1.3, ["--alpha", "1e-12"])[0] == 0                 # 20 vs 20 rounds: p >= 2/C(40, 20)


def test_faster_rounds_are_faster_not_failures(gate):
    code, out, _ = gate(0.7)
    assert code == 0 and "0 of 1 cases slower" in out and ", 1 faster, 0 the same" in out


def test_environments_are_printed_and_strict_env_refuses_another_machine(two_runs, tmp_path, capsys):
    results, a, b = two_runs
    base = with_rounds(results / a, tmp_path, [1e-3] * ROUNDS)
    new = with_rounds(results / b, tmp_path, [1e-3] * ROUNDS)
    run = Run.open(tmp_path / new)
    run.meta.environment["cpu_model"] = "Another CPU"
    run.meta.environment["torch"] = "9.9.9"
    run.save()
    capsys.readouterr()
    assert cli.main(["compare", base, new, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"environments, {base} -> {new}:"
    assert "  cpu_model: " in out and "-> Another CPU" in out and "  torch: " in out and "-> 9.9.9" in out
    assert "warning: the runs come from different machines or threads" in out
    assert cli.main(["compare", base, new, "--results", str(tmp_path), "--strict-env"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: compare --strict-env: the runs were measured differently (cpu_model: ")
    assert err.endswith("); compare runs of one machine and thread count, or drop --strict-env\n")
    assert err.count("\n") == 1


def test_refusals_are_one_line_and_exit_2(two_runs, tmp_path, capsys):
    results, a, b = two_runs
    r = str(results)
    assert cli.main(["compare", "nope", "--results", r]) == 2
    assert "unknown run id 'nope'" in capsys.readouterr().err
    assert cli.main(["compare", "--results", r]) == 2
    assert capsys.readouterr().err == "error: compare: give BASE, a run id in results/ (make bench-compare " \
                                      "BASE=<run_id>)\n"
    assert cli.main(["compare", a, b, "--results", r, "--alpha", "2"]) == 2
    assert capsys.readouterr().err == "error: compare: --alpha must be between 0 and 1, not 2.0\n"
    bare = with_rounds(results / b, tmp_path, [1e-3] * 3)
    Run.open(tmp_path / bare).rewrite_table("rounds.csv", [])       # as if from a run without raw rounds
    shutil.copytree(results / a, tmp_path / a, symlinks=True)
    assert cli.main(["compare", a, bare, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: run {bare} has no raw rounds (rounds.csv) for 1 of its cases, e.g. dummy cpu float32 1 2 "
                   "4 4 train 1: rerun it with this version of lstm-bench\n")

    (tmp_path / bare / "rounds.csv").unlink()
    assert cli.main(["compare", a, bare, "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: run {bare} has no rounds.csv: compare needs the raw rounds; rerun it "
                                       "with this version of lstm-bench\n")


def test_a_truncated_rounds_csv_is_refused_in_one_line(two_runs, tmp_path, capsys):
    """A line cut short, or fewer rounds of a case than timings.csv counted: the gate judges whole rounds or none."""
    results, a, b = two_runs
    shutil.copytree(results / a, tmp_path / a, symlinks=True)
    cut = with_rounds(results / b, tmp_path, [1e-3] * ROUNDS)
    path = tmp_path / cut / "rounds.csv"
    whole = path.read_text()
    path.write_text(whole[:-5])                                        # the last line loses its end
    capsys.readouterr()
    assert cli.main(["compare", a, cut, "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: run {cut}: {path}:{ROUNDS + 1}: skipped a broken line (cut short: no "
                                       "line end); compare needs whole rounds: rerun it, or compare another\n")
    path.write_text("".join(whole.splitlines(keepends=True)[:-4]))      # whole lines, but 4 rounds gone
    assert cli.main(["compare", a, cut, "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: run {cut}: rounds.csv is truncated: {ROUNDS - 4} rounds of dummy cpu "
                                       f"float32 1 2 4 4 train 1, where timings.csv counted {ROUNDS}; compare needs "
                                       "whole rounds: rerun it, or compare another\n")

def test_runs_without_a_common_case_or_throughput_are_refused(tmp_path, capsys, small_gemm):
    r = tmp_path / "r"
    tiny = write_tiny(tmp_path)
    a, _ = sweep.run_sweep(scenario.load(tiny), r, quiet=True)
    other = tmp_path / "other.toml"
    other.write_text(tiny.read_text().replace('impl = "dummy"', 'impl = "fused-lstm"'))
    b, _ = sweep.run_sweep(scenario.load(other), r, quiet=True)
    grads = tmp_path / "grads.toml"
    grads.write_text('name = "g"\n[[gradients]]\nimpl = "dummy"\nhidden = 4\nseq_len = 3\nseeds = 1\n')
    c, _ = sweep.run_sweep(scenario.load(grads), r, quiet=True)
    capsys.readouterr()
    assert cli.main(["compare", a.run_id, b.run_id, "--results", str(r)]) == 2
    assert capsys.readouterr().err == f"error: runs {a.run_id} and {b.run_id} have no successful case in common\n"
    assert cli.main(["compare", a.run_id, c.run_id, "--results", str(r)]) == 2
    assert capsys.readouterr().err == (f"error: run {c.run_id} has no timings.csv: compare needs [[throughput]] "
                                       "results\n")


# -- comparison groups: a shift of the whole group is the machine's, one member's change is the code's ---------
@pytest.fixture(scope="module")
def grouped_runs(tmp_path_factory, small_gemm):
    """Two real runs of three comparison groups (batch 1, 2, 3) of three members each."""
    return two_sweeps(write_group(tmp_path_factory.mktemp("grouped"), batch="[1, 2, 3]"))


def with_factors(src, dest, factors, seed, rounds_of=None, drop=(), canary=None) -> str:
    """A copy of run `src` whose cases have ROUNDS raw rounds each, around 1 ms x factors[(impl, batch)], or
    exactly rounds_of[(impl, batch)]; the cases in `drop` are left out. With `canary` (batch -> factor, 1 where
    not given), each group also has a canary's ROUNDS rounds, around 1 ms x its factor; without, none."""
    shutil.copytree(src, dest / src.name, symlinks=True)
    run = Run.open(dest / src.name)
    rng = np.random.default_rng(seed)
    rows = [r for r in read_rows(run.dir / "timings.csv") if (r["impl"], int(r["batch"])) not in drop]
    rounds = []
    for row in rows:
        seconds = 1e-3 * factors.get((row["impl"], int(row["batch"])), 1.0) * rng.lognormal(0, 0.02, ROUNDS)
        seconds = (rounds_of or {}).get((row["impl"], int(row["batch"])), seconds)
        row["time_median_s"], row["rounds"] = repr(float(np.median(seconds))), len(seconds)
        rounds += [{"run_id": run.run_id, "case_id": row["case_id"], "group_id": row["group_id"], "impl": row["impl"],
                    "round": k, "position": 0, "time_s": t} for k, t in enumerate(seconds)]
    for gid, batch in ({r["group_id"]: int(r["batch"]) for r in rows}.items() if canary is not None else ()):
        seconds = 1e-3 * canary.get(batch, 1.0) * rng.lognormal(0, 0.02, ROUNDS)
        rounds += [{"run_id": run.run_id, "case_id": f"canary:{gid}", "group_id": gid, "impl": "canary", "round": k,
                    "position": 3, "time_s": t} for k, t in enumerate(seconds)]
    run.rewrite_table("timings.csv", rows)
    run.rewrite_table("rounds.csv", rounds)
    return run.run_id


@pytest.fixture
def grouped_gate(grouped_runs, tmp_path, capsys):
    results, a, b = grouped_runs

    def run(factors, args=(), commit=None, with_base=False, rounds_of=None, drop=(), runs=None, canaries=(None, None)):
        src, ra, rb = runs or (results, a, b)
        base = with_factors(src / ra, tmp_path, {}, seed=1, canary=canaries[0])
        new = with_factors(src / rb, tmp_path, factors, seed=2, rounds_of=rounds_of, drop=drop, canary=canaries[1])
        for run_id, sha in ((base, None), (new, commit)):    # clean, whatever the checkout's state; RUN's commit
            r = Run.open(tmp_path / run_id)
            r.meta.git.dirty = False
            r.meta.git.commit = sha or r.meta.git.commit
            r.save()
        capsys.readouterr()
        code = cli.main(["compare", base, new, "--results", str(tmp_path), *args])
        out = capsys.readouterr().out
        shutil.rmtree(tmp_path / base), shutil.rmtree(tmp_path / new)
        return (code, out, base) if with_base else (code, out)
    return run


WHOLE_GROUP = {(impl, 2): 1.4 for impl in ("dummy", "scratch-lstm", "torch-lstm")}   # batch 2's group, all 40%


def test_a_whole_group_that_moved_together_is_the_machines(grouped_gate):
    code, out = grouped_gate(WHOLE_GROUP)
    assert code == 0
    assert "group cpu float32 2 2 4 4 train 1: 3 members moved +4" in out
    assert "(median; 3 of them slower on their own)" in out
    assert "1 of 3 comparison groups moved as a whole (1 slower); not most" in out
    assert "0 of 9 cases slower" in out


def test_one_member_slower_than_its_group_is_a_regression(grouped_gate):
    code, out = grouped_gate({("scratch-lstm", 2): 1.4})
    assert code == 1
    [line] = [x for x in out.splitlines() if x.endswith("SLOWER")]
    assert line.startswith("scratch-lstm cpu float32 2 2 4 4 train 1")
    assert "1 of 9 cases slower" in out


MOST_GROUPS = {(impl, batch): 1.3 for impl in ("dummy", "scratch-lstm", "torch-lstm") for batch in (1, 2)}


def test_most_groups_slower_in_another_commit_is_a_change_common_to_every_case(grouped_gate):
    code, out = grouped_gate(MOST_GROUPS, commit="0123456789abcdef")
    assert code == 1
    assert "  commit: " in out and "-> 0123456789ab" in out
    assert "2 of 3 comparison groups moved as a whole (2 slower); most groups were slower: a change common" in out
    assert "6 of 9 cases slower" in out and "; 2 groups slower as a whole, which counts" in out


def test_most_groups_slower_in_one_clean_commit_is_the_machine(grouped_gate):
    code, out = grouped_gate(MOST_GROUPS)
    assert code == 0
    assert "most groups were slower, but both runs are one clean commit on the same software" in out
    assert "0 of 9 cases slower" in out


def test_no_group_drift_judges_each_case_alone(grouped_gate):
    code, out = grouped_gate(WHOLE_GROUP, ["--no-group-drift"])
    assert code == 1 and "3 of 9 cases slower" in out and "vs group" not in out


def test_the_whole_printout_of_a_known_comparison(grouped_gate):
    """Every line below the environments, literally: the table's numbers and words, the group line, the rule."""
    code, out, base = grouped_gate({**WHOLE_GROUP, ("torch-lstm", 3): 0.7}, with_base=True)
    lines = out.splitlines()
    assert code == 0
    assert lines[next(i for i, x in enumerate(lines) if x.startswith("case ")):] == [
        ("case                                                             base        run      change [95"
         "% interval]        p  vs group  verdict"),
        ("dummy cpu float32 1 2 4 4 train 1                            1.003 ms   0.996 ms         -0.7% ["
         "-1.5, +0.9]     0.56    -1.1%   same"),
        ("dummy cpu float32 2 2 4 4 train 1                            0.999 ms   1.399 ms      +40.0% [+3"
         "8.7, +42.1]  6.8e-08    +0.0%   same"),
        ("dummy cpu float32 3 2 4 4 train 1                            0.992 ms   0.997 ms         +0.5% ["
         "-0.9, +2.1]      0.3    +0.3%   same"),
        ("scratch-lstm cpu float32 1 2 4 4 train 1                     1.001 ms   1.005 ms         +0.4% ["
         "-0.9, +1.7]     0.54    +0.0%   same"),
        ("scratch-lstm cpu float32 2 2 4 4 train 1                     1.002 ms   1.390 ms      +38.7% [+3"
         "7.1, +40.1]  6.8e-08    -0.9%   same"),
        ("scratch-lstm cpu float32 3 2 4 4 train 1                     0.997 ms   0.999 ms         +0.2% ["
         "-1.0, +1.7]     0.51    +0.0%   same"),
        ("torch-lstm cpu float32 1 2 4 4 train 1                       0.998 ms   1.004 ms         +0.6% ["
         "-0.8, +2.9]     0.17    +0.2%   same"),
        ("torch-lstm cpu float32 2 2 4 4 train 1                       1.000 ms   1.409 ms      +40.9% [+3"
         "8.1, +42.6]  6.8e-08    +0.7%   same"),
        ("torch-lstm cpu float32 3 2 4 4 train 1                       1.003 ms   0.699 ms      -30.2% [-3"
         "1.4, -29.3]  6.8e-08   -30.4%   faster"),
        ("group cpu float32 2 2 4 4 train 1: 3 members moved +40.0% together (median; 3 of them slower on "
         "their own): a shift of the whole group"),
        ("1 of 3 comparison groups moved as a whole (1 slower); not most, so more likely the machine durin"
         "g those groups' rounds than the code: a member counts only where it also moved against its group"
         "'s shift (--no-group-drift: each case alone)"),
        (f"0 of 9 cases slower than {base} (ratio > 1.1 and p < 0.01, and so against its group's shift wher"
         f"e the group has 3+ members), 1 faster, 8 the same"),
    ]


def test_the_gates_edges_and_defaults(two_runs, grouped_runs, tmp_path, capsys):
    """alpha 0 is refused like 1; a threshold under 1% is a threshold; compare() on its own warns of another machine
    without refusing it, and judges each case of two real runs against the machine (their canaries)."""
    from harness.analysis import compare
    results, a, b = two_runs
    r = str(results)
    for alpha in ("0", "1"):
        assert cli.main(["compare", a, b, "--results", r, "--alpha", alpha]) == 2
        assert capsys.readouterr().err == f"error: compare: --alpha must be between 0 and 1, not {float(alpha)}\n"
    assert cli.main(["compare", a, b, "--results", r, "--threshold", "-1"]) == 2
    assert capsys.readouterr().err == "error: compare: --threshold must be >= 0 (percent), not -1.0\n"
    base = with_rounds(results / a, tmp_path, [1e-3] * ROUNDS)
    new = with_rounds(results / b, tmp_path, [1.004e-3] * ROUNDS)        # 0.4% slower, every round
    assert cli.main(["compare", base, new, "--results", str(tmp_path), "--threshold", "0.5"]) == 0
    assert "0 of 1 cases slower than" in capsys.readouterr().out
    assert cli.main(["compare", base, new, "--results", str(tmp_path), "--threshold", "0.3"]) == 1
    assert "(ratio > 1.003 and p < 0.01)" in capsys.readouterr().out
    moved = Run.open(tmp_path / new)
    moved.meta.environment["cpu_model"] = "Another CPU"
    moved.save()
    out = compare.compare(tmp_path / base, tmp_path / new)
    assert "warning: the runs come from different machines or threads; a change may be the machine's" in out.lines
    grouped, ga, gb = grouped_runs
    [header] = [x for x in compare.compare(grouped / ga, grouped / gb).lines if x.startswith("case ")]
    assert header.split() == ["case", "base", "run", "change", "[95%", "interval]", "p", "machine", "vs", "machine",
                              "[95%", "interval]", "p", "vs", "m", "verdict"]


def test_min_p_is_the_exact_tests_floor():
    from harness.analysis.compare import min_p
    assert (min_p(3, 3), min_p(1, 1), min_p(0, 4), min_p(20, 20)) == (0.1, 1.0, 1.0, pytest.approx(2 / 137846528820))


@pytest.mark.parametrize("factor,word", [(1.5, "slower"), (0.5, "faster")])
def test_a_p_value_at_alpha_is_not_below_it(two_runs, tmp_path, capsys, factor, word):
    """Three rounds a side without ties: the exact test's p is 2 / C(6, 3) = 0.1 at best, so alpha 0.1 calls
    nothing slower or faster, and says why."""
    results, a, b = two_runs
    base = with_rounds(results / a, tmp_path, [1.00e-3, 1.01e-3, 1.02e-3])
    new = with_rounds(results / b, tmp_path, [factor * t for t in (1.00e-3, 1.01e-3, 1.02e-3)])
    capsys.readouterr()
    assert cli.main(["compare", base, new, "--results", str(tmp_path), "--alpha", "0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "environments: the same machine, threads, software and commit"
    assert [line.split()[-1] for line in out if line.startswith("dummy ")] == ["same"]
    assert ("warning: with this few rounds p cannot go below 0.1 (>= alpha 0.1), so some cases cannot be called "
            "slower: time more rounds") in out
    assert cli.main(["compare", base, new, "--results", str(tmp_path), "--alpha", "0.11", "--threshold", "0"]) == \
        (1 if word == "slower" else 0)
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.startswith("dummy ")] == [
        word.upper() if word == "slower" else word]


def test_the_group_lines_word_for_word(grouped_gate):
    """A whole group faster; a member that moved with its group but a little more is judged against the group;
    and each summary line whole."""
    faster = {(impl, 2): 0.6 for impl in ("dummy", "scratch-lstm", "torch-lstm")}
    code, out = grouped_gate({**faster, ("dummy", 3): 1.3, ("scratch-lstm", 3): 1.3, ("torch-lstm", 3): 1.35})
    lines = out.splitlines()
    assert code == 0
    assert "group cpu float32 2 2 4 4 train 1: 3 members moved -40.0% together (median; 3 of them faster on their " \
           "own): a shift of the whole group" in lines
    assert [x.split()[-1] for x in lines if x.startswith("torch-lstm cpu float32 3 ")] == ["same"]   # 1.35 / 1.3
    assert ("2 of 3 comparison groups moved as a whole (1 slower); not most, so more likely the machine during "
            "those groups' rounds than the code: a member counts only where it also moved against its group's "
            "shift (--no-group-drift: each case alone)") in lines
    code, out = grouped_gate(MOST_GROUPS, commit="0123456789abcdef")
    assert ("2 of 3 comparison groups moved as a whole (2 slower); most groups were slower: a change common to "
            "every case (the software or the commit changed, but it may still be the machine for the whole run: "
            "see the GEMM peaks, and rerun both back to back), so it counts") in out.splitlines()
    code, out = grouped_gate(MOST_GROUPS)
    assert ("2 of 3 comparison groups moved as a whole (2 slower); most groups were slower, but both runs are one "
            "clean commit on the same software: the machine for the whole run (see the GEMM peaks), so a member "
            "counts only where it also moved against its group") in out.splitlines()
    code, out = grouped_gate({}, ["--no-group-drift"])
    header = next(x for x in out.splitlines() if x.startswith("case "))
    assert header.split() == ["case", "base", "run", "change", "[95%", "interval]", "p", "verdict"]


def test_a_member_is_judged_against_its_group_by_its_rounds_divided_by_the_shift(grouped_gate):
    """The group at batch 2 ran 2x slower; torch-lstm's rounds there are split, 9 at 1.8 ms and 11 at 2.6 ms: its
    median is 1.3x the group's shift, but divided by the shift its rounds straddle the base's (rank-test p ~ 0.8),
    so against its group it is the same, and so is its verdict. (Multiplied by the shift, they would not be.)"""
    split = np.array([1.8e-3] * 9 + [2.6e-3] * 11)
    code, out = grouped_gate({(impl, 2): 2.0 for impl in ("dummy", "scratch-lstm")},
                             rounds_of={("torch-lstm", 2): split})
    [line] = [x for x in out.splitlines() if x.startswith("torch-lstm cpu float32 2 ")]
    assert code == 0
    assert line.split()[-2:] == ["+30.0%", "same"]
    assert "0 of 9 cases slower" in out


def test_a_group_too_small_for_drift_says_n_a_beside_groups_that_have_it(grouped_gate):
    code, out = grouped_gate({}, drop={("torch-lstm", 3)})
    lines = out.splitlines()
    assert [x[-16:] for x in lines if x.startswith("dummy cpu float32 3 ")] == ["     n/a    same"]
    assert [x[-16:] for x in lines if x.startswith("dummy cpu float32 1 ")][0].endswith("%   same")
    code, out = grouped_gate({}, ["--no-group-drift"])
    assert "n/a" not in out
    assert [x[-12:] for x in out.splitlines() if x.startswith("dummy cpu float32 1 ")][0].endswith("  same")


@pytest.fixture(scope="module")
def four_groups(tmp_path_factory, small_gemm):
    """Two real runs of four comparison groups (batch 1 to 4) of three members each."""
    return two_sweeps(write_group(tmp_path_factory.mktemp("four"), batch="[1, 2, 3, 4]"))


def test_exactly_half_the_groups_slower_is_not_most(grouped_gate, four_groups):
    half = {(impl, batch): 1.4 for impl in ("dummy", "scratch-lstm", "torch-lstm") for batch in (1, 2)}
    code, out = grouped_gate(half, commit="0123456789abcdef", runs=four_groups)
    assert code == 0
    assert ("2 of 4 comparison groups moved as a whole (2 slower); not most, so more likely the machine during "
            "those groups' rounds than the code: a member counts only where it also moved against its group's "
            "shift (--no-group-drift: each case alone)") in out.splitlines()
    assert "0 of 12 cases slower" in out


# -- the canary: the machine's own change, timed in every group ---------------------------------------------------
CANARY = ({}, {})          # a canary in both runs, every group's around 1 ms


def test_a_slowdown_in_every_member_of_a_group_is_caught_by_the_canary(grouped_gate):
    """Every member of batch 2's group 40% slower, the machine not: the group rule absorbs it, the canary does not."""
    code, out = grouped_gate(WHOLE_GROUP)
    assert code == 0 and "0 of 9 cases slower" in out
    code, out = grouped_gate(WHOLE_GROUP, canaries=CANARY)
    lines = out.splitlines()
    assert code == 1
    assert sorted(x.split(" cpu ")[0] for x in lines if x.endswith("SLOWER") and " 2 2 4 4 " in x) == [
        "dummy", "scratch-lstm", "torch-lstm"]
    assert lines[-1].startswith("3 of 9 cases slower than ") and lines[-1].endswith(
        " (ratio > 1.1 and p < 0.01, both raw and against the machine), 0 faster, 6 the same")
    assert not any(x.startswith("group ") or "lack a canary" in x for x in lines)


def test_a_slowdown_of_the_canary_alone_flags_no_case(grouped_gate):
    code, out = grouped_gate({}, canaries=({}, {2: 1.4}))
    lines = out.splitlines()
    assert code == 0 and lines[-1].endswith("0 faster, 9 the same") and lines[-1].startswith("0 of 9 cases slower")
    assert ("3 cases faster against the machine but not raw: their canary moved and they did not (the canary alone, "
            "or the machine and the code by as much, in opposite ways); counted the same: rerun both back to back to "
            "tell") in lines
    [row] = [x for x in lines if x.startswith("dummy cpu float32 2 ")]
    assert row.split()[-6:] == ["+41.3%", "-29.3%", "[-30.1,", "-27.8]", "6.8e-08", "same"]


def test_a_machine_slower_for_a_group_or_the_whole_run_is_the_machines(grouped_gate):
    code, out = grouped_gate(WHOLE_GROUP, canaries=({}, {2: 1.4}))
    lines = out.splitlines()
    assert code == 0 and lines[-1].startswith("0 of 9 cases slower")
    assert "3 cases slower raw but not against the machine: their groups' canary moved with them, so it was the " \
           "machine; counted the same" in lines
    everything = {(impl, batch): 1.3 for impl in ("dummy", "scratch-lstm", "torch-lstm") for batch in (1, 2, 3)}
    code, out, base = grouped_gate(everything, canaries=({}, {1: 1.3, 2: 1.3, 3: 1.3}), with_base=True)
    lines = out.splitlines()
    assert code == 0 and lines[-1].startswith("0 of 9 cases slower")
    machine = next(i for i, x in enumerate(lines) if x.startswith("machine "))
    assert lines[machine].startswith("machine cpu 1 threads, by its canary in 3 groups: median ")
    whole = re.fullmatch(rf"the machine was (\d+)% slower for the whole of \S+ than for {base} \(cpu, 1 threads, its "
                         r"canary\): every case's raw change includes that, so a verdict also needs the change against "
                         r"the machine", lines[machine + 1])
    assert whole and 28 <= int(whole[1]) <= 32                   # 1.3 x lognormal noise, 20 rounds in each of 3 groups
    assert "9 cases slower raw but not against the machine: their groups' canary moved with them, so it was the " \
           "machine; counted the same" in lines


def test_the_whole_printout_with_a_canary(grouped_gate):
    """Every line from the machine's on, literally: the canary's medians, the table's three changes, the rule."""
    code, out, base = grouped_gate({("dummy", 1): 1.4, ("dummy", 2): 1.4}, canaries=({}, {2: 1.4}), with_base=True)
    lines = out.splitlines()
    assert code == 1
    assert lines[next(i for i, x in enumerate(lines) if x.startswith("machine ")):] == [
        "machine cpu 1 threads, by its canary in 3 groups: median 0.995 ms -> 1.016 ms (+2.1% [+1.0, +4.9])",
        ("case                                                             base        run      change [95% interval]"
         "        p   machine   vs machine [95% interval]   p vs m  verdict"),
        ("dummy cpu float32 1 2 4 4 train 1                            1.003 ms   1.394 ms      +39.0% [+37.9, +41.2]"
         "  6.8e-08     +0.1%       +38.9% [+35.9, +41.8]  6.8e-08  SLOWER"),
        ("dummy cpu float32 2 2 4 4 train 1                            0.999 ms   1.399 ms      +40.0% [+38.7, +42.1]"
         "  6.8e-08    +41.3%          -1.0% [-2.2, +1.0]     0.13  same"),
        ("dummy cpu float32 3 2 4 4 train 1                            0.992 ms   0.997 ms         +0.5% [-0.9, +2.1]"
         "      0.3     +0.4%          +0.1% [-2.6, +2.3]     0.71  same"),
        ("scratch-lstm cpu float32 1 2 4 4 train 1                     1.001 ms   1.005 ms         +0.4% [-0.9, +1.7]"
         "     0.54     +0.1%          +0.3% [-2.3, +2.5]     0.66  same"),
        ("scratch-lstm cpu float32 2 2 4 4 train 1                     1.002 ms   0.993 ms         -0.9% [-2.1, +0.0]"
         "     0.23    +41.3%       -29.9% [-31.0, -28.7]  6.8e-08  same"),
        ("scratch-lstm cpu float32 3 2 4 4 train 1                     0.997 ms   0.999 ms         +0.2% [-1.0, +1.7]"
         "     0.51     +0.4%          -0.2% [-2.8, +1.9]     0.99  same"),
        ("torch-lstm cpu float32 1 2 4 4 train 1                       0.998 ms   1.004 ms         +0.6% [-0.8, +2.9]"
         "     0.17     +0.1%          +0.5% [-2.0, +3.5]     0.17  same"),
        ("torch-lstm cpu float32 2 2 4 4 train 1                       1.000 ms   1.007 ms         +0.6% [-1.3, +1.9]"
         "     0.69    +41.3%       -28.8% [-30.2, -27.6]  6.8e-08  same"),
        ("torch-lstm cpu float32 3 2 4 4 train 1                       1.003 ms   0.999 ms         -0.4% [-2.1, +0.9]"
         "     0.42     +0.4%          -0.7% [-3.5, +1.3]     0.17  same"),
        ("1 case slower raw but not against the machine: their groups' canary moved with them, so it was the machine; "
         "counted the same"),
        ("2 cases faster against the machine but not raw: their canary moved and they did not (the canary alone, or "
         "the machine and the code by as much, in opposite ways); counted the same: rerun both back to back to tell"),
        (f"1 of 9 cases slower than {base} (ratio > 1.1 and p < 0.01, both raw and against the machine), 0 faster, 8 "
         "the same"),
    ]


def test_a_run_without_a_canary_falls_back_to_the_group_rule_and_says_so(grouped_gate):
    code, out, base = grouped_gate(WHOLE_GROUP, canaries=(None, {}), with_base=True)
    lines = out.splitlines()
    assert code == 0 and "0 of 9 cases slower" in out
    assert (f"9 of 9 cases lack a canary in one run or both ({base} timed none: a run before format 3): they are "
            "judged against their group's median shift instead, which absorbs a change shared by most of a group") \
        in lines
    assert next(x for x in lines if x.startswith("case ")).endswith("vs group  verdict")
    code, out = grouped_gate(WHOLE_GROUP, ["--no-group-drift"], canaries=(None, None))
    assert code == 1 and "they are judged alone" in out


def test_a_real_slowdown_planted_in_every_member_is_caught(tmp_path, capsys, small_gemm):
    """Real timings: scripts/planted-slowdown.py puts 2 ms in every step of the group's three members (and not in
    the canary). compare calls all three slower. The same two runs without their canaries miss at least the member
    whose change is the group's median (against its group it moved 0%): to the group rule, a whole group that
    moved between two runs of one clean commit is the machine."""
    p = tmp_path / "planted.toml"
    p.write_text('name = "planted"\n[defaults]\nthreads = 1\nrounds = 10\nwarmup = 1\n[[throughput]]\n'
                 'impl = ["dummy", "scratch-lstm", "torch-lstm"]\nhidden = 4\nseq_len = 2\nbatch = 1\n'
                 'phase = "train"\nmemory = false\n')
    spec = importlib.util.spec_from_file_location("planted", Path(__file__).parents[1] / "scripts/planted-slowdown.py")
    planted = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(planted)
    results = tmp_path / "r"
    base, _ = sweep.run_sweep(scenario.load(p), results, quiet=True)
    build = timing.build_step
    planted.plant(0.002)
    try:
        slow, _ = sweep.run_sweep(scenario.load(p), results, quiet=True)
    finally:
        timing.build_step = build
    for run in (base, slow):                                           # one clean commit, whatever the checkout's
        r = Run.open(run.dir)
        r.meta.git.dirty, r.meta.git.commit = False, "0123456789abcdef"
        r.save()
    capsys.readouterr()
    assert cli.main(["compare", base.run_id, slow.run_id, "--results", str(results)]) == 1
    out = capsys.readouterr().out
    assert "3 of 3 cases slower than" in out and "both raw and against the machine" in out
    for run in (base, slow):                                           # the same runs, as if of format 2
        Run.open(run.dir).rewrite_table("rounds.csv", [r for r in read_rows(run.dir / "rounds.csv")
                                                       if r["impl"] != "canary"])
    cli.main(["compare", base.run_id, slow.run_id, "--results", str(results)])
    out = capsys.readouterr().out
    assert "3 of 3 cases lack a canary" in out and "1 of 1 comparison groups moved as a whole (1 slower)" in out
    assert "3 of 3 cases slower" not in out and "    +0.0%   same" in out
