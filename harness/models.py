"""The recurrent implementations under test.

Every model here is a `Recurrent`: built from (input_size, hidden_size,
device, dtype, seed), called as

    y, state = model(x, state=None)

with **time-major** tensors (the tutorial's `for x in X` and nn.LSTM's
default):

    x      (T, B, I)
    y      (T, B, H)   hidden state of every step
    state  LSTM: (h, c), each (B, H);  RNN and GRU: (h,), shape (B, H)

One layer, unidirectional. `state=None` means zeros.

All models of one cell type hold the same *canonical* parameters, in
nn.LSTM's layout and gate order (i, f, g, o for LSTM; r, z, n for GRU):

    weight_ih  (G*H, I)     weight_hh  (G*H, H)
    bias_ih    (G*H,)       bias_hh    (G*H,)

with G = 4 (LSTM), 3 (GRU), 1 (RNN). `canonical_params()` draws them from a
seed on the CPU in float64, so one seed gives the same function on every
implementation, device and dtype.

Backends (oneDNN, cuDNN, native ATen) are not chosen here: they are contexts
entered around `forward` (see harness/registry.py).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch
from torch import Tensor, nn

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # G: gate blocks per cell type
CANONICAL = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
INITS = ("pytorch", "seed", "d2l", "orthogonal")
NONLINEARITIES = ("tanh", "relu")  # RNN cells only
# pytorch:    nn's default, every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
# seed:       the tutorial's: weights ~ N(0, 0.1^2), biases zero
# d2l:        weights ~ N(0, 0.01^2), biases zero
# orthogonal: pytorch's input weights and biases, each recurrent (H, H)
#             gate block an orthogonal matrix

State = tuple[Tensor, ...]


def canonical_params(cell: str, input_size: int, hidden_size: int, seed: int = 0,
                     init: str = "pytorch") -> dict[str, Tensor]:
    """Draw the canonical parameters on the CPU in float64, from `seed` alone."""
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}; allowed: {', '.join(GATES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
    G, H, I = GATES[cell], hidden_size, input_size
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=gen)
    shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, H), "bias_ih": (G * H,), "bias_hh": (G * H,)}
    if init in ("pytorch", "orthogonal"):
        k = 1.0 / math.sqrt(H)
        p = {n: torch.rand(s, **f64) * (2 * k) - k for n, s in shapes.items()}
        if init == "orthogonal":
            blocks = []
            for _ in range(G):
                q, r = torch.linalg.qr(torch.randn(H, H, **f64))
                blocks.append(q * torch.sign(torch.diagonal(r)))  # Haar-distributed
            p["weight_hh"] = torch.cat(blocks, 0)
        return p
    std = 0.1 if init == "seed" else 0.01
    return {n: (torch.randn(s, **f64) * std if n.startswith("weight") else torch.zeros(s, dtype=torch.float64))
            for n, s in shapes.items()}


class Recurrent(nn.Module):
    """The one interface every implementation shares (see the module docstring)."""

    cell: str = "lstm"

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.backend: Callable[[], ContextManager] = contextlib.nullcontext  # set by the registry
        # When a list, the scratch models append every step's state to it, with
        # retain_grad(), so dL/dh_t and dL/dc_t can be read after backward.
        self.trace: list[State] | None = None
        # When True (while profiling), the scratch models label every time step for the profiler.
        self.label_steps = False

    def _label(self, t: int):
        return torch.profiler.record_function(f"step {t}") if self.label_steps else contextlib.nullcontext()

    def _record(self, *state: Tensor) -> None:
        if self.trace is not None:
            for s in state:
                if s.requires_grad:
                    s.retain_grad()
            self.trace.append(state)

    # -- parameters in the canonical layout ---------------------------------
    def canonical(self) -> dict[str, Tensor]:
        """The live parameters, by canonical name (gradients land on these)."""
        return {n: getattr(self, n) for n in CANONICAL}

    @torch.no_grad()
    def load_canonical(self, params: dict[str, Tensor]) -> Recurrent:
        for name, p in self.canonical().items():
            p.copy_(params[name])
        return self

    def zero_state(self, batch: int) -> State:
        p = next(self.parameters())
        z = torch.zeros(batch, self.hidden_size, device=p.device, dtype=p.dtype)
        return (z, z.clone()) if self.cell == "lstm" else (z,)

    # -- running ---------------------------------------------------------------
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.zero_state(x.shape[1])
        with self.backend():
            return self.run(x, tuple(state))

    def run(self, x: Tensor, state: State) -> tuple[Tensor, State]:  # pragma: no cover
        raise NotImplementedError


class _CanonicalParams(Recurrent):
    """A from-scratch model that stores the canonical parameters itself."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        G, H, I = GATES[self.cell], hidden_size, input_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, I))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H))
        self.bias_hh = nn.Parameter(torch.empty(G * H))


class ScratchLSTM(_CanonicalParams):
    """The tutorial's LSTM: twelve named parameters, eight torch.mm per step,
    a Python loop over time.

    The tutorial's names are views of the canonical parameters (see
    `tutorial_params`), so autograd puts their gradients on the canonical
    tensors. nn.LSTM has two biases per gate where the tutorial has one:
    `b_i` is the input bias (bias_ih's i block) and `b_hi` the recurrent one
    (bias_hh's i block); the tutorial's initialisation makes the second zero.
    """

    cell = "lstm"

    def tutorial_params(self) -> dict[str, Tensor]:
        """W_x* (I, H), W_h* (H, H), b_* and b_h* (H,), as views: gates i, f, c (g), o."""
        H = self.hidden_size
        out = {}
        for k, gate in enumerate("ifco"):  # canonical order i, f, g (= the tutorial's c), o
            rows = slice(k * H, (k + 1) * H)
            out[f"W_x{gate}"] = self.weight_ih[rows].t()
            out[f"W_h{gate}"] = self.weight_hh[rows].t()
            out[f"b_{gate}"] = self.bias_ih[rows]
            out[f"b_h{gate}"] = self.bias_hh[rows]
        return out

    def run(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        p = self.tutorial_params()
        H, C = state
        outputs = []
        for t, xt in enumerate(x):  # xt: (B, I)
            with self._label(t):
                I = torch.sigmoid(torch.mm(xt, p["W_xi"]) + p["b_i"] + torch.mm(H, p["W_hi"]) + p["b_hi"])
                F = torch.sigmoid(torch.mm(xt, p["W_xf"]) + p["b_f"] + torch.mm(H, p["W_hf"]) + p["b_hf"])
                O = torch.sigmoid(torch.mm(xt, p["W_xo"]) + p["b_o"] + torch.mm(H, p["W_ho"]) + p["b_ho"])
                C_tilde = torch.tanh(torch.mm(xt, p["W_xc"]) + p["b_c"] + torch.mm(H, p["W_hc"]) + p["b_hc"])
                C = F * C + I * C_tilde
                H = O * torch.tanh(C)
            self._record(H, C)
            outputs.append(H)
        return torch.stack(outputs), (H, C)  # (T, B, H)


class FusedLSTM(_CanonicalParams):
    """From scratch, optimised: the input projection of all T steps is one GEMM
    before the loop, split per step with unbind (indexing xw[t] would make the
    backward O(T^2)); one (B, H) x (H, 4H) GEMM per step; gates by chunk."""

    cell = "lstm"

    def run(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        T, B, I = x.shape
        h, c = state
        bias = self.bias_ih + self.bias_hh                                   # (4H,)
        xw = torch.addmm(bias, x.reshape(T * B, I), self.weight_ih.t())      # (T*B, 4H)
        w_hh = self.weight_hh.t()                                            # (H, 4H)
        outputs = []
        for t, xw_t in enumerate(xw.view(T, B, -1).unbind(0)):               # (B, 4H) each
            with self._label(t):
                gates = torch.addmm(xw_t, h, w_hh)                           # (B, 4H)
                i, f, g, o = gates.chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            self._record(h, c)
            outputs.append(h)
        return torch.stack(outputs), (h, c)                                  # (T, B, H)


class ScratchRNN(_CanonicalParams):
    """A tanh (or relu) RNN from scratch, in the tutorial's style:
    H = tanh(x W_xh + b + H W_hh + b_h), two torch.mm per step, a Python loop over time."""

    cell = "rnn"

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[nonlinearity]

    def run(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        (H,) = state
        W_xh, W_hh = self.weight_ih.t(), self.weight_hh.t()                  # (I, H), (H, H)
        outputs = []
        for t, xt in enumerate(x):
            with self._label(t):
                H = self.act(torch.mm(xt, W_xh) + self.bias_ih + torch.mm(H, W_hh) + self.bias_hh)
            self._record(H)
            outputs.append(H)
        return torch.stack(outputs), (H,)


class TorchRecurrent(Recurrent):
    """nn.LSTM, nn.RNN (tanh) or nn.GRU behind the common interface. Which
    kernels run (native ATen, oneDNN, cuDNN) is the backend context's choice."""

    _modules_by_cell = {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}

    def __init__(self, input_size: int, hidden_size: int, cell: str = "lstm", nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size)
        self.cell = cell
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = self._modules_by_cell[cell](input_size, hidden_size, **extra)

    def canonical(self) -> dict[str, Tensor]:
        return {n: getattr(self.rnn, f"{n}_l0") for n in CANONICAL}

    def run(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        hx = tuple(s.unsqueeze(0) for s in state)                            # (1, B, H) each
        y, out = self.rnn(x, hx if self.cell == "lstm" else hx[0])
        out = out if isinstance(out, tuple) else (out,)
        return y, tuple(s.squeeze(0) for s in out)


class DummyLSTM(_CanonicalParams):
    """Registered exactly like a real implementation, so tests can exercise the
    plumbing in milliseconds. Not an LSTM: y_t = tanh(x_t W_i^T), no recurrence.

    Fault injection, for the harness's own tests: LSTM_BENCH_DUMMY_FAULT makes
    every forward of the dummy `oom` (raise the CPU allocator's out-of-memory
    error), `error` (raise ValueError) or `sleep:SECONDS` (sleep first).
    """

    cell = "lstm"          # the canonical LSTM parameters, of which it uses weight_ih's first block

    def run(self, x, state):
        fault = os.environ.get("LSTM_BENCH_DUMMY_FAULT", "")
        if fault == "oom":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes")
        if fault == "error":
            raise ValueError("injected fault")
        if fault.startswith("sleep:"):
            time.sleep(float(fault.split(":", 1)[1]))
        y = torch.tanh(x @ self.weight_ih[: self.hidden_size].t())           # (T, B, H)
        return y, (y[-1], y[-1])


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
