"""Run a scenario with a fixed slowdown planted in every case's step, and not in the canary's: the code got
slower, the machine did not. It checks the regression gate on real timings (README: the regression gate).

    .venv/bin/python scripts/planted-slowdown.py quick 0.002          # every step 2 ms slower (a new run)
    .venv/bin/python -m harness compare BASE_ID latest                 # every case should be SLOWER

Arguments after the seconds go to `python -m harness run` (--results DIR, --quiet, ...).
"""
from __future__ import annotations

import sys
import time

from harness import cli
from harness.measure import timing


def plant(seconds: float) -> None:
    """Every step timing.build_step builds from now on sleeps `seconds` before it runs."""
    build = timing.build_step

    def slowed(case):
        step = build(case)
        run = step.run

        def run_slower():
            time.sleep(seconds)
            return run()
        step.run = run_slower
        return step
    timing.build_step = slowed


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    plant(float(sys.argv[2]))
    sys.exit(cli.main(["run", sys.argv[1], *sys.argv[3:]]))
