"""lstm-bench: measures recurrent networks in PyTorch.

Data flows one way -- scenario -> case -> measurement -> row -> table -> claim
and figure -- and each module imports only the modules listed below it
(checked by import-linter, [tool.importlinter] in pyproject.toml):

    cli         python -m harness: every parser and command handler; catches UsageError
    report      make report: HTML and Markdown
    findings    what a run found: the report's opening sentences, scaling fits, run-to-run ratios
    claims      the tutorial's claims, in its words: rules, evidence, verdicts
    plots       one function per figure: speed, memory, cost; the registry of every figure
    learning_plots  the figures of gradients and learning: vanishing, learning curves, rho, dynamics
    learning    the learning tables: success across seeds, the decay factor by spectral radius
    compare     the regression gate: a rank test and a ratio interval per case
    axes        the figures' log and ratio axes
    costs       what stacks, variable lengths and compilers cost: ratios with intervals, break-even steps
    tables      a run's CSVs as typed pandas DataFrames, and ratios of two rows
    shards      submitit shards (Slurm, local) of one run
    sweep       runs the cases: the pytest-benchmark plugin, rows on disk, Ctrl-C, resume
    console     the text a person reads in the terminal
    preflight   skips before a case is built: memory that would not fit, a compile fitted to take too long
    store       run directories, run.json (declared once), the CSV reader, the run finder
    timing      throughput cases built, and timed as interleaved comparison groups
    tasks       the adding and copy-memory tasks, training
    gradients   gradient norms over distance, the decay fit
    dynamics    inside a model while it learns: the one-step Jacobian's norm, the forget gate
    memory      peak memory, and whether a case fits
    flops       the FLOP model and the GEMM peak
    profiler    torch.profiler: which backend ran, profiled passes, trace tables, where the time goes
    scenario    scenario files: loading, one-line errors, grid expansion
    schema      every scenario key: its type, default and allowed values
    cases       the cases a grid expands to, and their ids
    registry    implementation names, backend contexts, skips
    bptt        bptt-lstm: the explicit backward pass
    compiled    fused-lstm compiled: torch.compile (cell, whole loop), TorchScript, CUDA graphs; compile counters
    tutorial    the tutorial's own example, corrected
    models      the implementations (scratch, fused, nn.*, the dummy) and the stack around them
    env         paths, threads, provenance, device names, CPU steal
    intervals   intervals of medians and ratios (bootstrap), the Mann-Whitney test
    columns     every table's columns, declared once
    files       files written whole: atomic replaces, whole appends, the run lock
    units       numbers a person reads: ms, MiB, GFLOP/s, %, three significant figures
    params      the canonical parameters: names, shapes, seeded draws; the stack's shape
    lengths     variable-length batches: lengths drawn, packed and masked runs, reversal
    errors      UsageError and Skip
"""
