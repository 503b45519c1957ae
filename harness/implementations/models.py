"""The recurrent implementations under test.

Every model here is a `Recurrent`: built from (input_size, hidden_size) and the stack's shape
(layers L, bidirectional: D = 2 directions, else 1; proj_size P, LSTM only; dropout between
layers), called as

    y, state = model(x, state=None, lengths=None)

with **time-major** tensors (the tutorial's `for x in X` and nn.LSTM's default), nn.LSTM's shapes:

    x        (T, B, I)
    lengths  (B,) int64, each sequence's own length, or None: all T (see harness/implementations/lengths.py)
    y        (T, B, D*Q)      the top layer's output at every step, Q = P if proj_size else H
    state    LSTM: (h, c), h (L*D, B, Q), c (L*D, B, H);  RNN and GRU: (h,), (L*D, B, H)

`state=None` means zeros. Row k = l*D + d of a state is layer l's direction d (d=1: reverse).

All models of one cell type hold the same *canonical* parameters, nn.LSTM's own names and
layout for every layer and direction (harness/implementations/params.py).

Backends (oneDNN, cuDNN, native ATen) are not chosen here: they are contexts entered around
`forward` (see harness/implementations/registry.py). Neither is the variable-length mode: `lengths_mode`,
nor the library of the scratch models' own GEMMs: `gemm` (gemm.py).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.implementations import lengths as varlen
from harness.implementations.gemm import ATEN, Gemm
from harness.implementations.params import (
    CANONICAL,
    DIRECTIONS,
    GATES,
    INITS,
    NONLINEARITIES,
    ONE_LAYER,
    PROJECTION,
    Shape,
    canonical_params,
    param_shapes,
)

__all__ = ["CANONICAL", "DIRECTIONS", "GATES", "INITS", "NONLINEARITIES", "ONE_LAYER", "PROJECTION", "LayerParams",
           "Recurrent", "Shape", "canonical_params", "param_count", "param_shapes"]
State = tuple[Tensor, ...]


class LayerParams(NamedTuple):
    """One layer and direction's parameters, as a layer kernel takes them."""
    w_ih: Tensor        # (G*H, I_l)
    w_hh: Tensor | None  # (G*H, Q), or None for a cell with no recurrent matrix (params.NO_RECURRENT)
    b_ih: Tensor        # (G*H,)
    b_hh: Tensor | None  # (G*H,), or None as w_hh
    w_hr: Tensor | None  # (P, H), or None without a projection


class Recurrent(nn.Module):
    """The one interface every implementation shares (see the module docstring)."""

    cell: str = "lstm"

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__()
        self.input_size, self.hidden_size, self.shape = input_size, hidden_size, Shape(*shape)
        self.backend: Callable[[], ContextManager] = contextlib.nullcontext  # set by the registry
        self.lengths_mode: str | None = "packed"   # how forward(x, lengths=...) runs (lengths.MODES); None: it
        # takes no lengths (onednn-lstm and the dummy unless created padded); set by the registry
        # When a list, the scratch models append every step's state to it, with
        # retain_grad(), so dL/dh_t and dL/dc_t can be read after backward (one layer only).
        self.trace: list[State] | None = None
        # When True (while profiling), the scratch models label every time step for the profiler.
        self.label_steps = False

    @property
    def output_size(self) -> int:
        """Q: the width of each direction's output and of h (proj_size where there is one)."""
        return self.shape.proj_size or self.hidden_size

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
        return dict(self.named_parameters())

    @torch.no_grad()
    def load_canonical(self, params: dict[str, Tensor]) -> Recurrent:
        mine = self.canonical()
        if set(mine) != set(params):
            raise ValueError(f"canonical parameters differ: model {sorted(mine)}, given {sorted(params)}")
        for name, p in mine.items():
            p.copy_(params[name])
        return self

    def zero_state(self, batch: int) -> State:
        p = next(self.parameters())
        rows = self.shape.layers * self.shape.directions
        z = dict(device=p.device, dtype=p.dtype)
        h = torch.zeros(rows, batch, self.output_size, **z)                     # (L*D, B, Q)
        return (h, torch.zeros(rows, batch, self.hidden_size, **z)) if self.cell == "lstm" else (h,)

    # -- running ---------------------------------------------------------------
    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
                ) -> tuple[Tensor, State]:
        if state is None:
            state = self.zero_state(x.shape[1])
        if lengths is not None and self.lengths_mode is None:
            raise ValueError(f"{type(self).__name__} has no packed mode: create it with lengths_mode='padded' "
                             "to run a variable-length batch over its padding")
        if self.lengths_mode == "padded":
            lengths = None                # run every step over the padding; only the loss is masked
        with self.backend():
            return self.run(x, tuple(state), lengths)

    def run(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:  # pragma: no cover
        raise NotImplementedError


class _CanonicalParams(Recurrent):
    """A from-scratch model: it stores the canonical parameters itself, and runs the stack --
    layers, directions, dropout between layers, variable lengths -- around its own one-layer,
    one-direction kernel, `layer`."""

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__(input_size, hidden_size, shape)
        for name, s in param_shapes(self.cell, input_size, hidden_size, self.shape).items():
            self.register_parameter(name, nn.Parameter(torch.empty(s)))
        self.gemm: Gemm = ATEN       # the library of its matrix products (gemm.py; set by the registry)

    def params_of(self, layer: int, direction: int) -> LayerParams:
        s = f"_l{layer}{DIRECTIONS[direction]}"
        return LayerParams(*(getattr(self, f"{n}{s}", None) for n in CANONICAL),   # None: a min cell's hh
                           getattr(self, f"{PROJECTION}{s}", None))

    def run(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        T, B, _ = x.shape
        vl = None if lengths is None else varlen.Batch.make(lengths, T, self.lengths_mode, x.device)
        if vl is not None and vl.order is not None:                          # packed: longest first
            x, state = x.index_select(1, vl.order), tuple(s.index_select(1, vl.order) for s in state)
        D = self.shape.directions
        finals: list[list[Tensor]] = [[] for _ in state]
        for layer in range(self.shape.layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                xin = x if d == 0 else varlen.reverse(x, vl)               # run back from each sequence's end
                y, final = self.layer(xin, tuple(s[k] for s in state), self.params_of(layer, d), vl)
                outs.append(y if d == 0 else varlen.reverse(y, vl))       # (T, B, Q)
                for f, s in zip(finals, final, strict=True):
                    f.append(s)
            x = outs[0] if D == 1 else torch.cat(outs, 2)                    # (T, B, D*Q)
            if self.shape.dropout and self.training and layer < self.shape.layers - 1:
                x = F.dropout(x, self.shape.dropout, training=True)        # nn.LSTM's: between layers
        out = tuple(torch.stack(f) for f in finals)                          # (L*D, B, Q) and (L*D, B, H)
        if vl is not None and vl.order is not None:
            x, out = x.index_select(1, vl.inverse), tuple(s.index_select(1, vl.inverse) for s in out)
        return x, out

    def layer(self, x: Tensor, state: State, p: LayerParams, vl: varlen.Batch | None
              ) -> tuple[Tensor, State]:  # pragma: no cover
        """One layer, one direction, forwards in time: y (T, B, Q) and the final state, each (B, .)."""
        raise NotImplementedError

    @staticmethod
    def advance(vl: varlen.Batch | None, t: int, new: State, old: State) -> tuple[State, Tensor]:
        """The state after step t and that step's output, from the rows the step ran (`new`,
        the first n rows when packed) and the state before it (`old`, every row):
        packed: finished rows keep their state, outputs there are zero; masked: a mask freezes
        the state of a finished sequence and zeroes its output."""
        h = new[0]
        if vl is None:
            return new, h
        if vl.mode == "masked":
            m = vl.step_mask[t]                                              # (B, 1)
            return tuple(torch.where(m, n, o) for n, o in zip(new, old, strict=True)), h.masked_fill(~m, 0.0)
        n, B = h.shape[0], old[0].shape[0]
        if n == B:
            return new, h
        return (tuple(torch.cat([a, o[n:]]) for a, o in zip(new, old, strict=True)),
                F.pad(h, (0, 0, 0, B - n)))


class ScratchLSTM(_CanonicalParams):
    """The tutorial's LSTM: twelve named parameters, eight torch.mm per step (the gemm library's mm),
    a Python loop over time (per layer and direction).

    The tutorial's names are views of the canonical parameters (see
    `tutorial_params`), so autograd puts their gradients on the canonical
    tensors. nn.LSTM has two biases per gate where the tutorial has one:
    `b_i` is the input bias (bias_ih's i block) and `b_hi` the recurrent one
    (bias_hh's i block); the tutorial's initialisation makes the second zero.
    With proj_size, h_t = (o * tanh(c_t)) W_hr^T, nn.LSTM's LSTMP.
    """

    cell = "lstm"

    def tutorial_params(self, layer: int = 0, direction: int = 0) -> dict[str, Tensor]:
        """W_x* (I, H), W_h* (Q, H), b_* and b_h* (H,), as views: gates i, f, c (g), o."""
        return self.named_views(self.params_of(layer, direction))

    def layer(self, x, state, p, vl):
        w = self.named_views(p)
        mm = self.gemm.mm
        H, C = state
        B = x.shape[1]
        outputs = []
        for t, xt in enumerate(x):  # xt: (B, I)
            with self._label(t):
                Hp, Cp = H, C
                if vl is not None and (n := vl.active(t, B)) < B:          # packed: the running rows only
                    xt, Hp, Cp = xt[:n], H[:n], C[:n]
                I = torch.sigmoid(mm(xt, w["W_xi"]) + w["b_i"] + mm(Hp, w["W_hi"]) + w["b_hi"])
                F_ = torch.sigmoid(mm(xt, w["W_xf"]) + w["b_f"] + mm(Hp, w["W_hf"]) + w["b_hf"])
                O = torch.sigmoid(mm(xt, w["W_xo"]) + w["b_o"] + mm(Hp, w["W_ho"]) + w["b_ho"])
                C_tilde = torch.tanh(mm(xt, w["W_xc"]) + w["b_c"] + mm(Hp, w["W_hc"]) + w["b_hc"])
                Cn = F_ * Cp + I * C_tilde
                Hn = O * torch.tanh(Cn)
                if p.w_hr is not None:
                    Hn = mm(Hn, p.w_hr.t())                                      # (n, P)
                (H, C), out = self.advance(vl, t, (Hn, Cn), (H, C))
            self._record(H, C)
            outputs.append(out)
        return torch.stack(outputs), (H, C)  # (T, B, Q)

    def named_views(self, p: LayerParams) -> dict[str, Tensor]:
        H = self.hidden_size
        out = {}
        for k, gate in enumerate("ifco"):  # canonical order i, f, g (= the tutorial's c), o
            rows = slice(k * H, (k + 1) * H)
            out |= {f"W_x{gate}": p.w_ih[rows].t(), f"W_h{gate}": p.w_hh[rows].t(), f"b_{gate}": p.b_ih[rows],
                    f"b_h{gate}": p.b_hh[rows]}
        return out


class ScratchRNN(_CanonicalParams):
    """A tanh (or relu, or linear: the exact oracle of gradient decay) RNN from scratch, in the tutorial's style:
    H = tanh(x W_xh + b + H W_hh + b_h), two torch.mm per step (the gemm library's), a Python loop over time."""

    cell = "rnn"

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size, shape)
        self.nonlinearity = nonlinearity
        self.act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda z: z}[nonlinearity]

    def layer(self, x, state, p, vl):
        (H,) = state
        B = x.shape[1]
        mm = self.gemm.mm
        W_xh, W_hh = p.w_ih.t(), p.w_hh.t()                                  # (I, H), (H, H)
        outputs = []
        for t, xt in enumerate(x):
            with self._label(t):
                Hp = H
                if vl is not None and (n := vl.active(t, B)) < B:          # packed: the running rows only
                    xt, Hp = xt[:n], H[:n]
                Hn = self.act(mm(xt, W_xh) + p.b_ih + mm(Hp, W_hh) + p.b_hh)
                (H,), out = self.advance(vl, t, (Hn,), (H,))
            self._record(H)
            outputs.append(out)
        return torch.stack(outputs), (H,)


class TorchRecurrent(Recurrent):
    """nn.LSTM, nn.RNN (tanh) or nn.GRU behind the common interface, with the stack's shape as
    nn.*'s own arguments and variable lengths as a PackedSequence. Which kernels run (native
    ATen, oneDNN, cuDNN) is the backend context's choice."""

    _modules_by_cell = {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, cell: str = "lstm",
                 nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size, shape)
        self.cell = cell
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        if self.shape.proj_size:
            extra["proj_size"] = self.shape.proj_size
        self.rnn = self._modules_by_cell[cell](input_size, hidden_size, num_layers=self.shape.layers,
                                               bidirectional=self.shape.bidirectional, dropout=self.shape.dropout,
                                               **extra)

    def canonical(self) -> dict[str, Tensor]:
        return dict(self.rnn.named_parameters())

    def run(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        hx = state if self.cell == "lstm" else state[0]
        if lengths is None:
            y, out = self.rnn(x, hx)
        else:                                                                # packed: the only mode nn.* has
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            y, out = self.rnn(packed, hx)
            y, _ = pad_packed_sequence(y, total_length=x.shape[0])           # (T, B, D*Q), zeros at padding
        return y, out if isinstance(out, tuple) else (out,)


class DummyLSTM(_CanonicalParams):
    """Registered exactly like a real implementation, so tests can exercise the
    plumbing in milliseconds. Not an LSTM: y_t = tanh(x_t W_i^T), no recurrence.
    One layer, one direction (the registry skips the rest).

    Fault injection, for the harness's own tests: LSTM_BENCH_DUMMY_FAULT makes
    every forward of the dummy `oom` (raise the CPU allocator's out-of-memory
    error), `error` (raise ValueError) or `sleep:SECONDS` (sleep first).
    """

    cell = "lstm"          # the canonical LSTM parameters, of which it uses weight_ih's first block

    def run(self, x, state, lengths=None):
        fault = os.environ.get("LSTM_BENCH_DUMMY_FAULT", "")
        if fault == "oom":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes")
        if fault == "error":
            raise ValueError("injected fault")
        if fault.startswith("sleep:"):
            time.sleep(float(fault.split(":", 1)[1]))
        y = torch.tanh(x @ self.weight_ih_l0[: self.hidden_size].t())        # (T, B, H)
        return y, (y[-1:], y[-1:])


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
