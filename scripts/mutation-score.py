#!/usr/bin/env python3
"""make mutation's scope and score: which functions mutmut mutates, and killed / (all - timeouts) per module.

    python scripts/mutation-score.py --scope     # the mutant name patterns, for `mutmut run`
    python scripts/mutation-score.py --sample 40 # up to 40 not-yet-run mutants per module, drawn at random
    python scripts/mutation-score.py --sample 25 claims --fresh   # claims only, as a new sample (see below)
    python scripts/mutation-score.py             # the score per module from mutants/, and every survivor

A whole pass takes hours on 2 cores (a survivor runs every test that reaches its function), so `make mutation
SAMPLE=40` runs a seeded random sample of each module's mutants not run yet (recorded in mutants/sample.json)
and the score of a module not run whole is estimated: the mutants run before the sample count as they are,
the rest at the sample's kill rate, with a 95% Clopper-Pearson interval from the sample. Once tests have been
written for a sample's survivors it no longer samples the tests at random: rerun those survivors by name, then
draw that module again with --fresh, which keeps the old sample's results as known and starts a new
sample beside them.

The scope is the pure logic whose bugs would go unseen: the scenario loader, the gradient decay fit and its
flags, the FLOP model and the GEMM peak, the claims and the derived tables they judge from, the store's
readers, compare's statistics. A mutant
counts as killed when a test failed on it; a survivor ("no tests" included: no test reached it) as not.
"""
from __future__ import annotations

import fnmatch
import json
import random
import sys
from collections import Counter
from pathlib import Path

SCOPE = [
    "harness.config.scenario.*",
    "harness.core.fits.x_flag__mutmut_*", "harness.core.fits.x_fit_decay__mutmut_*",
    "harness.core.fits.x_vanish_distance__mutmut_*",
    "harness.measure.flops.*",
    "harness.analysis.claims.*",
    # what claims judge from, moved beside the other derived tables (ratios, learning) with the packages
    "harness.analysis.ratios.x_cost_ratios__mutmut_*", "harness.analysis.learning.x_final_losses__mutmut_*",
    "harness.analysis.learning.x_gradient_rows__mutmut_*", "harness.analysis.learning.x_configurations__mutmut_*",
    "harness.analysis.learning.x_far_end_gradients__mutmut_*",
    "harness.store.meta.x_read_meta__mutmut_*", "harness.store.runs.x_read_rows__mutmut_*",
    "harness.store.runs.x_find_run__mutmut_*", "harness.store.runs.x_find_runs__mutmut_*",
    "harness.store.runs.x_tables_for__mutmut_*", "harness.store.runs.x_select__mutmut_*",
    "harness.analysis.compare.x_min_p__mutmut_*", "harness.analysis.compare.x_group_shifts__mutmut_*",
    "harness.analysis.compare.x__group__mutmut_*", "harness.analysis.compare.x_compare__mutmut_*",
]
KILLED, TIMEOUT = {1, 3, 37}, {36, 24, -24, 152, 255}     # mutmut's exit codes (mutmut/stats.py)
TARGET = 0.80
SAMPLE_FILE = Path("mutants/sample.json")                # {"seed": int, "names": [...]}: every mutant drawn
NOTHING = "harness.none"                                  # a mutant pattern that matches none
SEED = 0                                                  # the sample's seed: the same mutants until they have run


def results(root: Path) -> dict[str, int | None]:
    out = {}
    for meta in sorted(root.glob("harness/**/*.py.meta")):
        out |= json.loads(meta.read_text())["exit_code_by_key"]
    return {k: v for k, v in out.items() if any(fnmatch.fnmatchcase(k, p) for p in SCOPE)}


def main(argv: list[str]) -> int:
    if argv == ["--scope"]:
        print(" ".join(SCOPE))
        return 0
    res = results(Path("mutants"))
    if argv[:1] == ["--sample"]:
        modules = {a for a in argv[2:] if a != "--fresh"} or {module_of(k) for k in res}
        names = draw({k: v for k, v in res.items() if module_of(k) in modules}, int(argv[1]))
        before = json.loads(SAMPLE_FILE.read_text())["names"] if SAMPLE_FILE.is_file() else []
        if "--fresh" in argv[2:]:                  # tests were written for its survivors: no longer random
            before = [k for k in before if module_of(k) not in modules]
        SAMPLE_FILE.parent.mkdir(exist_ok=True)
        SAMPLE_FILE.write_text(json.dumps({"seed": SEED, "names": sorted(set(before) | set(names))}))
        print(" ".join(names) or NOTHING)                     # nothing left to draw: a pattern that matches none
        return 0
    if not res:
        print("no mutmut results under mutants/: run make mutation", file=sys.stderr)
        return 2
    by_module: dict[str, Counter] = {}
    sampled: dict[str, Counter] = {}
    in_sample = set(json.loads(SAMPLE_FILE.read_text())["names"]) if SAMPLE_FILE.is_file() else set()
    survivors = []
    for name, code in sorted(res.items()):
        kind = outcome(code)
        by_module.setdefault(module_of(name), Counter())[kind] += 1
        if name in in_sample:
            sampled.setdefault(module_of(name), Counter())[kind] += 1
        if kind == "survived":
            survivors.append(name)
    total, met = Counter(), {}
    print(f"{'module':<10} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'not run':>7}  score")
    for module, c in by_module.items():
        total += c
        est = estimate(c, sampled.get(module, Counter()))
        tested = c["killed"] + c["survived"]
        met[module] = (est[0] if est else c["killed"] / tested if tested and not c["not run"] else 0.0) >= TARGET
        print(f"{module:<10} {sum(c.values()):>7} {c['killed']:>6} {c['survived']:>8} {c['timeout']:>7} "
              f"{c['not run']:>7}  {score(c)}" + (f"  estimated {100 * est[0]:.1f}% [{100 * est[1]:.1f}, "
                                                   f"{100 * est[2]:.1f}] from a random sample of {est[3]}" if est
                                                   else ""))
    print(f"{'all':<10} {sum(total.values()):>7} {total['killed']:>6} {total['survived']:>8} {total['timeout']:>7} "
          f"{total['not run']:>7}  {score(total)}")
    print(f"\nsurvivors ({len(survivors)}; mutmut show NAME for the diff):")
    print("\n".join(f"  {s}" for s in survivors))
    short = [m for m, ok in met.items() if not ok]
    print(f"\ntarget: {100 * TARGET:.0f}% on every module, on its score where it ran whole, else on its estimate: "
          + ("met" if not short else f"not met by {', '.join(short)}"))
    return 0 if not short else 1


def outcome(code: int | None) -> str:
    return ("not run" if code is None else "killed" if code in KILLED else "timeout" if code in TIMEOUT
            else "survived")


def module_of(name: str) -> str:
    """A mutant's module, by its own name: harness.analysis.claims.x_claim_a__mutmut_3 -> claims."""
    return name.rsplit(".", 1)[0].rsplit(".", 1)[-1]


def draw(res: dict[str, int | None], n: int) -> list[str]:
    """Up to n mutants per module among those not run yet, at random (seed SEED)."""
    rng = random.Random(SEED)
    pools: dict[str, list[str]] = {}
    for name, code in sorted(res.items()):
        if code is None:
            pools.setdefault(module_of(name), []).append(name)
    return sorted(x for pool in pools.values() for x in rng.sample(pool, min(n, len(pool))))


def estimate(c: Counter, s: Counter) -> tuple[float, float, float, int] | None:
    """For a module not run whole: its score with the not-run mutants counted at the random sample's kill rate,
    the 95% Clopper-Pearson interval of that rate carried through, and the sample's size (None when the module
    ran whole or has no sample). The mutants run before the sample are a stratum of their own, known exactly."""
    n_s = s["killed"] + s["survived"]
    if not c["not run"] or not n_s:
        return None
    from scipy.stats import binomtest
    ci = binomtest(s["killed"], n_s).proportion_ci(confidence_level=0.95, method="exact")
    known_k, known_n = c["killed"] - s["killed"], c["killed"] + c["survived"] - n_s     # run before the sample
    rest = c["not run"] + n_s                                                          # the stratum sampled
    est = [(known_k + rest * p) / (known_n + rest) for p in (s["killed"] / n_s, ci.low, ci.high)]
    return est[0], est[1], est[2], n_s


def score(c: Counter) -> str:
    tested = c["killed"] + c["survived"]                       # killed / (all - timeouts), of those run
    return f"{100 * c['killed'] / tested:.1f}%" if tested else "-"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
