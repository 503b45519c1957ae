"""What a person reads in the terminal: one line per finished case, and the end-of-run summary.

Only text is made here, from rows as the store writes them; the sweep prints
the per-case lines under its progress bar, cli prints the rest.
"""
from __future__ import annotations

import os
import sys

from harness.config.cases import impl_label, size_of, stack_label
from harness.core import intervals, units
from harness.core.thresholds import ABOVE_CEILING, VANISH_RATIO
from harness.store.columns import STATUSES


def num(v) -> str:
    """A number of a decay or training line (4 significant figures), or n/a where there is none."""
    return units.compact(v, 4) if isinstance(v, float) else ("n/a" if v in ("", None) else str(v))


def duration(s: float) -> str:
    """A time in its unit, right-aligned in a column."""
    return f"{units.seconds(s):>10s}"


def size(row: dict) -> str:
    """The case's size_label, in a column."""
    return f"{size_of(row):17s}"


def case_line(row: dict) -> str:
    """A finished throughput case: its time, rate, memory and backend, or its status and reason."""
    impl = impl_label(row["impl"], row.get("gemm"))
    what = f"{impl:18s} {row['device']:6s} {row['dtype']:8s} {size(row)} {row['phase']:7s}"
    if stack := stack_label(row):
        what += f" [{stack}]"
    if row["status"] != "ok":
        return f"{row['status']:7s} {what} {row['reason']}"
    mem = f"  mem {units.mebibytes(row['peak_mem_bytes']):>9s}" if row.get("peak_mem_bytes") not in (None, "") else ""
    frac = f"  {units.percent(row['peak_fraction']):>6s} of peak" if row.get("peak_fraction") else ""
    if (row.get("peak_fraction") or 0) > ABOVE_CEILING:
        frac += (f" ABOVE THE MEASURED CEILING ({units.rate(row['gflops_per_s'] * 1e9, 'FLOP/s')} against "
                 f"{units.rate(row['gemm_peak_gflops_per_s'] * 1e9, 'FLOP/s')}, {row['gemm_peak_library']})")
    vs = versus_reference(row)
    noisy = f"  NOISY ({row.get('noisy_why') or 'CPU steal'})" if row.get("noisy") is True else ""
    rate = units.rate(row["tokens_per_s"], "tok/s")
    return (f"ok      {what} {duration(row['time_median_s'])} (IQR {units.seconds(row['time_iqr_s'])})  "
            f"{rate:>12s}{frac}{mem}  [{row['backend']}]" + (f"  {vs}" if vs else "") + noisy + numerics_note(row))


RED, RESET = "\033[31m", "\033[0m"


def red(text: str) -> str:
    """text in red where the terminal shows colour (a tty, and NO_COLOR unset), else as it is."""
    return f"{RED}{text}{RESET}" if sys.stdout.isatty() and not os.environ.get("NO_COLOR") else text


def numerics_note(row: dict) -> str:
    """'  NUMERICS OFF (out_err 3.1e-03, grad_err 2.9e-03 > 1e-04 for float32)', in red, for a row whose error
    against float64 is above its tolerance (measure/accuracy.py); "" for any other."""
    if row.get("numerics") != "off":
        return ""
    errs = ", ".join(f"{k} {units.compact(row[k])}" for k in ("out_err", "grad_err") if row.get(k) not in (None, ""))
    return "  " + red(f"NUMERICS OFF ({errs} > {units.compact(row.get('err_tol'))} for {row.get('compute_dtype')})")


def numerics_lines(rows: list[dict]) -> list[str]:
    """The end-of-run lines of the rows whose numerics are off, one each; [] where none is."""
    off = [r for r in rows if r.get("status") == "ok" and r.get("numerics") == "off"]
    if not off:
        return []
    lines = [red(f"{len(off)} timed rows are off their float64 reference (numerics in timings.csv):")]
    return lines + [f"  {impl_label(r['impl'], r.get('gemm')):18s} {size(r)} {r['phase']:7s}{numerics_note(r)}"
                    for r in off]


def decay_line(decay_x: dict) -> str:
    """A finished [[gradients]] case, from its decay row with respect to x."""
    vanish = (f"below {VANISH_RATIO:g} at distance {decay_x['vanish_distance']}" if decay_x["vanishes_within_T"]
              else f"not below {VANISH_RATIO:g} within T")
    return (f"decay factor {num(decay_x['decay_factor'])} [{num(decay_x['decay_ci_low'])}, "
            f"{num(decay_x['decay_ci_high'])}]/step, {vanish}")


def training_line(last: dict) -> str:
    """A finished [[task]] case, from its last evaluation row."""
    return (f"eval loss {num(last['eval_loss'])} (baseline {num(last['baseline_loss'])}), "
            f"accuracy {units.percent(last['eval_accuracy'])}, {units.seconds(last['wall_s'])}")


def other_line(status: str, slug: str, threads: int, text: str) -> str:
    return f"{status:7s} {slug:50s} ({threads} threads) {text}"


def versus_reference(row: dict) -> str:
    """'1.48x [1.41, 1.55] faster than torch-lstm', or 'no measurable difference from torch-lstm' where the
    ratio's interval holds 1 (the ratio columns: time / ratio_ref's time)."""
    ref, lo, hi = row.get("ratio_ref"), row.get("ratio_ci_low"), row.get("ratio_ci_high")
    if not ref or ref == row["impl"] or lo in (None, "") or hi in (None, ""):
        return ""
    word = intervals.difference(float(lo), float(hi))
    if word == intervals.NO_DIFFERENCE:
        return f"{word} from {ref}"
    r = float(row["ratio"])
    if word == "faster":
        return f"{units.times(1 / r)} [{units.sig(1 / float(hi))}, {units.sig(1 / float(lo))}] faster than {ref}"
    return f"{units.times(r)} [{units.sig(float(lo))}, {units.sig(float(hi))}] slower than {ref}"


def fastest_table(rows: list[dict]) -> list[str]:
    """One line per size, stack and cell: the fastest implementation, and how it stands against the group's
    reference (versus_reference)."""
    ok = [r for r in rows if r["status"] == "ok"]
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["device"], r["dtype"], r["phase"], r["batch"], r["seq_len"], r["hidden"], r["cell"],
                           stack_label(r)), []).append(r)
    lines = []
    for (device, dtype, phase, _b, _t, _h, cell, stack), rs in sorted(groups.items()):
        best = min(rs, key=lambda r: r["time_median_s"])
        vs = versus_reference(best)
        lines.append(f"  {device:6s} {dtype:8s} {phase:7s} {cell:4s} {size(best)} "
                     f"{impl_label(best['impl'], best.get('gemm')):18s} {duration(best['time_median_s'])}"
                     + (f"  {vs}" if vs else "")
                     + (f"  [{stack}]" if stack else ""))
    return lines


def counts_text(counts: dict) -> str:
    """'13 cases (11 ok, 2 skipped, 0 failed, 0 oom)'"""
    return f"{sum(counts.values())} cases (" + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ")"
