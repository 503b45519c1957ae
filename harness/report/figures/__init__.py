"""The report's figures: one function per figure, long-form data in, seaborn out.

Each function takes tidy tables (a run's CSVs as DataFrames, or the derived tables of
harness/analysis/) and returns a matplotlib Figure, or None when the run has no data for it.
FIGURES is every figure and the tables it takes; NEEDS says what a run needs for each (the
report's one line where a figure is not drawn); `save` writes one as PNG and SVG.

    speed        throughput, speed-up over the reference, roofline, peak memory, LSTM/RNN cost, where the time goes
    stacks       what stacks and variable lengths cost
    accuracy     speed against error (float64's), and the vanishing gradient by precision
    parallel     the parallel-scan RNNs (minGRU, minLSTM): throughput and peak memory against T
    learning     gradients over distance and training's effect on them, learning curves, the edge, dynamics
    axes         the figures' log and ratio axes
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")                 # files only: no display, here or on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")

from harness.report.figures.accuracy import precision_decay, speed_vs_error  # noqa: E402
from harness.report.figures.learning import (  # noqa: E402
    decay_vs_radius,
    dynamics,
    learning_curves,
    training_effect,
    vanishing_gradients,
)
from harness.report.figures.parallel import memory_vs_t, throughput_vs_t  # noqa: E402
from harness.report.figures.speed import cost_ratio, memory_use, roofline, speedup, throughput, time_breakdown  # noqa: E402
from harness.report.figures.stacks import layer_cost, lengths_cost  # noqa: E402

DPI = 110              # of the PNG: 1280 px wide pages show a 10-inch figure whole
FORMATS = ("png", "svg")

FIGURES = {  # file stem -> (function, the tables it takes)
    "vanishing_gradients": (vanishing_gradients, ("gradients", "decay")),
    "training_effect": (training_effect, ("gradients",)),
    "learning_curves": (learning_curves, ("training",)),
    "decay_vs_radius": (decay_vs_radius, ("decay",)),
    "dynamics": (dynamics, ("dynamics",)),
    "throughput": (throughput, ("timings",)),
    "speedup": (speedup, ("timings",)),
    "roofline": (roofline, ("timings", "ceilings")),
    "memory": (memory_use, ("timings",)),
    "cost_ratio": (cost_ratio, ("cost_ratios",)),
    "time_breakdown": (time_breakdown, ("breakdown",)),
    "layer_cost": (layer_cost, ("layer_costs",)),
    "lengths_cost": (lengths_cost, ("lengths_costs",)),
    "speed_vs_error": (speed_vs_error, ("errors",)),
    "precision_decay": (precision_decay, ("precision_decay",)),
    "parallel_throughput": (throughput_vs_t, ("timings", "crossovers")),
    "parallel_memory": (memory_vs_t, ("parallel_memory",)),
}
NEEDS = {  # file stem -> what a run needs for it: the report's one line where a figure is not drawn
    "vanishing_gradients": "a [[gradients]] section without spectral_radius",
    "training_effect": "a [[task]] section",
    "learning_curves": "a [[task]] section",
    "decay_vs_radius": "[[gradients]] cases with a spectral_radius",
    "dynamics": "a [[task]] section with a one-layer model",
    "throughput": "ok [[throughput]] rows",
    "speedup": "a comparison group with its reference (torch-lstm, torch-rnn, torch-gru) and another member",
    "roofline": "ok [[throughput]] rows with a GEMM peak",
    "memory": "[[throughput]] train rows with memory = true",
    "cost_ratio": "an LSTM and an RNN timed at equal sizes",
    "time_breakdown": "profiled throughput cases (every run profiles one size; make profile profiles all)",
    "layer_cost": "one configuration timed at two or more layers or directions (layers, bidirectional)",
    "lengths_cost": "variable-length cases (lengths = \"uniform:LO-HI\") and a fixed-length case of about their "
                    "real tokens (seq_len near the mean length)",
    "speed_vs_error": "[[throughput]] rows checked against float64 (accuracy = true, the default) beside their cell's "
                      "reference layer in float32 at the same sizes",
    "precision_decay": "[[gradients]] cases with autocast beside the same cases without",
    "parallel_throughput": "a min model's scan (mingru-scan, minlstm-scan) timed at two or more seq_len",
    "parallel_memory": "a min model's scan timed in train with memory = true at two or more seq_len",
}


def caption(stem: str) -> str:
    """A figure's caption: the first line of its function's docstring."""
    fn = FIGURES[stem][0]
    return (fn.__doc__ or stem).strip().splitlines()[0]


def save(fig: plt.Figure, directory: Path, stem: str) -> None:
    """The figure as directory/STEM.png and .svg; then closed, so a report of many figures holds none."""
    for ext in FORMATS:
        fig.savefig(directory / f"{stem}.{ext}", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
