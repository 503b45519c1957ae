"""The thresholds that turn a measured number into a word, shared by the code that measures, prints and judges.

Each is read by more than one package, so it lives here, once, where all of them may import it:

    VANISH_RATIO  a gradient has "vanished" at the first distance where ||dL/dx_t|| falls below this
                  fraction of its value at distance 0 (measure/gradients.py's vanish_distance; the
                  terminal's decay line; claims (a) and (b), whose rules print it)
    NOISY_STEAL   a comparison group timed while the hypervisor took more than this share of the CPU
                  (steal time, /proc/stat) is flagged `noisy` (the sweep sets the column; the report lists such groups)
    ABOVE_CEILING a row whose GEMM rate is more than this multiple of the best GEMM peak measured (peak_fraction)
                  is "above the measured ceiling": the ceiling, not the row, is in doubt (the terminal and the
                  report say so with both numbers, and never count it as a success)
    CEILING_MOVED compare warns when two runs' best GEMM ceilings differ by more than this fraction: the machine
                  changed, not only the code
    CANARY_SPREAD a group whose canary (measure/canary.py) has a median interval wider than this, relative, is
                  noisy: the machine did not hold still during its rounds
    CANARY_MOVED  a group whose canary median is more than this fraction away from the median of the run's canaries
                  so far (its own included) is noisy: the machine was faster or slower than it usually was in the run
    SOLVED        a [[task]] seed solved its task when its held-out loss is below this multiple of the task's
                  baseline (the loss of a predictor that ignores the input): the one rule of the success table,
                  the findings, claim (c) and a task's early_stop
    TOLERANCES    the error pass (measure/accuracy.py): a row whose error against float64 is above the tolerance
                  of what it computed in is numerics "off" (the terminal, the report's table and findings)
"""
from __future__ import annotations

VANISH_RATIO = 1e-3      # a fraction of the norm at distance 0
NOISY_STEAL = 0.05       # a fraction of the CPU time over a group's rounds
ABOVE_CEILING = 1.05     # of the ceiling: 5% over it, where the best-of-five peak is itself within a few percent
CEILING_MOVED = 0.10     # of the base run's ceiling
CANARY_SPREAD = 0.05     # +-5% of the canary's median (intervals.half_width)
CANARY_MOVED = 0.10      # of the median of the run's canary medians so far
SOLVED = 0.1             # of the task's baseline loss

TOLERANCES = {"float64": 1e-10, "float32": 1e-4, "tf32": 1e-2, "bfloat16": 5e-2, "float16": 5e-2}
# the error pass (measure/accuracy.py): the largest relative error against float64 a correct step has, by what it
# computes in; above it a row's numerics are "off". float32: rows at B32 T100 H256 measure 5e-7 to 7e-7, so 1e-4
# leaves room for long sequences and wide layers and still catches a wrong kernel; tf32 and the 16-bit types round
# each product's operands to 10 and 7 (8) mantissa bits: 5e-3 measured for bfloat16
