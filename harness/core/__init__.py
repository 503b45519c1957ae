"""The base every package stands on: it imports nothing of the harness, and its modules not each other.

    env         paths (the repository, scenarios/, results/, reports/), threads, TF32, provenance, devices, steal
    fits        a gradient's norm against distance: the decay factor, the distance where it vanishes
    errors      UsageError (one line, exit 2), StoreError (one line, exit 1) and Skip (a skipped row)
    intervals   intervals of medians (order statistics) and of ratios (bootstrap), the Mann-Whitney test
    thresholds  the thresholds that turn a number into a word: a vanished gradient, a noisy group
    units       numbers a person reads: ms, MiB, GFLOP/s, %, three significant figures
"""
