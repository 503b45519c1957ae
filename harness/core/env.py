"""The machine a run happens on: paths, threads, TF32, provenance, device names.

Paths are defined here once: the repository, and under it scenarios/ (the
shipped scenario files), results/ (run directories) and reports/ (rendered
reports). Every command's --results and --out default to these.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]      # harness/core/env.py -> the repository
SCENARIOS = REPO / "scenarios"      # the shipped scenario files
RESULTS = REPO / "results"          # run directories: results/<run_id>/, results/latest
REPORTS = REPO / "reports"          # rendered reports: reports/<run_id>/index.html


def _version() -> str:
    """lstm-bench's version: the installed distribution's, else pyproject.toml's (a plain checkout)."""
    try:
        return importlib.metadata.version("lstm-bench")
    except importlib.metadata.PackageNotFoundError:
        found = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
        return found.group(1) if found else "unknown"


VERSION = _version()                # recorded in every run.json


def physical_cores() -> int:
    """Physical cores available to this process (SMT siblings counted once)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores, cpu = set(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                cpu = int(value)
                phys = core = None
            elif key == "physical id":
                phys = value
            elif key == "core id" and cpu in allowed:
                core = value
                cores.add((phys, core))
    except OSError:
        pass
    return len(cores) or len(allowed) or 1


def set_threads(threads: int | None = None) -> int:
    """Fix torch's intra-op thread count (None: all physical cores) and return it."""
    n = threads or physical_cores()
    torch.set_num_threads(n)
    return torch.get_num_threads()


TF32 = False
# Whether CUDA float32 work may use TF32 (cuBLAS matmuls and cuDNN's RNNs), by default: off, so float32
# means full float32 on every CUDA path. (PyTorch's own defaults differ: cuDNN on, cuBLAS off, so a
# float32 cudnn-lstm against torch-lstm compares different arithmetic.) The scenario's `tf32` axis sets it
# per case, both flags together, and the GEMM peak a case is held against is measured under the same flags.


def tf32_flags() -> tuple[bool, bool]:
    """(cuBLAS matmul, cuDNN) TF32 flags as they are now."""
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def set_tf32(enabled: bool = TF32) -> bool:
    """Set both TF32 flags (they are global to the process) and return the value set."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return enabled


def tf32_for(device: str, enabled: bool | None = None) -> bool | None:
    """Fix TF32 for work on `device`: on CUDA, `enabled` (None: TF32), returned to be recorded; None on CPU,
    which has no TF32."""
    return set_tf32(TF32 if enabled is None else enabled) if device.startswith("cuda") else None


def restore_tf32(flags: tuple[bool, bool]) -> None:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


PROC_STAT = Path("/proc/stat")
MIN_STEAL_TICKS = 100               # /proc/stat counts in clock ticks (1/100 s per CPU): over fewer than this, one
                                    # tick is over 1% and steal cannot be told from rounding (0.5 s on 2 CPUs)


@dataclass(frozen=True)
class CpuSample:
    """The machine's CPU time counters (/proc/stat's first line, in clock ticks) and its load average."""

    busy: int              # user + nice + system + irq + softirq
    total: int             # busy + idle + iowait + steal
    steal: int             # time a hypervisor gave this VM's CPUs to someone else
    load_1m: float | None  # os.getloadavg()'s one-minute figure


def cpu_sample() -> CpuSample | None:
    """Now's counters; None where /proc/stat does not exist (not Linux)."""
    try:
        fields = [int(x) for x in PROC_STAT.read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    busy = user + nice + system + irq + softirq
    return CpuSample(busy, busy + idle + iowait + steal, steal, load)


def steal_between(a: CpuSample | None, b: CpuSample | None) -> tuple[float | None, float | None]:
    """(steal fraction, mean one-minute load) between two samples; None where unknown, or where they
    are under MIN_STEAL_TICKS apart (too short to tell)."""
    if a is None or b is None:
        return None, None
    ticks = b.total - a.total
    steal = (b.steal - a.steal) / ticks if ticks >= MIN_STEAL_TICKS else None
    load = (a.load_1m + b.load_1m) / 2 if a.load_1m is not None and b.load_1m is not None else None
    return steal, load


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the harness's checkout; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", dirty if commit else False


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def short_host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def device_name(device: str) -> str:
    """The model name of `device`: the CPU's, or that CUDA device's own (cuda:1 names GPU 1, not GPU 0)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def environment() -> dict:
    """Provenance of a run: software versions, CPU, GPU, threads, host."""
    cuda = torch.cuda.is_available()
    onednn = torch.backends.mkldnn.is_available()
    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "onednn": torch._C._onednn_version() if hasattr(torch._C, "_onednn_version") else None,
        "onednn_available": onednn,
        "cpu_model": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(torch.cuda.current_device()) if cuda else None,
        "gpus": [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())] if cuda else [],
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "python": platform.python_version(),
        "os": platform.platform(),
        "host": socket.gethostname(),
    }
    if env["onednn"] is None and onednn:
        # torch.__config__.show() names the oneDNN release it was built with: "... MKL-DNN v3.12.0 (Git Hash ...)"
        found = re.search(r"(?:oneDNN|MKL-DNN) v(\d+(?:\.\d+)+)", torch.__config__.show())
        env["onednn"] = found.group(1) if found else None
    return env
