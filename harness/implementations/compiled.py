"""fused-lstm, compiled: torch.compile, TorchScript and CUDA graphs (what a practitioner tries next).

Each is fused.FusedLSTM with the same canonical parameters and the same arithmetic; what differs
is how its work reaches the device:

- compiled-lstm:      the cell (fused.fused_cell) under torch.compile; the loop over T stays in
                      Python, like fastrnns' jit cells. One graph per (batch, width), however long T.
- compiled-loop-lstm: the whole forward under torch.compile: dynamo unrolls the loop over T into
                      one graph, so its compile time grows with T.
- scripted-lstm:      the cell under TorchScript (torch.jit.script): fastrnns' jit_premul, the
                      input projection premultiplied outside the loop (FusedLSTM does that already).
- cudagraph-lstm:     CUDA only: the eager forward (and in training its backward) captured once
                      per input shape in a CUDA graph (torch.cuda.make_graphed_callables), then
                      replayed; outputs are the graph's static buffers, overwritten by the next call.

They take one plain layer of fixed lengths (the registry skips the rest): a packed batch changes
the cell's row count every step, which is a recompile or a new graph each time.

Compile cost. A compiled model compiles on its first call. timing.time_group times that call
apart (compile_s = that call less a steady one); `CompileStats` counts, around every call of the
model, the graph breaks dynamo reports and the frames it compiled after the first call
(`recompiles`), from torch._dynamo's counters. Every torch.compile'd model starts from an empty dynamo
cache (reset when it is built), and inductor compiles with its on-disk caches off (force_disable_caches),
so nothing an earlier run left behind shortens a compile. Within one process inductor still reuses the
kernels it has built: compiled-lstm's cell at T=100 right after T=25 compiled in 1.7 s against 13.7 s
(B=32, H=256, train, 2 threads), which is what a user's second model in one process sees too.
TorchScript compiles when the model is built (torch.jit.script); its compile_s is the profiling
executor's first, unoptimised call.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.core.errors import Skip
from harness.implementations.fused import FusedLSTM, fused_cell
from harness.implementations.params import ONE_LAYER, Shape

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead")
# torch.compile's modes: default; max-autotune-no-cudagraphs (autotuned GEMMs and kernels, much longer
# compiles); reduce-overhead (CUDA graphs under inductor: on CPU it is default's code)
BACKEND = "inductor"      # torch.compile's backend for every compiled case


@dataclass
class CompileStats:
    """What dynamo did for one model, from its counters around each of the model's calls."""

    calls: int = 0
    frames: int = 0            # frames dynamo compiled, all calls
    recompiles: int = 0        # of those, the ones compiled after the first call (a guard failed)
    graph_breaks: int = 0      # graph breaks dynamo reported, all calls

    @contextlib.contextmanager
    def counting(self):
        from torch._dynamo.utils import counters
        frames, breaks = counters["frames"]["total"], sum(counters["graph_break"].values())
        try:
            yield
        finally:
            new = counters["frames"]["total"] - frames
            self.frames += new
            self.recompiles += new if self.calls else 0
            self.graph_breaks += sum(counters["graph_break"].values()) - breaks
            self.calls += 1


def _cold():
    """Inductor without its on-disk caches: every compile is a cold one (module docstring)."""
    import torch._inductor.config as inductor_config
    return inductor_config.patch(force_disable_caches=True)


class _Dynamo(FusedLSTM):
    compiler = BACKEND

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, mode: str = "default"):
        super().__init__(input_size, hidden_size, shape)
        if mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile_mode {mode!r}; allowed: {', '.join(COMPILE_MODES)}")
        self.compile_mode = mode
        self.compile_stats = CompileStats()
        torch._dynamo.reset()                       # a cold start: no graph an earlier model left

    def _compiled(self, fn):
        return torch.compile(fn, backend=BACKEND, mode=None if self.compile_mode == "default" else self.compile_mode)

    def run(self, x, state, lengths):
        with self.compile_stats.counting(), _cold():
            return self._loop(self, x, state, lengths)


class CompiledLSTM(_Dynamo):
    """compiled-lstm: fused.fused_cell under torch.compile; the loop over T in Python."""

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, mode: str = "default"):
        super().__init__(input_size, hidden_size, shape, mode)
        self.cell_step = self._compiled(fused_cell)
        self._loop = FusedLSTM.run                  # eager: only the cell is compiled


class CompiledLoopLSTM(_Dynamo):
    """compiled-loop-lstm: the whole forward (FusedLSTM.run) under torch.compile, unrolled over T."""

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, mode: str = "default"):
        super().__init__(input_size, hidden_size, shape, mode)
        self._loop = self._compiled(FusedLSTM.run)


def torchscript_missing() -> str | None:
    """Why this torch has no TorchScript, or None."""
    script = getattr(getattr(torch, "jit", None), "script", None)
    return None if callable(script) else f"torch {torch.__version__} has no TorchScript (torch.jit.script)"


class ScriptedLSTM(FusedLSTM):
    """scripted-lstm: fused.fused_cell under torch.jit.script (fastrnns' jit_premul)."""

    compiler = "torchscript"

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__(input_size, hidden_size, shape)
        if reason := torchscript_missing():
            raise Skip(reason)
        self.cell_step = torch.jit.script(fused_cell)


class _Eager(torch.nn.Module):
    """cudagraph-lstm's eager forward as a module whose parameters are its owner's (make_graphed_callables
    graphs a module's parameters' gradients too); held in a list, so the owner does not own it twice."""

    def __init__(self, owner: FusedLSTM):
        super().__init__()
        self._owner = [owner]

    def parameters(self, recurse: bool = True):
        return self._owner[0].parameters(recurse)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, (hn, cn) = FusedLSTM.run(self._owner[0], x, (h, c), None)
        return y, hn, cn


class CudaGraphLSTM(FusedLSTM):
    """cudagraph-lstm: fused-lstm's forward and backward captured once per shape and grad mode, replayed."""

    compiler = "cudagraph"

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__(input_size, hidden_size, shape)
        self._graphs: dict[tuple, object] = {}      # (x shape, dtype, device, grad enabled) -> graphed callable

    def run(self, x, state, lengths):
        if x.device.type != "cuda":
            raise Skip("cudagraph-lstm runs on cuda only")
        if torch.is_autocast_enabled("cuda"):
            raise Skip("cudagraph-lstm takes no autocast: make_graphed_callables needs autocast's weight cache off, "
                       "which would slow every other implementation's loop")
        h, c = state
        grad = torch.is_grad_enabled()
        key = (tuple(x.shape), x.dtype, x.device, grad, x.requires_grad, h.requires_grad, c.requires_grad)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x, h, c, grad)
        y, hn, cn = self._graphs[key](x, h, c)
        return y, (hn, cn)

    def _capture(self, x: Tensor, h: Tensor, c: Tensor, grad: bool):
        eager = _Eager(self)                                                 # h, c: (1, B, H)
        if grad:                       # the sample inputs need the real ones' requires_grad: dx is graphed or not
            sample = tuple(a.detach().clone().requires_grad_(a.requires_grad) for a in (x, h, c))
            return torch.cuda.make_graphed_callables(eager, sample)
        static = [x.clone(), h.clone(), c.clone()]
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):                                        # warm-up off the capture stream
            for _ in range(CAPTURE_WARMUP):
                eager(*static)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = eager(*static)

        def replay(*args: Tensor):
            for s, a in zip(static, args, strict=True):
                s.copy_(a)
            graph.replay()
            return out
        return replay


CAPTURE_WARMUP = 3      # eager calls on a side stream before a capture, as torch.cuda.graphs' docs advise
