"""Numbers a person reads: three significant figures in a human unit.

    seconds(0.008318) -> "8.32 ms"      mebibytes(5.151e6) -> "4.91 MiB"
    rate(1.6e11, "FLOP/s") -> "160 GFLOP/s"      percent(0.853) -> "85.3%"
    sig(4) -> "4.00" (a table's column)          compact(4) -> "4", compact(0.0001) -> "0.0001" (a sentence)

The one home of number formatting: the report's tables, the findings' sentences, the claims'
evidence and the terminal's lines all format through here; the CSVs keep SI base units
(seconds, bytes) at full precision.
"""
from __future__ import annotations

import math

SIG = 3    # significant figures shown


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def sig(x: float, digits: int = SIG) -> str:
    """x to `digits` significant figures, without an exponent between 1e-3 and 1e6."""
    if _missing(x):
        return ""
    if x == 0:
        return "0"
    x = float(f"{x:.{digits - 1}e}")                 # round first: 99.96 -> 100, whose magnitude is 2
    mag = math.floor(math.log10(abs(x)))
    if -3 <= mag < 6:
        return f"{x:.{max(0, digits - 1 - mag)}f}"
    return f"{x:.{digits - 1}e}"


COMPACT_LOWEST = -4    # compact() writes 0.0001 in full, and 0.00001 as 1e-05


def compact(x: float, digits: int = SIG) -> str:
    """x to `digits` significant figures with no trailing zeros, for a sentence: 30, 0.8, 0.0001, 1230, 1e-09
    (an exponent below 10**COMPACT_LOWEST and from 1e6)."""
    if _missing(x):
        return ""
    if x == 0:
        return "0"
    x = float(f"{x:.{digits - 1}e}")
    mag = math.floor(math.log10(abs(x)))
    if COMPACT_LOWEST <= mag < 6:
        text = f"{x:.{max(0, digits - 1 - mag)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def _scaled(x: float, steps: list[tuple[float, str]]) -> str:
    """x in the largest unit of `steps` (largest first) that leaves it at least 1, after rounding."""
    if _missing(x):
        return ""
    for i, (scale, unit) in enumerate(steps):
        if abs(x) >= scale or i == len(steps) - 1:
            if i > 0 and abs(float(sig(x / scale))) >= steps[i - 1][0] / scale * (1 - 1e-9):  # 999.7 ms: 1.00 s
                scale, unit = steps[i - 1]
            return f"{sig(x / scale)} {unit}"
    return sig(x)


def seconds(x: float) -> str:
    return _scaled(x, [(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")])


def mebibytes(x: float) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    return _scaled(x, [(2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")])


def rate(x: float, unit: str) -> str:
    """Per-second counts with an SI prefix: 1.6e11 FLOP/s -> 160 GFLOP/s, 2.1e5 tokens/s -> 210 ktokens/s."""
    return _scaled(x, [(1e12, "T" + unit), (1e9, "G" + unit), (1e6, "M" + unit), (1e3, "k" + unit), (1, unit)])


def percent(fraction: float) -> str:
    if _missing(fraction):
        return ""
    return f"{sig(100 * fraction)}%"


def times(ratio: float) -> str:
    """A ratio as '3.21x'."""
    return "" if _missing(ratio) else f"{sig(ratio)}x"
