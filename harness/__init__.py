"""lstm-bench: measures recurrent networks in PyTorch.

Data flows one way -- scenario -> case -> measurement -> row -> table -> claim
and figure -- through packages in layers; each imports only the layers below it,
run and analysis never import each other (they meet at the store), analysis and
report import no measuring code, and core imports nothing of the harness
(import-linter checks it: [tool.importlinter] in pyproject.toml). Each
package's own docstring names its modules.

    cli              python -m harness: every parser and command handler; the one place that catches UsageError
    run              a run: cases measured and written as rows (the sweep, its pytest plugin, shards, the console)
    report           make report: the page, its figures and its tables in human units
    analysis         a run's tables to what they say: derived tables, claims, findings, the regression gate
    store            a run's files: run directories, run.json, the tables' columns, atomic writes, traces read back
    measure          one case measured: timing, memory, FLOPs, gradients, tasks, the profiler
    config           scenario files to cases
    implementations  the networks under test, their canonical parameters and the registry
    core             the base: paths and the machine, errors, statistics, thresholds, units
"""
