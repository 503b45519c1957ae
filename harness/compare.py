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

from harness import intervals
from harness.cases import KEY_COLUMNS
from harness.errors import UsageError
from harness.store import RunMeta, read_meta, read_rows

ALPHA = 0.01          # default significance level of the rank test (--alpha)
THRESHOLD = 10.0      # default: percent slower that counts as a regression (--threshold)
MACHINE_KEYS = ("cpu_model", "physical_cores", "gpu", "host")        # run.json environment: the machine
SOFTWARE_KEYS = ("torch", "cuda", "cudnn", "onednn", "python")       # and what ran on it


@dataclass
class Comparison:
    lines: list[str] = field(default_factory=list)   # what to print, in order
    verdicts: dict[str, int] = field(default_factory=dict)   # slower / faster / same -> cases
    exit_code: int = 0


def _cases(run_dir: Path) -> dict[tuple, tuple[dict, list[float]]]:
    """KEY_COLUMNS -> (the ok timings row, its raw rounds in round order)."""
    rows = {tuple(r[k] for k in KEY_COLUMNS): r for r in read_rows(run_dir / "timings.csv") if r["status"] == "ok"}
    by_case: dict[str, list[tuple[int, float]]] = {}
    for r in read_rows(run_dir / "rounds.csv"):
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


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact Mann-Whitney test can give with n and m rounds (no ties)."""
    return min(1.0, 2 / math.comb(n + m, n))


def compare(base_dir: Path, run_dir: Path, threshold: float = THRESHOLD, alpha: float = ALPHA,
            strict_env: bool = False) -> Comparison:
    """Every common case's test and verdict (module docstring)."""
    if not 0 < alpha < 1:
        raise UsageError(f"compare: --alpha must be between 0 and 1, not {alpha}")
    if threshold < 0:
        raise UsageError(f"compare: --threshold must be >= 0 (percent), not {threshold}")
    for d in (base_dir, run_dir):
        if not (d / "timings.csv").is_file():
            raise UsageError(f"run {d.name} has no timings.csv: compare needs [[throughput]] results")
    b, n = _cases(base_dir), _cases(run_dir)
    common = sorted(set(b) & set(n))
    if not common:
        raise UsageError(f"runs {base_dir.name} and {run_dir.name} have no successful case in common")
    for name, cases in ((base_dir.name, b), (run_dir.name, n)):
        bare = [k for k in common if not cases[k][1]]
        if bare:
            raise UsageError(f"run {name} has no raw rounds (rounds.csv) for {len(bare)} of its cases, e.g. "
                             f"{' '.join(bare[0])}: rerun it with this version of lstm-bench")
    out = Comparison()
    threads = ({b[k][0]["threads"] for k in common}, {n[k][0]["threads"] for k in common})
    diff, machine = environment_lines(read_meta(base_dir), read_meta(run_dir), threads)
    out.lines.append(f"environments, {base_dir.name} -> {run_dir.name}:" if diff else
                     "environments: the same machine, threads, software and commit")
    out.lines += diff
    if machine:
        if strict_env:
            raise UsageError(f"compare --strict-env: the runs were measured differently ({machine[0].strip()}); "
                             "compare runs of one machine and thread count, or drop --strict-env")
        out.lines.append("warning: the runs come from different machines or threads; a change may be the machine's")
    up, down = 1 + threshold / 100, 1 / (1 + threshold / 100)
    out.lines.append(f"{'case':58s} {'base':>10s} {'run':>10s} {'change [95% interval]':>26s} {'p':>8s}  verdict")
    out.verdicts = {"slower": 0, "faster": 0, "same": 0}
    floor = 0.0
    for k in common:
        tb, tn = b[k][1], n[k][1]
        ratio, lo, hi = intervals.ratio_ci(tn, tb, paired=False)
        p = intervals.mann_whitney_p(tn, tb)
        floor = max(floor, min_p(len(tb), len(tn)))
        verdict = "slower" if ratio > up and p < alpha else "faster" if ratio < down and p < alpha else "same"
        out.verdicts[verdict] += 1
        change = f"{100 * (ratio - 1):+6.1f}% [{100 * (lo - 1):+.1f}, {100 * (hi - 1):+.1f}]"
        mb, mn = float(b[k][0]["time_median_s"]), float(n[k][0]["time_median_s"])
        out.lines.append(f"{' '.join(k):58s} {mb * 1e3:7.3f} ms {mn * 1e3:7.3f} ms {change:>26s} {p:8.2g}  "
                         + (verdict.upper() if verdict == "slower" else verdict))
    if floor >= alpha:
        out.lines.append(f"warning: with this few rounds p cannot go below {floor:.2g} (>= alpha {alpha:g}), so "
                         "some cases cannot be called slower: time more rounds")
    out.lines.append(f"{out.verdicts['slower']} of {len(common)} cases slower than {base_dir.name} (ratio > {up:.3g} "
                     f"and p < {alpha:g}), {out.verdicts['faster']} faster, {out.verdicts['same']} the same")
    out.exit_code = 1 if out.verdicts["slower"] else 0
    return out
