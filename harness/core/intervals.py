"""The statistics every comparison uses: intervals of medians and of ratios, and the rank test.

    lo, hi = median_ci(times)                       # 95%, distribution-free (order statistics)
    r, lo, hi = ratio_ci(times_a, times_b, paired=True)   # median(a) / median(b), 95% bootstrap
    r, lo, hi = normalised_ratio_ci(a, a_canary, b, b_canary) # that ratio over the canaries' own
    p = mann_whitney_p(base_times, new_times)       # two-sided

Timings are skewed and have outliers (a page fault, another process), so
everything here is about medians and ranks, never means:

- `median_ci` is the interval [x_(k), x_(n-k+1)] of the sorted rounds, k from
  the binomial(n, 1/2) distribution: it covers the true median with at least
  95% probability, whatever the distribution. Below MIN_ROUNDS_FOR_CI rounds no
  such pair exists, and it gives the range (min, max), at lower confidence.
- `ratio_ci` resamples rounds with replacement (scipy.stats.bootstrap,
  percentile method, a fixed seed so that a table is reproducible from its
  rounds). Paired: rounds of one interleaved group share a round index, so a
  resample keeps round r of both (the drift they shared stays shared).
  Unpaired (two runs): each side is resampled on its own.
- `normalised_ratio_ci` is a ratio of two runs' medians divided by the same
  ratio of their canaries (measure/canary.py): each run's rounds are resampled
  on their own, a case's round r with its canary's round r (timed in the same
  round, so they shared the machine's state), with numpy, as ratio_ci does.
- `difference` turns an interval into a word: a difference counts only where
  the interval excludes 1.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95          # of every interval here
N_RESAMPLES = 2000         # bootstrap resamples: the 2.5% quantile to about +-1% of the interval's width
BOOTSTRAP_SEED = 0         # fixed: the same rounds always give the same interval
MIN_ROUNDS_FOR_CI = 6      # fewest rounds with a 95% order-statistic interval of the median (0.5**5 * 2 > 5%)
NO_DIFFERENCE = "no measurable difference"


def median_ci(x: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A distribution-free interval of the median of `x` (the range below MIN_ROUNDS_FOR_CI values)."""
    s = np.sort(np.asarray(x, dtype=float))
    n = len(s)
    if n == 0:
        return float("nan"), float("nan")
    k = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))   # P(B <= k - 1) < alpha/2 <= P(B <= k)
    if k < 1:
        return float(s[0]), float(s[-1])
    return float(s[k - 1]), float(s[n - k])


def half_width(x: Sequence[float]) -> float:
    """The larger side of median_ci, relative to the median: 0.02 is +-2%."""
    med = float(np.median(x))
    lo, hi = median_ci(x)
    return max(med - lo, hi - med) / med if med > 0 else float("inf")


def _median_ratio(a, b, axis=-1):
    return np.median(a, axis=axis) / np.median(b, axis=axis)


def ratio_ci(a: Sequence[float], b: Sequence[float], paired: bool,
             confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """median(a) / median(b) and its bootstrap interval; the interval is nan with under 2 values a side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ratio = float(np.median(a) / np.median(b))
    if min(len(a), len(b)) < 2:
        return ratio, float("nan"), float("nan")
    if paired and len(a) != len(b):
        raise ValueError(f"paired rounds need equal counts, not {len(a)} and {len(b)}")
    res = stats.bootstrap((a, b), _median_ratio, paired=paired, vectorized=True, n_resamples=N_RESAMPLES,
                          confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(BOOTSTRAP_SEED))
    lo, hi = res.confidence_interval
    return ratio, float(min(lo, ratio)), float(max(hi, ratio))


def normalised_ratio_ci(a: Sequence[float], a_ref: Sequence[float], b: Sequence[float], b_ref: Sequence[float],
                        confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(median(a) / median(a_ref)) / (median(b) / median(b_ref)) and its percentile bootstrap interval.

    a and a_ref are one run's rounds, paired by index (a case and its group's canary); b and b_ref the other's.
    A run whose two lists differ in length is resampled unpaired. nan interval with under 2 rounds anywhere."""
    sides = [tuple(np.asarray(x, dtype=float) for x in pair) for pair in ((a, a_ref), (b, b_ref))]
    (xa, ra), (xb, rb) = sides
    ratio = float(np.median(xa) / np.median(ra) / (np.median(xb) / np.median(rb)))
    if min(len(x) for pair in sides for x in pair) < 2:
        return ratio, float("nan"), float("nan")
    rng = np.random.default_rng(BOOTSTRAP_SEED)

    def resampled(x: np.ndarray, ref: np.ndarray) -> np.ndarray:          # (N_RESAMPLES,) of median(x) / median(ref)
        ix = rng.integers(0, len(x), (N_RESAMPLES, len(x)))
        iref = ix if len(ref) == len(x) else rng.integers(0, len(ref), (N_RESAMPLES, len(ref)))
        return np.median(x[ix], axis=1) / np.median(ref[iref], axis=1)

    boot = resampled(xa, ra) / resampled(xb, rb)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return ratio, float(min(lo, ratio)), float(max(hi, ratio))


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value of two samples of rounds (1.0 where a side is empty)."""
    if len(a) == 0 or len(b) == 0:
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t quantile for a mean over df + 1 values."""
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def difference(lo: float, hi: float, above: str = "slower", below: str = "faster") -> str:
    """A ratio's interval as a word: `above` when it lies wholly above 1, `below` wholly below, else none."""
    if lo > 1:
        return above
    if hi < 1:
        return below
    return NO_DIFFERENCE
