"""fused-lstm: the LSTM from scratch, optimised, and its analytic peak memory.

    xw = x W_ih^T + b_ih + b_hh            one GEMM for the input projection of every step
    gates_t = xw_t + h_{t-1} W_hh^T         one (B, Q) x (Q, 4H) GEMM per step, chunked i, f, g, o

`fused_cell` is one step on plain tensors, so torch.compile and TorchScript take it as it is
(compiled.py); `train_peak_bytes` is what its train step should hold at its peak, which the
memory figure draws beside the measured peak.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

from harness.implementations.models import _CanonicalParams
from harness.implementations.params import ONE_LAYER, Shape


def lstm_gates(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The new (h, c) from one step's pre-activations gates (n, 4H), chunked i, f, g, o, and c (n, H)."""
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def fused_cell(xw_t: Tensor, h: Tensor, c: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
    """fused-lstm's step: gates = xw_t + h W_hh^T (n, 4H) in one GEMM, chunked i, f, g, o; the new (h, c)
    before any projection. xw_t (n, 4H) holds x_t W_ih^T + both biases; h (n, Q), c (n, H), w_hh (Q, 4H).
    Plain tensors in and out, so torch.compile and TorchScript take it as it is (compiled.py)."""
    return lstm_gates(torch.addmm(xw_t, h, w_hh), c)                        # gates (n, 4H)


class FusedLSTM(_CanonicalParams):
    """From scratch, optimised: the input projection of all T steps is one GEMM
    before the loop (over the real steps only, when packed), split per step with unbind
    (indexing xw[t] would make the backward O(T^2)); one (B, Q) x (Q, 4H) GEMM per step;
    gates by chunk (`fused_cell`, which compiled-lstm and scripted-lstm replace by its compiled form)."""

    cell = "lstm"

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__(input_size, hidden_size, shape)
        self.cell_step: Callable[..., tuple[Tensor, Tensor]] = fused_cell   # aten's; compiled.py's compile it

    def _step(self) -> Callable[..., tuple[Tensor, Tensor]]:
        """fused_cell with the model's gemm library: its own (compiled) cell_step on aten."""
        if self.gemm.name == "aten":
            return self.cell_step
        addmm = self.gemm.addmm
        return lambda xw_t, h, c, w_hh: lstm_gates(addmm(xw_t, h, w_hh), c)

    def layer(self, x, state, p, vl):
        T, B, I = x.shape
        h, c = state
        addmm, step = self.gemm.addmm, self._step()
        bias = p.b_ih + p.b_hh                                               # (4H,)
        if vl is not None and vl.batch_sizes is not None:                    # packed: real steps only
            rows = pack_padded_sequence(x, vl.lengths, enforce_sorted=True).data         # (sum n_t, I)
            xws = addmm(bias, rows, p.w_ih.t()).split(vl.batch_sizes)                    # (n_t, 4H) each
        else:
            xws = addmm(bias, x.reshape(T * B, I), p.w_ih.t()).view(T, B, -1).unbind(0)  # (B, 4H) each
        w_hh = p.w_hh.t()                                                    # (Q, 4H)
        outputs = []
        for t, xw_t in enumerate(xws):
            with self._label(t):
                n = xw_t.shape[0]
                hp, cp = (h, c) if n == B else (h[:n], c[:n])                # packed: the running rows only
                hn, cn = step(xw_t, hp, cp, w_hh)                            # (n, H) each
                if p.w_hr is not None:
                    hn = self.gemm.mm(hn, p.w_hr.t())                        # (n, P)
                (h, c), out = self.advance(vl, t, (hn, cn), (h, c))
            self._record(h, c)
            outputs.append(out)
        return torch.stack(outputs), (h, c)                                  # (T, B, Q)


def train_peak_bytes(batch: int, seq_len: int, hidden: int, itemsize: int, layers: int = 1) -> int:
    """Analytic peak of fused-lstm's train step (one direction), in bytes.

    Forward keeps, for backward, per layer and step: sigmoid(i), sigmoid(f), tanh(g),
    sigmoid(o), c, tanh(c) and h -- 7 (B, H) tensors -- and the layer's stacked output
    (T, B, H): 8 * T * B * H elements per layer. The input projection xw (T, B, 4H) lives
    only while its layer's loop runs, so the forward's end holds the last layer's too:
    (8 * layers + 4) * T * B * H elements. The backward frees activations as it goes,
    so the forward's end is the peak.
    """
    return (8 * layers + 4) * seq_len * batch * hidden * itemsize
