"""The regression gate: is RUN slower than BASE? (python -m harness compare BASE RUN, make bench-compare)

    result = compare(base_dir, run_dir, threshold=10, alpha=0.01)
    print("\\n".join(result.lines)); sys.exit(result.exit_code)

Per case the two runs both timed successfully (the same cases.KEY_COLUMNS):

- the test: a two-sided Mann-Whitney U test on the two runs' raw rounds
  (rounds.csv), and the ratio of medians RUN / BASE with a 95% bootstrap
  interval (unpaired: the runs' rounds are not matched);
- slower: the ratio is above 1 + threshold/100 AND p < alpha;
  faster: the ratio is below 1 / (1 + threshold/100) AND p < alpha;
  same:   otherwise (a change too small to matter, or one noise could make).

A case's time moves with the code and with the machine. Every comparison group
of a format-3 run timed a canary among its members (measure/canary.py): the same
fixed work in every group of every run, so its change between the two runs,
median(RUN's canary) / median(BASE's canary) for the case's group, is the
machine's ("machine"). Each case's raw change is divided by it ("vs machine",
with an interval that resamples each run's case and canary rounds together:
intervals.normalised_ratio_ci), and the rank test is run again on RUN's rounds
divided by it ("p vs m"). A case is slower (faster) only when both its raw
change and its change against the machine are, by the rule above: a machine
that slowed a whole group, or a whole run, is the machine's; a canary that moved
alone is the canary's. Where the two disagree, the case is the same and a line
says how many did, and why that may be. Each (device, threads)'s canary
medians over the whole of both runs are printed, and a whole-run change beyond
thresholds.CANARY_MOVED, with its interval clear of 1, is named: the machine.

A case whose group has no canary in both runs (a format-2 run, or a canary
that could not run on the device) falls back to the group-median rule, and a
line says so: with 3 or more members in both runs, a member is slower only when
it is slower both on its own and against its group's common shift (the median
of its members' ratios: `group_shifts`). That rule absorbs a change shared by
half or more of a group's members; a group that moved as a whole counts only
when most groups moved slower and the runs differ in commit or software.
group_drift=False (--no-group-drift) judges each such case alone.

The GEMM peaks of both runs are printed per library, and a ceiling (the best library's peak) that
moved by more than thresholds.CEILING_MOVED is a warning: the machine changed, not only the code.

Exit status 1 when any case is slower, else 0. How the two environments
differ is printed first; a different machine (CPU or GPU model, cores, host)
or different threads is warned about, and with strict_env refused (exit 2).
Bad input is one line and exit 2 (errors.UsageError): an unknown run, no case
in common, a case without raw rounds, or a rounds.csv that is truncated (a
broken line, or fewer rounds of a case than its timings row counted).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.analysis.environments import environment_lines, gemm_lines, same_code
from harness.config.cases import CANARY, KEY_COLUMNS, KEY_DEFAULTS, row_key
from harness.core import intervals
from harness.core.errors import UsageError
from harness.core.thresholds import CANARY_MOVED
from harness.store.columns import ROUNDS, TIMINGS
from harness.store.meta import read_meta
from harness.store.runs import read_rows, writer_gone

ALPHA = 0.01          # default significance level of the rank test (--alpha)
THRESHOLD = 10.0      # default: percent slower that counts as a regression (--threshold)
MIN_GROUP_FOR_DRIFT = 3   # members a group needs in both runs before its common shift can be told from one member's


@dataclass
class Comparison:
    lines: list[str] = field(default_factory=list)   # what to print, in order
    verdicts: dict[str, int] = field(default_factory=dict)   # slower / faster / same -> cases
    exit_code: int = 0


@dataclass
class Side:
    """One run's cases (KEY_COLUMNS -> (ok timings row, raw rounds in round order)) and its canaries' rounds (group_id
    -> rounds in round order)."""

    cases: dict[tuple, tuple[dict, list[float]]]
    canaries: dict[str, list[float]]


def _side(run_dir: Path) -> Side:
    """A run's cases and canaries; a rounds.csv with a broken line, or with fewer rounds of a case than its timings
    row counted, is refused: a gate judges whole rounds or nothing."""
    broken: list[str] = []
    rows = {row_key(r): r for r in read_rows(run_dir / TIMINGS) if r["status"] == "ok"}
    by_case: dict[str, list[tuple[int, float]]] = {}
    canaries: dict[str, list[tuple[int, float]]] = {}
    for r in read_rows(run_dir / ROUNDS, broken):
        into = canaries.setdefault(r["group_id"], []) if r["impl"] == CANARY else by_case.setdefault(r["case_id"], [])
        into.append((int(r["round"]), float(r["time_s"])))
    if broken:
        raise UsageError(f"run {run_dir.name}: {broken[0]}; compare needs whole rounds: rerun it, or compare another")
    cases = {k: (r, [t for _, t in sorted(by_case.get(r["case_id"], []))]) for k, r in rows.items()}
    for k, (r, times) in cases.items():
        if times and r.get("rounds") and len(times) < int(r["rounds"]):
            raise UsageError(f"run {run_dir.name}: rounds.csv is truncated: {len(times)} rounds of "
                             f"{case_name(k, impl=True)}, where timings.csv counted {r['rounds']}; compare needs "
                             "whole rounds: rerun it, or compare another")
    return Side(cases, {g: [t for _, t in sorted(x)] for g, x in canaries.items()})


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact Mann-Whitney test can give with n and m rounds (no ties)."""
    return min(1.0, 2 / math.comb(n + m, n))


@dataclass
class Judged:
    """One common case: its raw change, its change against the machine (canary mode) or its group, and its verdict."""

    key: tuple
    group: tuple                   # _group: (BASE group_id, RUN group_id, name)
    ratio: float                   # median(RUN) / median(BASE), with its 95% interval
    lo: float
    hi: float
    p: float                       # rank test on the raw rounds
    own: str                       # the raw verdict
    mb: float                      # the two runs' medians (timings.csv), s
    mn: float
    machine: float | None = None   # the canary's RUN / BASE for the case's groups (None: no canary in both)
    rel: tuple | None = None       # (ratio, lo, hi, p) against the machine, or (ratio, nan, nan, p) against the group
    rel_verdict: str | None = None
    final: str = "same"


def compare(base_dir: Path, run_dir: Path, threshold: float = THRESHOLD, alpha: float = ALPHA,
            strict_env: bool = False, group_drift: bool = True) -> Comparison:
    """Every common case's test and verdict (module docstring)."""
    if not 0 < alpha < 1:
        raise UsageError(f"compare: --alpha must be between 0 and 1, not {alpha}")
    if threshold < 0:
        raise UsageError(f"compare: --threshold must be >= 0 (percent), not {threshold}")
    for d in (base_dir, run_dir):
        if not (d / TIMINGS).is_file():
            raise UsageError(f"run {d.name} has no timings.csv: compare needs [[throughput]] results")
        if not (d / ROUNDS).is_file():
            raise UsageError(f"run {d.name} has no rounds.csv: compare needs the raw rounds; rerun it with this "
                             "version of lstm-bench")
    sb, sn = _side(base_dir), _side(run_dir)
    b, n = sb.cases, sn.cases
    common = sorted(set(b) & set(n))
    if not common:
        raise UsageError(f"runs {base_dir.name} and {run_dir.name} have no successful case in common")
    for name, cases in ((base_dir.name, b), (run_dir.name, n)):
        bare = [k for k in common if not cases[k][1]]
        if bare:
            raise UsageError(f"run {name} has no raw rounds (rounds.csv) for {len(bare)} of its cases, e.g. "
                             f"{case_name(bare[0], impl=True)}: rerun it with this version of lstm-bench")
    out = Comparison()
    threads = ({b[k][0]["threads"] for k in common}, {n[k][0]["threads"] for k in common})
    meta_b, meta_n = read_meta(base_dir), read_meta(run_dir)
    diff, machine = environment_lines(meta_b, meta_n, threads)
    out.lines += [f"warning: {gone}" for d, m in ((base_dir, meta_b), (run_dir, meta_n))
                  if (gone := writer_gone(d, m))]
    out.lines.append(f"environments, {base_dir.name} -> {run_dir.name}:" if diff else
                     "environments: the same machine, threads, software and commit")
    out.lines += diff + gemm_lines(meta_b, meta_n)
    if machine:
        if strict_env:
            raise UsageError(f"compare --strict-env: the runs were measured differently ({machine[0].strip()}); "
                             "compare runs of one machine and thread count, or drop --strict-env")
        out.lines.append("warning: the runs come from different machines or threads; a change may be the machine's")
    up, down = 1 + threshold / 100, 1 / (1 + threshold / 100)

    def verdict(ratio: float, p: float) -> str:
        return "slower" if ratio > up and p < alpha else "faster" if ratio < down and p < alpha else "same"

    def canaries(k: tuple) -> tuple[list[float], list[float]] | None:
        cb, cn = sb.canaries.get(b[k][0]["group_id"]), sn.canaries.get(n[k][0]["group_id"])
        return (cb, cn) if cb and cn else None

    with_canary = [k for k in common if canaries(k)]
    without = [k for k in common if not canaries(k)]
    out.lines += machine_lines(with_canary, b, n, canaries, run_dir.name, base_dir.name)
    if without:
        runs = [d.name for d, s in ((base_dir, sb), (run_dir, sn)) if not s.canaries]
        out.lines.append(f"{len(without)} of {len(common)} cases lack a canary in one run or both ("
                         + (f"{' and '.join(runs)} timed none: a run before format 3" if runs else
                            "a canary that could not run on the device")
                         + "): they are judged " + ("against their group's median shift instead, which absorbs a "
                                                    "change shared by most of a group" if group_drift else "alone"))
    shifts = {} if not group_drift else group_shifts(without, b, n)
    floor = 0.0
    judged = []
    for k in common:
        tb, tn = b[k][1], n[k][1]
        ratio, lo, hi = intervals.ratio_ci(tn, tb, paired=False)
        p = intervals.mann_whitney_p(tn, tb)
        floor = max(floor, min_p(len(tb), len(tn)))
        j = Judged(k, _group(k, b, n), ratio, lo, hi, p, verdict(ratio, p), float(b[k][0]["time_median_s"]),
                   float(n[k][0]["time_median_s"]))
        if pair := canaries(k):
            cb, cn = pair
            j.machine = float(np.median(cn)) / float(np.median(cb))
            r, r_lo, r_hi = intervals.normalised_ratio_ci(tn, cn, tb, cb)
            j.rel = (r, r_lo, r_hi, intervals.mann_whitney_p([t / j.machine for t in tn], tb))
        elif j.group in shifts:                           # against the group's common shift
            s_g = shifts[j.group]
            j.rel = (ratio / s_g, math.nan, math.nan, intervals.mann_whitney_p([t / s_g for t in tn], tb))
        j.rel_verdict = None if j.rel is None else verdict(j.rel[0], j.rel[3])
        judged.append(j)
    group_out, common_change, slower_groups = group_lines(judged, shifts, up, down, same_code(meta_b, meta_n))
    out.verdicts = {"slower": 0, "faster": 0, "same": 0}
    for j in judged:
        # slower (faster) both raw and against the machine or its group; raw alone when most groups were slower
        j.final = j.own if j.rel_verdict is None or j.rel_verdict == j.own or (
            common_change and j.machine is None) else "same"
        out.verdicts[j.final] += 1
    out.lines += table_lines(judged, bool(with_canary), bool(shifts))
    if floor >= alpha:
        out.lines.append(f"warning: with this few rounds p cannot go below {floor:.2g} (>= alpha {alpha:g}), so "
                         "some cases cannot be called slower: time more rounds")
    out.lines += group_out + disagreement_lines(judged)
    rule = f"ratio > {up:g} and p < {alpha:g}" + (", both raw and against the machine" if with_canary else "")
    if shifts:
        rule += ((", and so against its group's shift where the group has " if not with_canary else
                  "; without a canary, against its group's shift where the group has ")
                 + f"{MIN_GROUP_FOR_DRIFT}+ members")
    out.lines.append(f"{out.verdicts['slower']} of {len(common)} cases slower than {base_dir.name} ({rule}), "
                     f"{out.verdicts['faster']} faster, {out.verdicts['same']} the same"
                     + (f"; {slower_groups} groups slower as a whole, which counts" if common_change else ""))
    out.exit_code = 1 if out.verdicts["slower"] else 0
    return out


def _pct(r: float) -> str:
    return f"{100 * (r - 1):+.1f}"


def table_lines(judged: list[Judged], with_canary: bool, with_groups: bool) -> list[str]:
    """The table: a header, then one line per case. With a canary: the raw change, the machine's (the canary's), and
    the change against the machine, with its interval and test; without: the raw change and, where the group rule
    applies, the change against its group ('vs group')."""
    head = f"{'case':58s} {'base':>10s} {'run':>10s} {'change [95% interval]':>26s} {'p':>8s}  "
    if with_canary:
        lines = [head + f"{'machine':>8s} {'vs machine [95% interval]':>27s} {'p vs m':>8s}  verdict"]
    else:
        lines = [head + ("vs group  " if with_groups else "") + "verdict"]
    for j in judged:
        change = f"{_pct(j.ratio):>6s}% [{_pct(j.lo)}, {_pct(j.hi)}]"
        line = f"{case_name(j.key, impl=True):58s} {j.mb * 1e3:7.3f} ms {j.mn * 1e3:7.3f} ms {change:>26s} {j.p:8.2g}  "
        if with_canary:
            if j.machine is not None:
                r, lo, hi, p = j.rel
                rel = f"{_pct(r):>6s}% [{_pct(lo)}, {_pct(hi)}]"
                line += f"{_pct(j.machine):>7s}% {rel:>27s} {p:8.2g}  "
            elif j.rel is not None:                                  # no canary: the group rule
                rel = f"{_pct(j.rel[0]):>6s}% vs group"
                line += f"{'n/a':>8s} {rel:>27s} {j.rel[3]:8.2g}  "
            else:
                line += f"{'n/a':>8s} {'n/a':>27s} {'n/a':>8s}  "
        elif with_groups:
            line += f"{_pct(j.rel[0]):>6s}%   " if j.rel else "   n/a    "
        lines.append(line + (j.final.upper() if j.final == "slower" else j.final))
    return lines


def machine_lines(with_canary: list[tuple], b: dict, n: dict, canaries, run: str, base: str) -> list[str]:
    """Per (device, threads): the two runs' canary medians over all the groups of the compared cases, and their
    ratio's interval; a change beyond CANARY_MOVED whose interval is clear of 1 is named: the machine, whole-run."""
    per: dict[tuple, tuple[dict, dict]] = {}
    for k in with_canary:
        cb, cn = canaries(k)
        groups_b, groups_n = per.setdefault((b[k][0]["device"], b[k][0]["threads"]), ({}, {}))
        groups_b[b[k][0]["group_id"]], groups_n[n[k][0]["group_id"]] = cb, cn
    lines = []
    for (device, threads), (groups_b, groups_n) in per.items():
        xb, xn = ([t for x in g.values() for t in x] for g in (groups_b, groups_n))
        r, lo, hi = intervals.ratio_ci(xn, xb, paired=False)
        lines.append(f"machine {device} {threads} threads, by its canary in {len(groups_b)} groups: median "
                     f"{float(np.median(xb)) * 1e3:.3f} ms -> {float(np.median(xn)) * 1e3:.3f} ms "
                     f"({_pct(r)}% [{_pct(lo)}, {_pct(hi)}])")
        if abs(r - 1) > CANARY_MOVED and (lo > 1 or hi < 1):
            lines.append(f"the machine was {abs(100 * (r - 1)):.0f}% {'slower' if r > 1 else 'faster'} for the whole "
                         f"of {run} than for {base} ({device}, {threads} threads, its canary): every case's raw change "
                         "includes that, so a verdict also needs the change against the machine")
    return lines


def group_lines(judged: list[Judged], shifts: dict[tuple, float], up: float, down: float,
                same: bool) -> tuple[list[str], bool, int]:
    """(the lines on groups that moved as a whole, whether that counts, how many were slower): the group rule's."""
    whole = {g: ("slower" if s_g > up else "faster") for g, s_g in shifts.items() if not down <= s_g <= up}
    slower_groups = sum(v == "slower" for v in whole.values())
    most = bool(shifts) and slower_groups > len(shifts) / 2
    common_change = most and not same          # one clean commit and its software: the machine
    lines = []
    for g, word in whole.items():
        own = [j.own for j in judged if j.group == g]
        lines.append(f"group {g[2]}: {len(own)} members moved {_pct(shifts[g])}% together (median; "
                     f"{sum(v == word for v in own)} of them {word} on their own): a shift of the whole group")
    if whole:
        lines.append(
            f"{len(whole)} of {len(shifts)} comparison groups moved as a whole ({slower_groups} slower); "
            + ("most groups were slower: a change common to every case (the software or the commit changed, but "
               "it may still be the machine for the whole run: see the GEMM peaks, and rerun both back to back), so "
               "it counts" if common_change else
               "most groups were slower, but both runs are one clean commit on the same software: the machine for "
               "the whole run (see the GEMM peaks), so a member counts only where it also moved against its group"
               if most else
               "not most, so more likely the machine during those groups' rounds than the code: a member counts "
               "only where it also moved against its group's shift (--no-group-drift: each case alone)"))
    return lines, common_change, slower_groups


def disagreement_lines(judged: list[Judged]) -> list[str]:
    """Where a case's raw change and its change against the machine disagree: how many, and what that may be."""
    lines = []
    for word in ("slower", "faster"):
        raw = sum(j.machine is not None and j.own == word and j.rel_verdict != word for j in judged)
        rel = sum(j.machine is not None and j.rel_verdict == word and j.own != word for j in judged)
        if raw:
            lines.append(f"{raw} case{'s' * (raw != 1)} {word} raw but not against the machine: their groups' "
                         "canary moved with them, so it was the machine; counted the same")
        if rel:
            lines.append(f"{rel} case{'s' * (rel != 1)} {word} against the machine but not raw: their canary moved "
                         "and they did not (the canary alone, or the machine and the code by as much, in opposite "
                         "ways); counted the same: rerun both back to back to tell")
    return lines


def _group(k: tuple, b: dict, n: dict) -> tuple:
    """A case's comparison group in both runs, and its name for the printout (its key without impl)."""
    return b[k][0]["group_id"], n[k][0]["group_id"], case_name(k)


def case_name(k: tuple, impl: bool = False) -> str:
    """'cpu float32 1 2 4 4 train 1' (with impl: 'dummy cpu ...'), then the stack's settings that are not
    the default ('lengths=uniform:30-100')."""
    plain = [x for c, x in zip(KEY_COLUMNS, k, strict=True)
             if (impl or c != "impl") and c not in KEY_DEFAULTS or c == "layers"]
    extra = [f"{c}={x}" for c, x in zip(KEY_COLUMNS, k, strict=True)
             if c in KEY_DEFAULTS and c != "layers" and x != KEY_DEFAULTS[c]]
    return " ".join(plain + extra)


def group_shifts(common: list[tuple], b: dict, n: dict) -> dict[tuple, float]:
    """Each comparison group's common shift, RUN / BASE: the median over its members of their ratios of
    medians, for the groups with MIN_GROUP_FOR_DRIFT or more members in both runs.

    Interleaving makes a group's members share the machine's state during their rounds, so when the
    machine was slower for a group's minute in one run, every member moves by about the same factor;
    one member's own change stands out from that median (up to half the members less one)."""
    members: dict[tuple, list[float]] = {}
    for k in common:
        members.setdefault(_group(k, b, n), []).append(float(np.median(n[k][1])) / float(np.median(b[k][1])))
    return {g: float(np.median(r)) for g, r in members.items() if len(r) >= MIN_GROUP_FOR_DRIFT}
