"""Scenario files to cases: what a run is asked to measure.

    scenario    scenario files (scenarios/*.toml): loading, one-line errors, grid expansion
    schema      every scenario key: its type, default and allowed values
    cases       the cases a grid expands to, their ids and comparison groups, their size and stack labels
"""
