"""A run: the cases of a scenario measured, and written as rows before the next group starts.

    sweep       run_sweep: a run made or resumed, its groups and cases, Ctrl-C, the run's end
    plugin      the pytest plugin: one test per throughput case, pytest-benchmark's JSON
    groups      the group runner: a comparison group (or a gradients or task case) measured, its rows made
    rows        the rows a case becomes: every column the sweep computes
    breakdown   the light profiled pass of one size per implementation (breakdown.csv)
    preflight   skips before a case is built: memory that would not fit, a compile fitted to take too long
    shards      submitit shards (Slurm, local) of one run, and their merge
    console     the text a person reads in the terminal
"""
