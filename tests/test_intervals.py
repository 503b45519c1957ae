"""Comparison groups: the round order, interleaving, adaptive rounds, and the intervals over rounds."""
import itertools
import re
import time

import numpy as np
import pytest

from harness.config import cases, scenario
from harness.config.cases import case_id
from harness.core import env, intervals
from harness.measure import timing
from harness.measure.canary import Canary
from harness.report.render import render
from harness.run import sweep
from harness.store.meta import Shard
from harness.store.runs import read_rows, select


# -- the statistics ---------------------------------------------------------------------------------
def test_median_interval_is_the_order_statistics_the_binomial_gives():
    assert intervals.median_ci(range(1, 11)) == (2.0, 9.0)        # P(B(10, 1/2) <= 1) = 11/1024 < 2.5%
    assert intervals.median_ci([5, 1, 4, 2, 3]) == (1.0, 5.0)     # under 6 values: the range
    assert intervals.median_ci(list(range(1, 101)))[0] == 40.0    # n = 100: the 40th and 61st
    assert intervals.median_ci(list(range(1, 101)))[1] == 61.0
    assert intervals.half_width([1.0] * 6) == 0.0


def test_a_2x_ratio_with_small_noise_holds_2_and_excludes_1():
    rng = np.random.default_rng(3)
    base = 1e-3 * (1 + 0.02 * rng.standard_normal(15))
    slow = 2 * base * (1 + 0.02 * rng.standard_normal(15))
    for paired in (True, False):
        ratio, lo, hi = intervals.ratio_ci(slow, base, paired=paired)
        assert lo < 2 < hi and lo > 1
        assert ratio == pytest.approx(2, rel=0.03)
        assert intervals.difference(lo, hi) == "slower"


def test_identical_distributions_give_an_interval_that_holds_1():
    rng = np.random.default_rng(4)
    a, b = 1e-3 * rng.lognormal(0, 0.05, 20), 1e-3 * rng.lognormal(0, 0.05, 20)
    ratio, lo, hi = intervals.ratio_ci(a, b, paired=False)
    assert lo < 1 < hi
    assert intervals.difference(lo, hi) == "no measurable difference"
    assert intervals.ratio_ci(a, a, paired=True) == (1.0, 1.0, 1.0)


def test_the_bootstrap_is_reproducible_and_refuses_unpaired_counts():
    rng = np.random.default_rng(5)
    a, b = rng.lognormal(0, 0.1, 12), rng.lognormal(0, 0.1, 12)
    assert intervals.ratio_ci(a, b, paired=True) == intervals.ratio_ci(a, b, paired=True)
    with pytest.raises(ValueError, match="equal counts, not 12 and 11"):
        intervals.ratio_ci(a, b[:11], paired=True)
    assert np.isnan(intervals.ratio_ci([1.0], [2.0], paired=True)[1])



def test_the_ratio_against_the_canary_resamples_a_case_with_its_canary_round_by_round():
    """Each round's machine state moves the case and its canary alike: paired by round, RUN's case at exactly 1.5x
    its canary gives 1.5 in every resample, however much the machine drifted; unpaired, the drift widens it."""
    rng = np.random.default_rng(6)
    drift = rng.uniform(1, 3, 20)                          # the machine, round by round: up to 3x slower
    canary_b, canary_n = 1e-3 * rng.lognormal(0, 0.01, 20), 1e-3 * drift
    case_b, case_n = 2 * canary_b, 3 * canary_n            # RUN's case 1.5x BASE's, against each run's canary
    assert intervals.normalised_ratio_ci(case_n, canary_n, case_b, canary_b) == pytest.approx((1.5, 1.5, 1.5))
    r, lo, hi = intervals.normalised_ratio_ci(case_n, canary_n[:19], case_b, canary_b)   # 19 canary rounds: unpaired
    assert r == pytest.approx(1.5, rel=0.1) and hi - lo > 0.3
    assert intervals.normalised_ratio_ci(case_n, canary_n, case_b, canary_b) == \
        intervals.normalised_ratio_ci(case_n, canary_n, case_b, canary_b)                 # a fixed seed
    assert np.isnan(intervals.normalised_ratio_ci([1.0], [1.0], [1.0, 2.0], [1.0, 1.0])[1])

def test_mann_whitney_and_t_quantiles():
    assert intervals.mann_whitney_p([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]) == pytest.approx(2 / 924)
    assert intervals.mann_whitney_p([], [1.0]) == 1.0
    assert intervals.t_quantile(2) == pytest.approx(4.302653, abs=1e-6)


# -- the round order and the interleaving ------------------------------------------------------------
def test_a_seed_gives_an_exact_order():
    assert list(itertools.islice(timing.orders(3, 7), 4)) == [[2, 0, 1], [2, 0, 1], [1, 2, 0], [2, 0, 1]]
    assert list(itertools.islice(timing.orders(3, 7), 4)) == list(itertools.islice(timing.orders(3, 7), 4))
    assert list(itertools.islice(timing.orders(3, 8), 4)) != list(itertools.islice(timing.orders(3, 7), 4))
    assert timing.order_seed("5c235f96b4c4", 0) == 0x5c235f96 and timing.order_seed("5c235f96b4c4", 2) == 0x5c235f98


class FakeClock:
    """A clock that moves only when a step runs: step i takes `seconds[i]`."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_steps(clock, seconds, log, fail_at=None):
    def make(i):
        def run():
            log.append(i)
            if fail_at and fail_at[0] == i and log.count(i) == fail_at[1]:
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
            clock.now += seconds[i]
        return timing.Step(model=None, run=run, setup=lambda: None, sync=lambda: None, params=0)
    return [make(i) for i in range(len(seconds))]


def test_interleaved_rounds_time_every_member_once_per_round_in_the_seeded_order():
    clock, log = FakeClock(), []
    gt = timing.time_group(fake_steps(clock, [1.0, 2.0, 3.0], log), rounds=4, warmup=2, seed=7, clock=clock)
    assert log[:6] == [0, 1, 2, 0, 1, 2]                          # every member's warm-up first
    assert log[6:] == [2, 0, 1, 2, 0, 1, 1, 2, 0, 2, 0, 1]        # then timing.orders(3, 7), round by round
    assert gt.times == [[1.0] * 4, [2.0] * 4, [3.0] * 4]
    assert [(m, r, p) for m, r, p, _ in gt.rounds][:3] == [(2, 0, 0), (0, 0, 1), (1, 0, 2)]
    assert gt.interleaved and gt.seed == 7 and gt.errors == [None] * 3


def test_blocked_rounds_time_each_member_as_one_block():
    clock, log = FakeClock(), []
    gt = timing.time_group(fake_steps(clock, [1.0, 2.0], log), rounds=3, warmup=1, interleave=False, clock=clock)
    assert log == [0, 0, 0, 0, 1, 1, 1, 1]
    assert gt.times == [[1.0] * 3, [2.0] * 3] and not gt.interleaved


def test_a_member_that_raises_drops_out_and_the_others_go_on():
    clock, log = FakeClock(), []
    gt = timing.time_group(fake_steps(clock, [1.0, 2.0], log, fail_at=(1, 3)), rounds=5, warmup=0, seed=1,
                           clock=clock)
    assert isinstance(gt.errors[1], RuntimeError) and gt.errors[0] is None
    assert len(gt.times[0]) == 5 and len(gt.times[1]) == 2


def test_auto_rounds_stop_when_every_median_is_precise_or_time_is_up():
    clock = FakeClock()
    gt = timing.time_group(fake_steps(clock, [1.0, 2.0], []), rounds="auto", warmup=0, clock=clock)
    assert [len(t) for t in gt.times] == [intervals.MIN_ROUNDS_FOR_CI] * 2   # constant times: precise at once

    jitter = itertools.cycle([1.0, 1.5])                         # +-20%: never precise to 2%

    def noisy():
        clock.now += next(jitter)
    step = timing.Step(model=None, run=noisy, setup=lambda: None, sync=lambda: None, params=0)
    gt = timing.time_group([step], rounds="auto", warmup=0, max_time_s=20.0, clock=clock)
    assert len(gt.times[0]) == 16 and sum(gt.times[0]) == 20.0   # 8 x (1.0 + 1.5): the 20 s are up


# -- groups in the sweep and the store -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def _small_gemm(small_gemm):
    """Every sweep here measures its GEMM peak on a small matmul (conftest.small_gemm)."""


def write_group(tmp_path, extra="", batch="[1, 2]"):
    """Comparison groups of dummy, scratch-lstm and torch-lstm, one per batch size."""
    p = tmp_path / "group.toml"
    p.write_text(f"""
name = "group"
[defaults]
threads = 1
rounds = 3
warmup = 1
{extra}
[[throughput]]
impl = ["dummy", "scratch-lstm", "torch-lstm"]
hidden = 4
seq_len = 2
batch = {batch}
phase = "train"
memory = false
""")
    return p


def test_groups_are_the_cases_that_differ_only_in_impl(tmp_path):
    cs = scenario.expand(scenario.load(write_group(tmp_path)))
    gs = cases.groups(cs)
    assert [[(c.impl, c.batch) for c in g] for g in gs] == [
        [("dummy", 1), ("scratch-lstm", 1), ("torch-lstm", 1)], [("dummy", 2), ("scratch-lstm", 2), ("torch-lstm", 2)]]
    assert len({cases.group_id(c) for c in gs[0]}) == 1 and cases.group_id(gs[0][0]) != cases.group_id(gs[1][0])
    assert [len(select(cs, Shard(index=i, count=2))) for i in (0, 1)] == [3, 3]   # never split


def test_a_sweep_writes_rounds_ratios_and_the_order_it_used(tmp_path):
    run, rows = sweep.run_sweep(scenario.load(write_group(tmp_path)), tmp_path / "r", quiet=True)
    timings = read_rows(run.dir / "timings.csv")
    rounds = read_rows(run.dir / "rounds.csv")
    assert [(r["impl"], r["ratio_ref"]) for r in timings] == [("dummy", "torch-lstm"), ("scratch-lstm", "torch-lstm"),
                                                                ("torch-lstm", "torch-lstm")] * 2
    assert {r["interleave"] for r in timings} == {"True"} and {r["rounds"] for r in timings} == {"3"}
    ref = [r for r in timings if r["impl"] == "torch-lstm"]
    assert {(r["ratio"], r["ratio_ci_low"], r["ratio_ci_high"]) for r in ref} == {("1.0", "1.0", "1.0")}
    assert len(rounds) == 24                                      # 6 cases x 3 rounds, and a canary's 3 a group
    for g in {r["group_id"] for r in timings}:
        seed = next(int(r["order_seed"]) for r in timings if r["group_id"] == g)
        ids = [r["case_id"] for r in timings if r["group_id"] == g] + [cases.canary_id(g)]   # the canary: last
        got = [[ids.index(r["case_id"]) for r in rounds if r["group_id"] == g and r["round"] == str(k)]
               for k in range(3)]
        assert got == list(itertools.islice(timing.orders(4, seed), 3))        # shuffled with the cases
        canary = sorted(float(r["time_s"]) for r in rounds if r["group_id"] == g and r["impl"] == cases.CANARY)
        assert len(canary) == 3 and {float(r["canary_median_s"]) for r in timings if r["group_id"] == g} == {canary[1]}
    first = timings[0]["canary_median_s"]
    assert [float(r["canary_ratio"]) for r in timings[:3]] == [1.0] * 3                 # the run's first group
    assert {float(r["canary_ratio"]) for r in timings[3:]} == {float(timings[3]["canary_median_s"]) / float(first)}
    for r in timings:                                              # the row's median is its rounds' median
        mine = sorted(float(x["time_s"]) for x in rounds if x["case_id"] == r["case_id"])
        assert float(r["time_median_s"]) == mine[1]


def test_interleave_false_brings_back_block_timing(tmp_path):
    run, _ = sweep.run_sweep(scenario.load(write_group(tmp_path, "interleave = false")), tmp_path / "r", quiet=True)
    rounds = read_rows(run.dir / "rounds.csv")
    impls = [r["impl"] for r in rounds[:9]]
    assert impls == ["dummy"] * 3 + ["scratch-lstm"] * 3 + ["torch-lstm"] * 3
    assert {r["order_seed"] for r in read_rows(run.dir / "timings.csv")} == {""}


def test_resume_reruns_a_half_finished_group_whole(tmp_path):
    run, _ = sweep.run_sweep(scenario.load(write_group(tmp_path)), tmp_path / "r", quiet=True)
    timings = read_rows(run.dir / "timings.csv")
    second = timings[3]["group_id"]
    # as if killed while the second group's row were being written: one member's row made it
    run.rewrite_table("timings.csv", timings[:4])
    run, rows = sweep.run_sweep(None, resume=run.dir, quiet=True)
    assert [r["impl"] for r in rows] == ["dummy", "scratch-lstm", "torch-lstm"]
    again = read_rows(run.dir / "timings.csv")
    assert [r["case_id"] for r in again] == [r["case_id"] for r in timings]
    assert sum(r["group_id"] == second for r in read_rows(run.dir / "rounds.csv")) == 12   # its canary's too, once
    assert run.meta.counts == {"ok": 6}
    assert {case_id(c) for c in run.cases()} == {r["case_id"] for r in again}


# -- CPU steal ------------------------------------------------------------------------------------------
def test_steal_between_two_samples():
    a = env.CpuSample(busy=1000, total=2000, steal=10, load_1m=1.0)
    b = env.CpuSample(busy=1150, total=2200, steal=30, load_1m=2.0)
    assert env.steal_between(a, b) == (0.1, 1.5)                   # 20 of 200 ticks
    short = env.CpuSample(busy=1010, total=2050, steal=20, load_1m=1.0)
    assert env.steal_between(a, short) == (None, 1.0)              # 50 ticks: too short to tell
    assert env.steal_between(None, b) == (None, None)


def test_a_group_measured_under_steal_is_flagged_noisy_in_rows_and_report(tmp_path, monkeypatch):
    samples = iter(itertools.cycle([env.CpuSample(0, 0, 0, 0.5), env.CpuSample(900, 1000, 80, 1.5)]))
    monkeypatch.setattr(env, "cpu_sample", lambda: next(samples))   # 8% steal over every group
    run, _ = sweep.run_sweep(scenario.load(write_group(tmp_path)), tmp_path / "r", quiet=True)
    rows = read_rows(run.dir / "timings.csv")
    assert {(r["noisy"], r["steal_fraction"], r["load_avg"]) for r in rows} == {("True", "0.08", "1.0")}
    assert all(r["noisy_why"].startswith("steal 8.00%") for r in rows)          # and the canary's, where it moved
    out = render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True, strict=True)
    page = (out / "index.html").read_text()
    assert "2 comparison groups were noisy (noisy in timings.csv; 2 by CPU steal over 5%, " in page
    noisy = page.split('<table id="noisy">')[1].split("</table>")[0]
    assert noisy.count("<tr>") == 3 and "<td>8.00%</td>" in noisy      # the header and both groups


# -- the canary: the machine's speed in every group --------------------------------------------------------------
def test_a_canary_that_moved_makes_its_group_noisy_and_the_report_says_why(tmp_path, monkeypatch):
    """The second group's canary takes twice the first's: its rows say the machine moved, the report counts it."""
    delays = iter([0.002, 0.004])                                   # s per canary round: group 1, group 2

    def make(device):
        canary = Canary(device, None, None)
        canary.delay = next(delays)
        return canary
    monkeypatch.setattr(Canary, "make", staticmethod(make))
    monkeypatch.setattr(Canary, "timed", lambda self: time.sleep(self.delay))
    run, _ = sweep.run_sweep(scenario.load(write_group(tmp_path)), tmp_path / "r", quiet=True)
    rows = read_rows(run.dir / "timings.csv")
    assert [r["noisy"] for r in rows[3:]] == ["True"] * 3
    assert all((r["noisy"] == "True") == (r["noisy_why"] != "") for r in rows)   # group 1: noisy only if sleep jittered
    moved = [re.search(r"canary moved \+(\d+)% from the run's median so far", r["noisy_why"]) for r in rows]
    assert moved[:3] == [None] * 3 and len({m[1] for m in moved[3:]}) == 1 and 25 <= int(moved[3][1]) <= 40  # 4 / 3
    assert 1.8 <= float(rows[3]["canary_ratio"]) <= 2.2                            # 4 / 2: against the run's first
    assert {float(r["canary_ratio"]) for r in rows[:3]} == {1.0}
    page = (render(run.run_id, tmp_path / "r", tmp_path / "rep", quiet=True, strict=True) / "index.html").read_text()
    assert re.search(r"comparison groups were noisy \(noisy in timings.csv; 0 by CPU steal over 5%, \d by a canary "
                     r"wider than \+-5%, 1 by a canary that moved over 10%", page)


def test_a_canary_that_cannot_run_leaves_the_group_timed_as_without_and_says_why(tmp_path, monkeypatch):
    def make(device):
        raise RuntimeError("no such device for the canary\nsecond line")
    monkeypatch.setattr(Canary, "make", staticmethod(make))
    run, _ = sweep.run_sweep(scenario.load(write_group(tmp_path)), tmp_path / "r", quiet=True)
    rows = read_rows(run.dir / "timings.csv")
    assert {(r["status"], r["noisy"], r["noisy_why"], r["canary_median_s"], r["canary_ratio"]) for r in rows} == {
        ("ok", "False", "no canary: RuntimeError: no such device for the canary", "", "")}
    rounds = read_rows(run.dir / "rounds.csv")
    assert len(rounds) == 18 and cases.CANARY not in {r["impl"] for r in rounds}     # 6 cases x 3 rounds, no canary
