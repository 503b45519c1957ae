"""How two runs' environments differ, for compare: the machine, the software, the commit, the GEMM peaks.

    diff, machine = environment_lines(base_meta, run_meta, (base_threads, run_threads))
    lines = gemm_lines(base_meta, run_meta)      # each library's peak, and a warning where the ceiling moved
    same_code(base_meta, run_meta)               # one clean commit on the same software: a shared change is the machine
"""
from __future__ import annotations

from harness.core.thresholds import CEILING_MOVED
from harness.store.meta import RunMeta

MACHINE_KEYS = ("cpu_model", "physical_cores", "gpu", "host")        # run.json environment: the machine
SOFTWARE_KEYS = ("torch", "cuda", "cudnn", "onednn", "python")       # and what ran on it


def environment_lines(base: RunMeta, new: RunMeta, threads: tuple[set, set]) -> tuple[list[str], list[str]]:
    """(what differs, of which the machine's part): one line per difference."""
    eb, en = base.environment, new.environment
    machine = [f"  {k}: {eb.get(k)} -> {en.get(k)}" for k in MACHINE_KEYS if eb.get(k) != en.get(k)]
    if threads[0] != threads[1]:
        machine.append(f"  threads: {','.join(sorted(threads[0]))} -> {','.join(sorted(threads[1]))}")
    diff = machine + [f"  {k}: {eb.get(k)} -> {en.get(k)}" for k in SOFTWARE_KEYS if eb.get(k) != en.get(k)]
    cb = base.git.commit[:12] + ("+dirty" if base.git.dirty else "")
    cn = new.git.commit[:12] + ("+dirty" if new.git.dirty else "")
    if cb != cn:
        diff.append(f"  commit: {cb} -> {cn}")
    return diff, machine


def same_code(base: RunMeta, new: RunMeta) -> bool:
    """Both runs are one commit, neither dirty, on the same software (SOFTWARE_KEYS): any change common to
    every case is then the machine's (or something run.json does not record)."""
    return (base.git.commit == new.git.commit and base.git.commit != "unknown" and not base.git.dirty
            and not new.git.dirty and all(base.environment.get(k) == new.environment.get(k) for k in SOFTWARE_KEYS))


def _peaks(meta: RunMeta) -> dict[tuple, dict[str, float]]:
    """(device, dtype, threads) -> library -> GFLOP/s: a run's GEMM peaks (a format-2 run's one: aten's)."""
    out: dict[tuple, dict[str, float]] = {}
    for p in meta.gemm_peaks:
        out.setdefault((p.device, p.dtype, p.threads), {})[p.library] = p.gemm_peak_gflops_per_s
    return out


def gemm_lines(base: RunMeta, new: RunMeta) -> list[str]:
    """The machine's own speed as each run began (its GEMM peaks, per library), where both runs measured one; and a
    warning where the best library's (the ceiling) moved by more than CEILING_MOVED: the machine, not the code."""
    out, pb, pn = [], _peaks(base), _peaks(new)
    for key in (k for k in pb if k in pn):
        device, dtype, threads = key
        for library in (lib for lib in pb[key] if lib in pn[key]):
            change = pn[key][library] / pb[key][library] - 1
            out.append(f"GEMM peak {device} {dtype} {threads} threads {library}: {pb[key][library]:.0f} -> "
                       f"{pn[key][library]:.0f} GFLOP/s ({100 * change:+.0f}%)")
        (lb, b), (ln, n) = max(pb[key].items(), key=lambda kv: kv[1]), max(pn[key].items(), key=lambda kv: kv[1])
        if abs(n / b - 1) > CEILING_MOVED:
            out.append(f"warning: the GEMM ceiling of {device} {dtype} {threads} threads moved "
                       f"{100 * (n / b - 1):+.0f}% ({b:.0f} GFLOP/s, {lb} -> {n:.0f}, {ln}): the machine changed, not "
                       "only the code")
    return out
