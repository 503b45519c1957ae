"""Timing: how one case is built, and how a comparison group of cases is timed.

A comparison group is the throughput cases of one section that differ only in
impl (cases.groups). `time_group` times its members together:

- interleaved (the default): every member's `warmup` untimed rounds first;
  then each round times every member once, in a fresh random order drawn
  from the group's seed (`orders`), so that drift in the machine (another
  process, a clock change, a neighbour VM) falls on every member alike;
- blocked (`interleave = false`): each member's warm-up and rounds as one
  block, one member after another (the older way, kept for comparison);
- rounds = "auto": rounds go on until every member's median has a 95%
  interval within +-AUTO_PRECISION (intervals.median_ci), or max_time_s.

In every round, setup (untimed) zeroes the gradients and synchronises the
device; the timed region runs the step and synchronises the device again, so
queued GPU work is inside it. A member that raises drops out of the rounds;
the others go on.

pytest-benchmark stays the statistics and JSON engine: harness/run/plugin.py hands
each member's rounds to its test's benchmark fixture (one test per case), so
benchmark.json holds one benchmark per case with its stats and raw `data`, and
`pytest-benchmark compare` reads it.

A step is, per phase:
- forward: y, state = model(x) under torch.no_grad(), in eval mode   (inference)
- train:   y, state = model(x); y.sum().backward(), in train mode    (x needs no grad)

Inputs are drawn from the case's seed, like the parameters, and so are a variable-length
batch's lengths (harness/implementations/lengths.py): then x is zero after each sequence's end, the model
gets `lengths`, and the train loss is the sum over the real steps only (padded mode's
"only the loss is masked"; packed and masked outputs are zero there anyway). `tokens`
counts the real tokens.
"""
from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from pytest_benchmark.stats import Stats
from torch.utils._python_dispatch import TorchDispatchMode

from harness.config.cases import ThroughputCase
from harness.core import env, intervals
from harness.core.errors import Skip
from harness.implementations import lengths as varlen
from harness.implementations import registry
from harness.implementations.models import Recurrent, param_count


@dataclass
class Step:
    model: Recurrent
    run: Callable[[], object]     # one step (untimed sync not included)
    setup: Callable[[], None]     # zero gradients, synchronise
    sync: Callable[[], None]
    params: int
    tokens: int = 0               # real tokens per step: batch * seq_len, less the padding
    padding_fraction: float = 0.0
    compute_dtype: str = ""       # what the step really computed in: its output's dtype (autocast can change it)
    x: torch.Tensor | None = None             # (T, B, I): the step's input, on its device, in its dtype
    lengths: torch.Tensor | None = None       # (B,): each sequence's length, or None for fixed lengths
    real: torch.Tensor | None = None          # (T, B, 1): 1 at real steps, 0 at padding (the train loss's mask)
    cast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext   # autocast, or nothing

    def timed(self) -> None:
        self.run()
        self.sync()


def build_step(case: ThroughputCase) -> Step:
    """Build the model and inputs for `case`; raises errors.Skip where it cannot run."""
    model = registry.create(case.impl, case.input, case.hidden, device=case.device, dtype=case.dtype,
                            seed=case.seed, shape=case.shape, lengths_mode=case.lengths_mode,
                            compile_mode=case.compile_mode, gemm=case.gemm)
    model.train(case.phase == "train")                                    # dropout acts in training only
    gen = torch.Generator().manual_seed(case.seed + 1)
    x = torch.randn(case.seq_len, case.batch, case.input, generator=gen)  # (T, B, I)
    lengths = varlen.draw(case.lengths, case.batch, case.seq_len, case.seed)        # (B,) or None
    real = None
    if lengths is not None:
        real = varlen.mask(lengths, case.seq_len)                         # (T, B, 1)
        x = x * real
        real = real.to(device=case.device, dtype=registry.DTYPES[case.dtype])
    x = x.to(device=case.device, dtype=registry.DTYPES[case.dtype])
    is_cuda = case.device.startswith("cuda")
    sync = (lambda: torch.cuda.synchronize(case.device)) if is_cuda else (lambda: None)

    def label(name):  # record_function labels, only while profiling
        return torch.profiler.record_function(name) if model.label_steps else contextlib.nullcontext()

    cast = autocast_context(case.device, case.autocast)
    if case.phase == "forward":
        def run():
            with torch.no_grad(), label("forward"), cast():
                return model(x, lengths=lengths)
    else:
        def run():
            with label("forward"), cast():
                y, _ = model(x, lengths=lengths)
                loss = y.sum() if real is None else (y * real).sum()
            with label("backward"):
                loss.backward()

    def setup():
        model.zero_grad(set_to_none=True)
        sync()

    tokens = case.batch * case.seq_len if lengths is None else int(lengths.sum())
    computed = case.dtype if case.autocast == NO_AUTOCAST else probe_autocast(model, x, lengths, case)
    return Step(model, run, setup, sync, param_count(model), tokens, varlen.padding_fraction(lengths, case.seq_len),
                computed, x, lengths, real, cast)


NO_AUTOCAST = registry.NO_AUTOCAST


def gemm_dtype(case: ThroughputCase) -> str:
    """The dtype a case's GEMMs run in, and so the GEMM peak it is held against: autocast's, else its own."""
    return case.dtype if case.autocast == NO_AUTOCAST else case.autocast
PROBE_STEPS = 2           # time steps of the autocast probe: what the model computes in, not how fast


def autocast_context(device: str, autocast: str) -> Callable[[], contextlib.AbstractContextManager]:
    """torch.autocast over the step's forward, or nothing for "none"."""
    if autocast == NO_AUTOCAST:
        return contextlib.nullcontext
    kind, dtype = registry.device_type(device), registry.DTYPES[autocast]
    return lambda: torch.autocast(kind, dtype=dtype)


GEMMS = ("mm", "addmm", "bmm", "baddbmm", "mkldnn_rnn_layer", "_cudnn_rnn", "_thnn_fused_lstm_cell",
         "_linear_pointwise")
# the aten ops whose output dtype says what a step's matrix work ran in (the elementwise gates follow the
# state's dtype: autocast keeps a float32 state float32)


class _GemmDtypes(TorchDispatchMode):
    """The output dtypes of every GEMMS op run under it (after autocast has cast their inputs)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in GEMMS:
            first = out[0] if isinstance(out, tuple | list) else out
            self.seen.add(str(first.dtype).removeprefix("torch."))
        return out


def probe_autocast(model: Recurrent, x: torch.Tensor, lengths, case: ThroughputCase) -> str:
    """What `model`'s GEMMs compute in under the case's autocast, from a forward of its first PROBE_STEPS
    steps: errors.Skip, naming the cause, where autocast raises or a GEMM is not in the autocast dtype
    (nn.LSTM's native CPU kernels are not on autocast's list: they run float32, which is no bfloat16 row).
    A compiled model computes fused-lstm's arithmetic: its eager twin is probed, so the probe compiles nothing."""
    if getattr(model, "compiler", ""):
        twin = registry.create("fused-lstm", case.input, case.hidden, device=case.device, dtype=case.dtype)
        model = twin.load_canonical({k: v.detach() for k, v in model.canonical().items()})
    part = None if lengths is None else lengths.clamp(max=PROBE_STEPS)
    try:
        with torch.no_grad(), autocast_context(case.device, case.autocast)(), _GemmDtypes() as seen:
            model(x[:PROBE_STEPS], lengths=part)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Skip(f"{case.impl} fails under {case.autocast} autocast on {case.device}: {first}") from exc
    if seen.seen != {case.autocast}:
        ran = " and ".join(sorted(seen.seen)) or "no GEMM"
        raise Skip(f"{case.impl}'s GEMMs run in {ran} under {case.autocast} autocast on {case.device} (its "
                   f"kernels are not on autocast's list): no {case.autocast} row")
    return case.autocast


AUTO_PRECISION = 0.02       # rounds = "auto": done when every member's median interval is within +-2%
MAX_AUTO_ROUNDS = 10_000    # rounds = "auto": a cap for microsecond steps (max_time_s bounds the others)


@dataclass
class GroupTimes:
    """What time_group measured: member i's rounds are times[i]; rounds[j] = (member, round, position, s)."""

    times: list[list[float]]                     # seconds per timed round, per member
    rounds: list[tuple[int, int, int, float]] = field(default_factory=list)  # the long table, in timed order
    errors: list[BaseException | None] = field(default_factory=list)        # why a member dropped out
    seed: int = 0                                # of the round orders (interleaved)
    interleaved: bool = True
    steal_fraction: float | None = None          # CPU steal over the group's rounds (env.steal_between)
    load_avg: float | None = None                # one-minute load average over them
    wall_s: float = 0.0                          # warm-up and rounds, seconds
    first_s: list[float | None] = field(default_factory=list)   # each member's first call (warm-up or not):
    # where a compiled member compiles (compile_columns)


def orders(n: int, seed: int) -> Iterator[list[int]]:
    """The members' timing order, round after round: a fresh random permutation of range(n) each round."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield order


def order_seed(group_id: str, seed: int) -> int:
    """The seed of a group's round orders: from its id and the scenario's seed, so every group has its own."""
    return int(group_id[:8], 16) + seed


def _precise(times: list[list[float]], alive: list[int]) -> bool:
    return all(len(times[i]) >= intervals.MIN_ROUNDS_FOR_CI and intervals.half_width(times[i]) <= AUTO_PRECISION
               for i in alive)


def _check_now(n: int) -> bool:
    """rounds = "auto" checks the intervals at round 6, then about every 10% more rounds (sorting is not free)."""
    return n >= intervals.MIN_ROUNDS_FOR_CI and (n < 50 or n % max(1, n // 10) == 0)


def time_group(steps: list[Step], rounds: int | str, warmup: int, interleave: bool = True, seed: int = 0,
               max_time_s: float = 30.0, clock: Callable[[], float] = time.perf_counter) -> GroupTimes:
    """Time every step of a comparison group, interleaved or blocked (module docstring)."""
    n = len(steps)
    out = GroupTimes(times=[[] for _ in steps], errors=[None] * n, seed=seed, interleaved=interleave,
                     first_s=[None] * n)
    auto = rounds == "auto"
    limit = MAX_AUTO_ROUNDS if auto else int(rounds)

    def one(i: int, r: int, pos: int, timed: bool) -> None:
        if out.errors[i] is not None:
            return
        try:
            steps[i].setup()
            t0 = clock()
            steps[i].timed()
            dt = clock() - t0
        except Exception as exc:  # noqa: BLE001 -- the member drops out; its row says why
            out.errors[i] = exc
            return
        if out.first_s[i] is None:
            out.first_s[i] = dt
        if timed:
            out.times[i].append(dt)
            out.rounds.append((i, r, pos, dt))

    alive = lambda: [i for i in range(n) if out.errors[i] is None]  # noqa: E731
    before, wall0 = env.cpu_sample(), clock()
    if interleave:
        for _ in range(warmup):
            for i in range(n):
                one(i, -1, i, timed=False)
        start = clock()
        order = orders(n, seed)
        for r in range(limit):
            for pos, i in enumerate(next(order)):
                one(i, r, pos, timed=True)
            if not alive() or auto and (clock() - start >= max_time_s
                                        or _check_now(r + 1) and _precise(out.times, alive())):
                break
    else:
        for i in range(n):
            for _ in range(warmup):
                one(i, -1, 0, timed=False)
            start = clock()
            for r in range(limit):
                one(i, r, 0, timed=True)
                if out.errors[i] is not None or auto and (clock() - start >= max_time_s / n
                                                          or _check_now(r + 1) and _precise(out.times, [i])):
                    break
    out.wall_s = clock() - wall0
    out.steal_fraction, out.load_avg = env.steal_between(before, env.cpu_sample())
    return out


def compile_columns(step: Step, first_s: float | None, times: list[float]) -> dict:
    """compile_backend, compile_mode, compile_s (the first call less the steady median), recompiles and
    graph_breaks (torch.compile only, harness/implementations/compiled.py); blank for an eager implementation."""
    compiler = getattr(step.model, "compiler", "")
    if not compiler:
        return {}
    stats = getattr(step.model, "compile_stats", None)
    steady = statistics.median(times) if times else None      # time_median_s
    return {"compile_backend": compiler, "compile_mode": getattr(step.model, "compile_mode", None),
            "compile_s": first_s - steady if first_s is not None and steady is not None else None,
            "recompiles": stats.recompiles if stats else None, "graph_breaks": stats.graph_breaks if stats else None}


def stats_columns(times: list[float]) -> dict:
    """The timing columns of one member's rounds, from pytest-benchmark's own statistics (the numbers
    benchmark.json will hold for it)."""
    s = Stats()
    for t in times:
        s.update(t)
    return {"rounds": s.rounds, "time_median_s": s.median, "time_iqr_s": s.iqr, "time_min_s": s.min,
            "time_max_s": s.max, "time_mean_s": s.mean, "time_stddev_s": s.stddev if s.rounds > 1 else 0.0}
