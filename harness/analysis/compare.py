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

Interleaving shares the machine's state among a comparison group's members,
so a group the machine slowed in one run moves as a whole. With 3 or more
members in both runs, a member is slower only when it is slower by the rule
above both on its own and against its group's common shift (the median of its
members' ratios: `group_shifts`); a group that moved as a whole is printed as
such, and counts on its own only when most groups moved slower and the runs
differ in commit or software (a change common to every case, such as a new
torch): between two runs of one clean commit on the same software, that is
the machine. group_drift=False (--no-group-drift) judges each case alone.

The GEMM peaks of both runs are printed per library, and a ceiling (the best library's peak) that
moved by more than thresholds.CEILING_MOVED is a warning: the machine changed, not only the code.

Exit status 1 when any case is slower, else 0. How the two environments
differ is printed first; a different machine (CPU or GPU model, cores, host)
or different threads is warned about, and with strict_env refused (exit 2).
Bad input is one line and exit 2 (errors.UsageError): an unknown run, no case
in common, or a case without raw rounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.config.cases import KEY_COLUMNS, KEY_DEFAULTS, row_key
from harness.core import intervals
from harness.core.errors import UsageError
from harness.core.thresholds import CEILING_MOVED
from harness.store.columns import ROUNDS, TIMINGS
from harness.store.meta import RunMeta, read_meta
from harness.store.runs import read_rows, writer_gone

ALPHA = 0.01          # default significance level of the rank test (--alpha)
THRESHOLD = 10.0      # default: percent slower that counts as a regression (--threshold)
MACHINE_KEYS = ("cpu_model", "physical_cores", "gpu", "host")        # run.json environment: the machine
SOFTWARE_KEYS = ("torch", "cuda", "cudnn", "onednn", "python")       # and what ran on it
MIN_GROUP_FOR_DRIFT = 3   # members a group needs in both runs before its common shift can be told from one member's


@dataclass
class Comparison:
    lines: list[str] = field(default_factory=list)   # what to print, in order
    verdicts: dict[str, int] = field(default_factory=dict)   # slower / faster / same -> cases
    exit_code: int = 0


def _cases(run_dir: Path) -> dict[tuple, tuple[dict, list[float]]]:
    """KEY_COLUMNS -> (the ok timings row, its raw rounds in round order)."""
    rows = {row_key(r): r for r in read_rows(run_dir / TIMINGS) if r["status"] == "ok"}
    by_case: dict[str, list[tuple[int, float]]] = {}
    for r in read_rows(run_dir / ROUNDS):
        by_case.setdefault(r["case_id"], []).append((int(r["round"]), float(r["time_s"])))
    return {k: (r, [t for _, t in sorted(by_case.get(r["case_id"], []))]) for k, r in rows.items()}


def environment_lines(base: RunMeta, new: RunMeta, threads: tuple[set, set]) -> tuple[list[str], list[str]]:
    """(what differs, of which the machine's part): one line per difference."""
    eb, en = base.environment, new.environment
    machine = [f"  {k}: {eb.get(k)} -> {en.get(k)}" for k in MACHINE_KEYS if eb.get(k) != en.get(k)]
    if threads[0] != threads[1]:
        machine.append(f"  threads: {','.join(sorted(threads[0]))} -> {','.join(sorted(threads[1]))}")
    diff = machine + [f"  {k}: {eb.get(k)} -> {en.get(k)}" for k in SOFTWARE_KEYS if eb.get(k) != en.get(k)]
    cb = base.git.commit[:12] + ("+dirty" if base.git.dirty else "")
    cn = new.git.commit[:12] + ("+dirty" if new.git.dirty else "")
    if cb != cn:
        diff.append(f"  commit: {cb} -> {cn}")
    return diff, machine


def same_code(base: RunMeta, new: RunMeta) -> bool:
    """Both runs are one commit, neither dirty, on the same software (SOFTWARE_KEYS): any change common to
    every case is then the machine's (or something run.json does not record)."""
    return (base.git.commit == new.git.commit and base.git.commit != "unknown" and not base.git.dirty
            and not new.git.dirty and all(base.environment.get(k) == new.environment.get(k) for k in SOFTWARE_KEYS))


def _peaks(meta: RunMeta) -> dict[tuple, dict[str, float]]:
    """(device, dtype, threads) -> library -> GFLOP/s: a run's GEMM peaks (a format-2 run's one: aten's)."""
    out: dict[tuple, dict[str, float]] = {}
    for p in meta.gemm_peaks:
        out.setdefault((p.device, p.dtype, p.threads), {})[p.library] = p.gemm_peak_gflops_per_s
    return out


def gemm_lines(base: RunMeta, new: RunMeta) -> list[str]:
    """The machine's own speed as each run began (its GEMM peaks, per library), where both runs measured one; and a
    warning where the best library's (the ceiling) moved by more than CEILING_MOVED: the machine, not the code."""
    out, pb, pn = [], _peaks(base), _peaks(new)
    for key in (k for k in pb if k in pn):
        device, dtype, threads = key
        for library in (lib for lib in pb[key] if lib in pn[key]):
            change = pn[key][library] / pb[key][library] - 1
            out.append(f"GEMM peak {device} {dtype} {threads} threads {library}: {pb[key][library]:.0f} -> "
                       f"{pn[key][library]:.0f} GFLOP/s ({100 * change:+.0f}%)")
        (lb, b), (ln, n) = max(pb[key].items(), key=lambda kv: kv[1]), max(pn[key].items(), key=lambda kv: kv[1])
        if abs(n / b - 1) > CEILING_MOVED:
            out.append(f"warning: the GEMM ceiling of {device} {dtype} {threads} threads moved "
                       f"{100 * (n / b - 1):+.0f}% ({b:.0f} GFLOP/s, {lb} -> {n:.0f}, {ln}): the machine changed, not "
                       "only the code")
    return out


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact Mann-Whitney test can give with n and m rounds (no ties)."""
    return min(1.0, 2 / math.comb(n + m, n))


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
    b, n = _cases(base_dir), _cases(run_dir)
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

    shifts = {} if not group_drift else group_shifts(common, b, n)
    out.lines.append(f"{'case':58s} {'base':>10s} {'run':>10s} {'change [95% interval]':>26s} {'p':>8s}  "
                     + ("vs group  " if shifts else "") + "verdict")
    out.verdicts = {"slower": 0, "faster": 0, "same": 0}
    floor = 0.0
    moved: dict[tuple, list[str]] = {}                    # group -> its members' own (raw) verdicts
    results = []
    for k in common:
        tb, tn = b[k][1], n[k][1]
        ratio, lo, hi = intervals.ratio_ci(tn, tb, paired=False)
        p = intervals.mann_whitney_p(tn, tb)
        floor = max(floor, min_p(len(tb), len(tn)))
        g = _group(k, b, n)
        own = verdict(ratio, p)
        moved.setdefault(g, []).append(own)
        rel = None
        if g in shifts:                                   # also against the group's common shift
            s_g = shifts[g]
            rel = verdict(ratio / s_g, intervals.mann_whitney_p([t / s_g for t in tn], tb))
            vs = f"{100 * (ratio / s_g - 1):+6.1f}%   "
        else:
            vs = "   n/a    " if shifts else ""
        results.append((k, g, own, rel, ratio, lo, hi, p, vs))
    whole = {g: ("slower" if s_g > up else "faster") for g, s_g in shifts.items() if not down <= s_g <= up}
    slower_groups = sum(v == "slower" for v in whole.values())
    most = bool(shifts) and slower_groups > len(shifts) / 2
    common_change = most and not same_code(meta_b, meta_n)   # one clean commit and its software: the machine
    for k, _g, own, rel, ratio, lo, hi, p, vs in results:
        # slower (faster) both on its own and against its group; on its own alone when most groups were slower
        final = own if rel is None or common_change or rel == own else "same"
        out.verdicts[final] += 1
        change = f"{100 * (ratio - 1):+6.1f}% [{100 * (lo - 1):+.1f}, {100 * (hi - 1):+.1f}]"
        mb, mn = float(b[k][0]["time_median_s"]), float(n[k][0]["time_median_s"])
        out.lines.append(f"{case_name(k, impl=True):58s} {mb * 1e3:7.3f} ms {mn * 1e3:7.3f} ms {change:>26s} "
                         f"{p:8.2g}  {vs}" + (final.upper() if final == "slower" else final))
    if floor >= alpha:
        out.lines.append(f"warning: with this few rounds p cannot go below {floor:.2g} (>= alpha {alpha:g}), so "
                         "some cases cannot be called slower: time more rounds")
    for g, word in whole.items():
        n_word = sum(v == word for v in moved[g])
        out.lines.append(f"group {g[2]}: {len(moved[g])} members moved {100 * (shifts[g] - 1):+.1f}% together "
                         f"(median; {n_word} of them {word} on their own): a shift of the whole group")
    if whole:
        out.lines.append(
            f"{len(whole)} of {len(shifts)} comparison groups moved as a whole ({slower_groups} slower); "
            + ("most groups were slower: a change common to every case (the software or the commit changed, but "
               "it may still be the machine for the whole run: see the GEMM peaks, and rerun both back to back), so "
               "it counts" if common_change else
               "most groups were slower, but both runs are one clean commit on the same software: the machine for "
               "the whole run (see the GEMM peaks), so a member counts only where it also moved against its group"
               if most else
               "not most, so more likely the machine during those groups' rounds than the code: a member counts "
               "only where it also moved against its group's shift (--no-group-drift: each case alone)"))
    rule = (f"ratio > {up:g} and p < {alpha:g}" + (", and so against its group's shift where the group has "
                                                    f"{MIN_GROUP_FOR_DRIFT}+ members" if shifts else ""))
    out.lines.append(f"{out.verdicts['slower']} of {len(common)} cases slower than {base_dir.name} ({rule}), "
                     f"{out.verdicts['faster']} faster, {out.verdicts['same']} the same"
                     + (f"; {slower_groups} groups slower as a whole, which counts" if common_change else ""))
    out.exit_code = 1 if out.verdicts["slower"] else 0
    return out


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
