"""What a person reads in the terminal: one line per finished case, and the end-of-run summary.

Only text is made here, from rows as the store writes them; the sweep prints
the per-case lines under its progress bar, cli prints the rest.
"""
from __future__ import annotations

from harness import intervals
from harness.cases import stack_label
from harness.columns import STATUSES
from harness.gradients import VANISH_RATIO


def num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("n/a" if v in ("", None) else str(v))


def duration(s: float) -> str:
    return f"{s * 1e3:8.2f} ms" if s < 10 else f"{s:8.2f} s "


def case_line(row: dict) -> str:
    """A finished throughput case: its time, rate, memory and backend, or its status and reason."""
    what = (f"{row['impl']:12s} {row['device']:6s} {row['dtype']:8s} b{row['batch']:<4d} t{row['seq_len']:<4d} "
            f"h{row['hidden']:<5d} {row['phase']:7s}")
    if stack := stack_label(row):
        what += f" [{stack}]"
    if row["status"] != "ok":
        return f"{row['status']:7s} {what} {row['reason']}"
    mem = f"  mem {row['peak_mem_bytes'] / 2**20:8.2f} MiB" if row.get("peak_mem_bytes") not in (None, "") else ""
    frac = f"  {100 * row['peak_fraction']:5.1f}% of peak" if row.get("peak_fraction") else ""
    vs = versus_reference(row)
    noisy = f"  NOISY ({100 * row['steal_fraction']:.0f}% CPU steal)" if row.get("noisy") is True else ""
    return (f"ok      {what} {duration(row['time_median_s'])} (IQR {row['time_iqr_s'] * 1e3:.2f} ms)  "
            f"{row['tokens_per_s']:11.0f} tok/s{frac}{mem}  [{row['backend']}]" + (f"  {vs}" if vs else "") + noisy)


def decay_line(decay_x: dict) -> str:
    """A finished [[gradients]] case, from its decay row with respect to x."""
    vanish = (f"below {VANISH_RATIO:g} at distance {decay_x['vanish_distance']}" if decay_x["vanishes_within_T"]
              else f"not below {VANISH_RATIO:g} within T")
    return (f"decay factor {num(decay_x['decay_factor'])} [{num(decay_x['decay_ci_low'])}, "
            f"{num(decay_x['decay_ci_high'])}]/step, {vanish}")


def training_line(last: dict) -> str:
    """A finished [[task]] case, from its last evaluation row."""
    return (f"eval loss {num(last['eval_loss'])} (baseline {last['baseline_loss']:.4g}), "
            f"accuracy {last['eval_accuracy']:.3f}, {last['wall_s']:.1f} s")


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
        return f"{1 / r:.2f}x [{1 / float(hi):.2f}, {1 / float(lo):.2f}] faster than {ref}"
    return f"{r:.2f}x [{float(lo):.2f}, {float(hi):.2f}] slower than {ref}"


def fastest_table(rows: list[dict]) -> list[str]:
    """One line per size, stack and cell: the fastest implementation, and how it stands against the group's
    reference (versus_reference)."""
    ok = [r for r in rows if r["status"] == "ok"]
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["device"], r["dtype"], r["phase"], r["hidden"], r["batch"], r["seq_len"], r["cell"],
                           stack_label(r)), []).append(r)
    lines = []
    for (device, dtype, phase, hidden, batch, seq_len, cell, stack), rs in sorted(groups.items()):
        best = min(rs, key=lambda r: r["time_median_s"])
        vs = versus_reference(best)
        lines.append(f"  {device:6s} {dtype:8s} {phase:7s} {cell:4s} h{hidden:<5d} b{batch:<4d} t{seq_len:<4d} "
                     f"{best['impl']:13s} {duration(best['time_median_s'])}" + (f"  {vs}" if vs else "")
                     + (f"  [{stack}]" if stack else ""))
    return lines


def counts_text(counts: dict) -> str:
    """'13 cases (11 ok, 2 skipped, 0 failed, 0 oom)'"""
    return f"{sum(counts.values())} cases (" + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ")"
