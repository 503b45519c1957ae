"""Peak memory of one step, measured in a separate, untimed pass.

peak_mem_bytes is the most memory the step holds at once *on top of* what was
allocated before it started (parameters, input, gradient buffers of an earlier
step are not counted):

- CUDA: torch.cuda.reset_peak_memory_stats, then max_memory_allocated minus
  the memory allocated before the step.
- CPU:  torch.profiler with profile_memory=True; every allocation and free is a
  [memory] event, and the peak is the maximum of their running sum in time
  order. (RSS and tracemalloc do not see torch's CPU allocator correctly.)
"""
from __future__ import annotations

import gc
import math
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity

from harness.core.units import mebibytes
from harness.implementations.models import GATES, ONE_LAYER, Shape, param_shapes
from harness.implementations.registry import DTYPES
from harness.measure.profiling import quiet_profile


def peak_bytes(step: Callable[[], object], device: str) -> int:
    return measure(step, device)[0]


def measure(step: Callable[[], object], device: str) -> tuple[int, set[str] | None]:
    """(peak bytes, names of the ops the step ran -- on CPU, where the profiler sees them; else None)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base), None
    with quiet_profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    all_events = prof.profiler.kineto_results.events()
    events = [e for e in all_events if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return int(peak), {e.name() for e in all_events}


# -- will a case fit? (the sweep asks before it builds one) -------------------------------------------
ACTIVATIONS = {"lstm": 24, "gru": 18, "rnn": 6, "mingru": 24, "minlstm": 30}   # numbers kept per (step, batch,
#   hidden) while training: a generous bound over the implementations (fused-lstm keeps 12, oneDNN about twice that;
#   a min cell's scan keeps its log-space terms: minrnn.train_peak_bytes)
FIT_FRACTION = 0.8   # a case may use at most this share of what is free


def estimate_bytes(cell: str, dtype: str, batch: int, seq_len: int, hidden: int, input_size: int,
                   train: bool = True, shape: Shape = ONE_LAYER) -> int:
    """An estimate, made before building the case, of one step's memory: activations (every layer
    and direction's, and each layer's output), input, parameters and their gradients."""
    s = DTYPES[dtype].itemsize
    G, D, L = GATES[cell], shape.directions, shape.layers
    params = sum(math.prod(size) for size in param_shapes(cell, input_size, hidden, shape).values())
    if train:
        acts = L * D * ACTIVATIONS[cell] * seq_len * batch * hidden + L * D * seq_len * batch * hidden
    else:
        acts = D * seq_len * batch * (G + 1) * hidden + 2 * D * seq_len * batch * hidden   # one layer at a time
    return int(s * (acts + seq_len * batch * input_size + 2 * params))


def available_bytes(device: str) -> int | None:
    """Memory free for a new case: MemAvailable on CPU; on CUDA the driver's free memory
    (cudaMemGetInfo) plus what PyTorch's caching allocator holds but does not use, which it
    reuses before asking the driver for more."""
    if device.startswith("cuda"):
        try:
            dev = torch.device(device)
            free, _total = torch.cuda.mem_get_info(dev)
            cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
            return int(free + cached)
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def release_cache(device: str) -> None:
    """Give a CUDA device's cached, unused blocks back to the driver, between cases: what one case
    cached must not count against the next (nor against other processes on the GPU)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        gc.collect()                  # the last case's tensors, if a cycle still holds them
        with torch.cuda.device(torch.device(device)):     # empty_cache acts on the current device
            torch.cuda.empty_cache()


def why_too_large(estimate: int, device: str) -> str | None:
    """Why a case of this estimated size must be skipped here, or None when it fits."""
    free = available_bytes(device)
    if free is not None and estimate > FIT_FRACTION * free:
        return (f"needs about {mebibytes(estimate)} by the preflight estimate, but only {mebibytes(free)} is free on "
                f"{device} (a case may use {int(FIT_FRACTION * 100)}%)")
    return None
