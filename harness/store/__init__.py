"""The run store: the only code that writes or reads a run's files, and the one place their shapes are declared.

    runs        run directories: made, opened, resumed, written; the one CSV reader; the run finder
    meta        run.json, declared once (RunMeta) and read
    columns     every table's file name and columns, and the statuses
    atomic      files written whole: atomic replaces, whole appends, the run lock, a writable results directory
    traces      profiler traces read back: the top ops, where a step's time goes
"""
