"""bptt-lstm: a from-scratch LSTM with its own backward pass (explicit BPTT).

Forward, per step t (gates in the canonical order i, f, g, o):

    a_t = xw_t + h_{t-1} W_hh^T          xw = x W_ih^T + b, one GEMM for all T
    i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g;         h_t = o * tanh(c_t)

It saves the activated gates (4 T*B*H numbers), c, tanh(c) and h (the output):
7 T*B*H in all, where autograd through fused-lstm keeps about 12. Its peak is
nonetheless higher (about 1.5x fused-lstm's, measured): the backward holds the
precomputed factors (5 T*B*H) and the gate gradients (4 T*B*H) beside them.

Backward walks time once, from T down to 1, with one GEMM per step for the
hidden-state gradient:

    dh_t += dy_t;   dc_t += dh_t * o * (1 - tanh(c_t)^2)
    da_{i,f,g} = dc_t * [g*i(1-i), c_{t-1}*f(1-f), i*(1-g^2)]
    da_o = dh_t * tanh(c_t) * o(1-o)
    dc_{t-1} = dc_t * f;   dh_{t-1} = dy_{t-1} + da_t W_hh        (the GEMM)

The factors in brackets depend only on the forward's values, so they are
computed for all steps at once before the loop; each step is then five
kernels. The weight gradients are single large GEMMs over all steps, as cuDNN
and oneDNN do: dW_ih = da^T x, dW_hh = da^T h_{t-1}, db = sum da, and
dx = da W_ih.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from harness.models import _CanonicalParams


def _order(H: int, device) -> Tensor:
    """Row indices that reorder canonical gates (i, f, g, o) into the internal (o, i, f, g):
    the three sigmoid gates contiguous, and in backward the three gates scaled by dc contiguous."""
    return torch.cat([torch.arange(3 * H, 4 * H), torch.arange(0, 3 * H)]).to(device)


class LSTMFunction(torch.autograd.Function):
    """Inputs and outputs in the common layout; inside, the recurrence runs transposed.

    - Forward keeps gates as (T, 4H, B) and states as (T, H, B): each step's GEMM
      is W_hh (4H, H) @ h_{t-1} (H, B), which runs faster here than h @ W_hh^T,
      and every gate block of a step is one dense (H, B) slab.
    - Backward writes the gate gradients as (4H, T, B), which is already the left
      operand (4H, T*B) of the weight-gradient GEMMs: no transposing copies.
    """

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor):
        T, B, I = x.shape
        H = h0.shape[1]
        order = _order(H, x.device)
        w_ih_o, w_hh_o, b_o = w_ih[order], w_hh[order], bias[order]              # rows o, i, f, g
        gates = torch.matmul(w_ih_o, x.transpose(1, 2))                           # (T, 4H, B): all inputs at once
        gates.add_(b_o.view(1, 4 * H, 1))
        cs = torch.empty(T, H, B, dtype=x.dtype, device=x.device)
        tcs = torch.empty_like(cs)                                                # tanh(c)
        hs = torch.empty_like(cs)
        h, c = h0.t(), c0.t()                                                     # (H, B)
        for t in range(T):
            a = gates[t]                                                          # (4H, B), activated in place
            a.addmm_(w_hh_o, h)
            a[: 3 * H].sigmoid_()
            a[3 * H:].tanh_()
            o, i, f, g = a[:H], a[H: 2 * H], a[2 * H: 3 * H], a[3 * H:]
            torch.mul(f, c, out=cs[t])
            cs[t].addcmul_(i, g)
            torch.tanh(cs[t], out=tcs[t])
            torch.mul(o, tcs[t], out=hs[t])
            h, c = hs[t], cs[t]
        y = hs.transpose(1, 2).contiguous()                                       # (T, B, H)
        del hs
        ctx.save_for_backward(x, h0, c0, w_ih_o, w_hh_o, order, gates, cs, tcs, y)
        return y, y[-1].clone(), cs[-1].t().contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, dh_last: Tensor, dc_last: Tensor):
        x, h0, c0, w_ih_o, w_hh_o, order, gates, cs, tcs, y = ctx.saved_tensors
        T, B, I = x.shape
        H = h0.shape[1]
        o, i, f, g = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H: 3 * H], gates[:, 3 * H:]   # (T, H, B)
        # step-independent factors, for every step at once, into one buffer:
        #   ifg = [g i(1-i), c_{t-1} f(1-f), i(1-g^2)]  (T, 3H, B): da_{i,f,g} = dc * ifg
        ifg = torch.empty(T, 3 * H, B, dtype=x.dtype, device=x.device)
        di, df, dg = ifg[:, :H], ifg[:, H: 2 * H], ifg[:, 2 * H:]
        torch.addcmul(i, i, i, value=-1, out=di).mul_(g)
        torch.addcmul(f, f, f, value=-1, out=df)
        df[1:].mul_(cs[:-1])
        df[0].mul_(c0.t())
        torch.mul(g, g, out=dg).mul_(i)
        torch.sub(i, dg, out=dg)
        o_dtc = torch.mul(tcs, tcs).mul_(o)                                       # dc += dh * o (1 - tanh(c)^2)
        torch.sub(o, o_dtc, out=o_dtc)
        tc_do = torch.addcmul(o, o, o, value=-1).mul_(tcs)                        # da_o = dh * tanh(c) o (1 - o)
        f = f.contiguous()
        dyT = dy.transpose(1, 2)                                                  # (T, H, B) view
        da = torch.empty(4 * H, T, B, dtype=x.dtype, device=x.device)             # pre-activation, rows o, i, f, g
        dc = dc_last.t().contiguous()
        dh = dh_last.t() + dyT[T - 1]
        w_hh_o_t = w_hh_o.t()                                                     # (H, 4H)
        for t in range(T - 1, -1, -1):
            dc.addcmul_(dh, o_dtc[t])
            torch.mul(dh, tc_do[t], out=da[:H, t])
            torch.mul(dc.unsqueeze(0), ifg[t].view(3, H, B), out=da[H:, t].view(3, H, B))
            dc.mul_(f[t])
            if t > 0:
                dh = torch.addmm(dyT[t - 1], w_hh_o_t, da[:, t])                  # (H, B): the one GEMM per step
            else:
                dh = torch.mm(w_hh_o_t, da[:, t])
        del ifg, o_dtc, tc_do, f
        da2 = da.view(4 * H, T * B)
        inverse = torch.argsort(order)                                            # back to i, f, g, o
        need = ctx.needs_input_grad
        dx = torch.mm(da2.t(), w_ih_o).view(T, B, I) if need[0] else None
        dw_ih = torch.mm(da2, x.reshape(T * B, I))[inverse] if need[3] else None
        if need[4]:
            h_prev = torch.cat([h0.unsqueeze(0), y[:-1]]).view(T * B, H)
            dw_hh = torch.mm(da2, h_prev)[inverse]
        else:
            dw_hh = None
        db = da2.sum(1)[inverse] if need[5] else None
        return dx, dh.t(), dc.t(), dw_ih, dw_hh, db


class BPTTLSTM(_CanonicalParams):
    """From scratch with an explicit backward (LSTMFunction); same parameters as the others."""

    cell = "lstm"

    def run(self, x: Tensor, state) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h0, c0 = state
        bias = self.bias_ih + self.bias_hh                                        # autograd splits db to both
        y, h, c = LSTMFunction.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), self.weight_ih,
                                     self.weight_hh, bias)
        return y, (h, c)
