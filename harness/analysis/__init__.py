"""A run's tables to what they say: derived tables, the tutorial's claims judged, the findings, the gate.

    tables      a run's CSVs as typed DataFrames, labelled by machine; the one ok-rows filter
    derived     every derived table, computed once, and the file each is written to
    ratios      ratios of timings with intervals: LSTM/RNN, stacks, variable lengths, compilers, run to run
    learning    gradients and learning as tables: decay fits, tasks solved (one rule), the edge, the dynamics
    parallel    minGRU and minLSTM beside the LSTM and GRU: speed-ups against T, crossovers, memory, the paper's claim
    numerics    speed beside accuracy: each row's error against float64, rows off, precision and the gradient
    summary     the report's own tables: medians per implementation, scaling exponents, cases not run, noisy groups
    claims      the tutorial's claims (and one paper's): rules, evidence, verdicts
    quotes      the tutorial's claims in its own words, and the paper's
    findings    what a run found: the report's opening sentences
    environments  how two runs' environments differ: machine, software, commit, GEMM peaks
    compare     the regression gate: a rank test and ratio intervals per case, raw and against the machine's canary
"""
