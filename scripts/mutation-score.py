#!/usr/bin/env python3
"""make mutation's scope and score: which functions mutmut mutates, and killed / (all - timeouts) per module.

    python scripts/mutation-score.py --scope     # the mutant name patterns, for `mutmut run`
    python scripts/mutation-score.py             # the score per module from mutants/, and every survivor

The scope is the pure logic whose bugs would go unseen: the scenario loader, the gradient decay fit and its
flags, the FLOP model and the GEMM peak, the claims, the store's readers, compare's statistics. A mutant
counts as killed when a test failed on it; a survivor ("no tests" included: no test reached it) as not.
"""
from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

SCOPE = [
    "harness.scenario.*",
    "harness.gradients.x_flag__mutmut_*", "harness.gradients.x_fit_decay__mutmut_*",
    "harness.gradients.x_vanish_distance__mutmut_*",
    "harness.flops.*",
    "harness.claims.*",
    "harness.store.x_read_meta__mutmut_*", "harness.store.x_read_rows__mutmut_*", "harness.store.x_find_run__mutmut_*",
    "harness.store.x_find_runs__mutmut_*", "harness.store.x_tables_for__mutmut_*", "harness.store.x_select__mutmut_*",
    "harness.compare.x_min_p__mutmut_*", "harness.compare.x_group_shifts__mutmut_*",
    "harness.compare.x__group__mutmut_*", "harness.compare.x_compare__mutmut_*",
]
KILLED, TIMEOUT = {1, 3, 37}, {36, 24, -24, 152, 255}     # mutmut's exit codes (mutmut/stats.py)
TARGET = 0.80


def results(root: Path) -> dict[str, int | None]:
    out = {}
    for meta in sorted(root.glob("harness/*.py.meta")):
        out |= json.loads(meta.read_text())["exit_code_by_key"]
    return {k: v for k, v in out.items() if any(fnmatch.fnmatchcase(k, p) for p in SCOPE)}


def main(argv: list[str]) -> int:
    if argv == ["--scope"]:
        print(" ".join(SCOPE))
        return 0
    res = results(Path("mutants"))
    if not res:
        print("no mutmut results under mutants/: run make mutation", file=sys.stderr)
        return 2
    by_module: dict[str, Counter] = {}
    survivors = []
    for name, code in sorted(res.items()):
        module = name.split(".")[1]
        kind = ("not run" if code is None else "killed" if code in KILLED else "timeout" if code in TIMEOUT
                else "survived")
        by_module.setdefault(module, Counter())[kind] += 1
        if kind == "survived":
            survivors.append(name)
    total = Counter()
    print(f"{'module':<10} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'not run':>7}  score")
    for module, c in by_module.items():
        total += c
        print(f"{module:<10} {sum(c.values()):>7} {c['killed']:>6} {c['survived']:>8} {c['timeout']:>7} "
              f"{c['not run']:>7}  {score(c)}")
    print(f"{'all':<10} {sum(total.values()):>7} {total['killed']:>6} {total['survived']:>8} {total['timeout']:>7} "
          f"{total['not run']:>7}  {score(total)}")
    print(f"\nsurvivors ({len(survivors)}; mutmut show NAME for the diff):")
    print("\n".join(f"  {s}" for s in survivors))
    tested = total["killed"] + total["survived"]
    return 0 if tested and total["killed"] / tested >= TARGET and not total["not run"] else 1


def score(c: Counter) -> str:
    tested = c["killed"] + c["survived"]                       # killed / (all - timeouts), of those run
    return f"{100 * c['killed'] / tested:.1f}%" if tested else "-"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
