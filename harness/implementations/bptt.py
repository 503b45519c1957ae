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

With a projection (h_t = m_t W_hr^T, m_t = o * tanh(c_t)) or a variable-length
batch, the general path runs in the usual layout: one more GEMM per step each
way (dm_t = dh_t W_hr) and dW_hr = dh^T m in one GEMM; packed, step t runs the
first batch_sizes[t] rows of the length-sorted batch, and a sequence's final-
state gradient enters at its own last step. Layers and directions are the
stack's (models._CanonicalParams): this is one layer, one direction. Every
product, forwards and backwards, goes through the model's gemm library
(gemm.py: aten's torch.mm, or oneDNN's matmul).
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from harness.implementations import lengths as varlen
from harness.implementations.gemm import ATEN, Gemm, cast
from harness.implementations.models import ONE_LAYER, LayerParams, Shape, _CanonicalParams


def _order(H: int, device) -> Tensor:
    """Row indices that reorder canonical gates (i, f, g, o) into the internal (o, i, f, g):
    the three sigmoid gates contiguous, and in backward the three gates scaled by dc contiguous."""
    return torch.cat([torch.arange(3 * H, 4 * H), torch.arange(0, 3 * H)]).to(device)


TRANSPOSED_MIN_BATCH = 16
# Below this batch size the recurrence runs in the usual layout, above it transposed.
# Measured on the 2-core CPU (H=256): the per-step GEMM W_hh @ h with h as (H, B) takes
# 197 us at B=8 against 73 us for h @ W_hh^T with h as (B, H), but 140 us against 182 us
# at B=32 (and 915 against 1097 at B=64, H=512).


class LSTMFunction(torch.autograd.Function):
    """Inputs and outputs in the common layout (x (T, B, I), states (B, H)). Inside, one
    of two layouts, chosen by batch size (TRANSPOSED_MIN_BATCH) or by `transposed`:

    - transposed (large B): gates (T, 4H, B), states (T, H, B); each step's GEMM is
      W_hh (4H, H) @ h (H, B) and every gate block is one dense (H, B) slab. The
      gate gradients are written as (4H, T, B): already the (4H, T*B) left operand
      of the weight-gradient GEMMs.
    - usual (small B): gates (T, B, 4H), states (T, B, H); h (B, H) @ W_hh^T. The
      gate gradients (T, B, 4H) are already (T*B, 4H).

    Neither needs a transposing copy of the gate gradients. `g_dim` below is the gate
    axis of one step's (4H, B) or (B, 4H) slab.
    """

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                w_hr: Tensor | None = None, transposed: bool | None = None, order: Tensor | None = None,
                vl: varlen.Batch | None = None, gemm: Gemm = ATEN):
        T, B, I = x.shape
        H = c0.shape[1]
        if order is None:                 # BPTTLSTM passes its own, on its device: no copy per forward
            order = _order(H, x.device)
        ctx.general, ctx.gemm = w_hr is not None or vl is not None, gemm
        if ctx.general:
            return _forward_general(ctx, x, h0, c0, w_ih, w_hh, bias, w_hr, order, vl)
        tr = B >= TRANSPOSED_MIN_BATCH if transposed is None else transposed
        g_dim = 0 if tr else 1
        w_ih_o, w_hh_o, b_o = w_ih[order], w_hh[order], bias[order]              # rows o, i, f, g
        if tr:
            gates = gemm.left_batched(w_ih_o, x)                                  # (T, 4H, B): all inputs at once
            gates.add_(b_o.view(1, 4 * H, 1))
            cs = torch.empty(T, H, B, dtype=x.dtype, device=x.device)
            h, c = h0.t(), c0.t()                                                 # (H, B)
        else:
            gates = gemm.addmm(b_o, x.reshape(T * B, I), w_ih_o.t()).view(T, B, 4 * H)   # (T, B, 4H)
            cs = torch.empty(T, B, H, dtype=x.dtype, device=x.device)
            h, c = h0, c0                                                         # (B, H)
        tcs = torch.empty_like(cs)                                                # tanh(c)
        hs = torch.empty_like(cs)
        for t in range(T):
            a = gates[t]                                                          # one step, activated in place
            if tr:
                gemm.addmm_(a, w_hh_o, h)
            else:
                gemm.addmm_(a, h, w_hh_o.t())
            a.narrow(g_dim, 0, 3 * H).sigmoid_()
            a.narrow(g_dim, 3 * H, H).tanh_()
            o, i, f, g = (a.narrow(g_dim, k * H, H) for k in range(4))
            torch.mul(f, c, out=cs[t])
            cs[t].addcmul_(i, g)
            torch.tanh(cs[t], out=tcs[t])
            torch.mul(o, tcs[t], out=hs[t])
            h, c = hs[t], cs[t]
        y = hs.transpose(1, 2).contiguous() if tr else hs                         # (T, B, H)
        del hs
        ctx.transposed = tr
        ctx.save_for_backward(x, h0, c0, w_ih_o, w_hh_o, order, gates, cs, tcs, y)
        c_last = cs[-1].t().contiguous() if tr else cs[-1].clone()
        return y, y[-1].clone(), c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, dh_last: Tensor, dc_last: Tensor):
        if ctx.general:
            return _backward_general(ctx, dy, dh_last, dc_last)
        x, h0, c0, w_ih_o, w_hh_o, order, gates, cs, tcs, y = ctx.saved_tensors
        mm, addmm = ctx.gemm.mm, ctx.gemm.addmm
        tr = ctx.transposed
        g_dim = 0 if tr else 1
        T, B, I = x.shape
        H = h0.shape[1]
        ifg, o_dtc, tc_do, f = _factors(gates, cs, tcs, c0.t() if tr else c0, H, g_dim + 1)
        dys = dy.transpose(1, 2) if tr else dy                                    # per step (H, B) or (B, H)
        da = torch.empty((4 * H, T, B) if tr else (T, B, 4 * H), dtype=x.dtype, device=x.device)
        dc = torch.empty_like(cs[0])
        dc.copy_(dc_last.t() if tr else dc_last)                                  # our own buffer, updated in place
        dh = (dh_last.t() if tr else dh_last) + dys[T - 1]
        three = (3, H, B) if tr else (B, 3, H)
        for t in range(T - 1, -1, -1):
            da_t = da[:, t] if tr else da[t]                                      # (4H, B) or (B, 4H)
            dc.addcmul_(dh, o_dtc[t])
            torch.mul(dh, tc_do[t], out=da_t.narrow(g_dim, 0, H))
            torch.mul(dc.unsqueeze(g_dim), ifg[t].view(three), out=da_t.narrow(g_dim, H, 3 * H).view(three))
            dc.mul_(f[t])
            if tr:                                                                # the one GEMM per step
                dh = addmm(dys[t - 1], w_hh_o.t(), da_t) if t > 0 else mm(w_hh_o.t(), da_t)
            else:
                dh = addmm(dys[t - 1], da_t, w_hh_o) if t > 0 else mm(da_t, w_hh_o)
        del ifg, o_dtc, tc_do, f
        # weight gradients: single GEMMs over all T*B rows; dg is (T*B, 4H) in both layouts
        dg_rows = da.view(4 * H, T * B).t() if tr else da.view(T * B, 4 * H)
        inverse = torch.argsort(order)                                            # back to i, f, g, o
        need = ctx.needs_input_grad
        dx = mm(dg_rows, w_ih_o).view(T, B, I) if need[0] else None
        dw_ih = mm(dg_rows.t(), x.reshape(T * B, I))[inverse] if need[3] else None
        if need[4]:
            h_prev = torch.cat([h0.unsqueeze(0), y[:-1]]).view(T * B, H)
            dw_hh = mm(dg_rows.t(), h_prev)[inverse]
        else:
            dw_hh = None
        db = dg_rows.sum(0)[inverse] if need[5] else None
        dh0 = dh.t() if tr else dh
        dc0 = dc.t() if tr else dc
        return dx, dh0, dc0, dw_ih, dw_hh, db, None, None, None, None, None


def _factors(gates: Tensor, cs: Tensor, tcs: Tensor, c0: Tensor, H: int, axis: int = 2) -> tuple[Tensor, ...]:
    """The backward's step-independent factors, for every step at once, with the gates along `axis`
    of (T, 4H, B) or (T, B, 4H) and c0 in the same layout: ifg = [g i(1-i), c_{t-1} f(1-f), i(1-g^2)],
    gate-stacked (da_{i,f,g} = dc * ifg), o(1 - tanh(c)^2) (dc += dh * it), tanh(c) o(1-o) (da_o = dh * it),
    and f."""
    o, i, f, g = (gates.narrow(axis, k * H, H) for k in range(4))            # (T, H, B) or (T, B, H)
    shape = list(gates.shape)
    shape[axis] = 3 * H
    ifg = torch.empty(shape, dtype=cs.dtype, device=cs.device)
    di, df, dg = (ifg.narrow(axis, k * H, H) for k in range(3))
    torch.addcmul(i, i, i, value=-1, out=di).mul_(g)
    torch.addcmul(f, f, f, value=-1, out=df)
    df[1:].mul_(cs[:-1])
    df[0].mul_(c0)
    torch.mul(g, g, out=dg).mul_(i)
    torch.sub(i, dg, out=dg)
    o_dtc = torch.mul(tcs, tcs).mul_(o)
    torch.sub(o, o_dtc, out=o_dtc)
    tc_do = torch.addcmul(o, o, o, value=-1).mul_(tcs)
    return ifg, o_dtc, tc_do, f.contiguous()


def _forward_general(ctx, x, h0, c0, w_ih, w_hh, bias, w_hr, order, vl):
    """The usual layout, with a projection (h_t = m_t W_hr^T, m_t = o * tanh(c_t)) and variable
    lengths: packed runs the first batch_sizes[t] rows of the length-sorted batch at step t;
    masked runs every row every step and takes each sequence's final state at its own last step
    (time runs forwards, so the steps after it cannot change it) and zeroes its outputs there."""
    T, B, I = x.shape
    H, Q = c0.shape[1], h0.shape[1]
    gemm = ctx.gemm
    w_ih_o, w_hh_o, b_o = w_ih[order], w_hh[order], bias[order]
    gates = gemm.addmm(b_o, x.reshape(T * B, I), w_ih_o.t()).view(T, B, 4 * H)       # (T, B, 4H)
    packed = vl is not None and vl.batch_sizes is not None
    new = functools.partial(torch.zeros if packed else torch.empty, dtype=x.dtype, device=x.device)
    cs, tcs, hs = new(T, B, H), new(T, B, H), new(T, B, Q)
    ms = new(T, B, H) if w_hr is not None else None                                  # o * tanh(c)
    h, c = h0, c0
    for t in range(T):
        n = B if vl is None else vl.active(t, B)
        a = gates[t, :n]                                                              # (n, 4H), in place
        gemm.addmm_(a, h[:n], w_hh_o.t())
        a[:, :3 * H].sigmoid_()
        a[:, 3 * H:].tanh_()
        o, i, f, g = (a[:, k * H:(k + 1) * H] for k in range(4))
        ct = cs[t, :n]
        torch.mul(f, c[:n], out=ct)
        ct.addcmul_(i, g)
        torch.tanh(ct, out=tcs[t, :n])
        if w_hr is not None:
            torch.mul(o, tcs[t, :n], out=ms[t, :n])
            gemm.mm_out(ms[t, :n], w_hr.t(), hs[t, :n])
        else:
            torch.mul(o, tcs[t, :n], out=hs[t, :n])
        h, c = hs[t], cs[t]
    ctx.vl = vl
    ctx.save_for_backward(x, h0, c0, w_ih_o, w_hh_o, w_hr, order, gates, cs, tcs, hs, ms)
    if vl is None:
        return hs, hs[-1].clone(), cs[-1].clone()
    last, rows = (vl.lengths - 1).to(x.device), torch.arange(B, device=x.device)
    y = hs if packed else hs.masked_fill(~vl.step_mask, 0.0)
    return y, hs[last, rows], cs[last, rows]


def _backward_general(ctx, dy, dh_last, dc_last):
    x, h0, c0, w_ih_o, w_hh_o, w_hr, order, gates, cs, tcs, hs, ms = ctx.saved_tensors
    vl, mm = ctx.vl, ctx.gemm.mm
    T, B, I = x.shape
    H, Q = c0.shape[1], h0.shape[1]
    ifg, o_dtc, tc_do, f = _factors(gates, cs, tcs, c0, H)
    z = dict(dtype=x.dtype, device=x.device)
    packed = vl is not None and vl.batch_sizes is not None
    da = (torch.zeros if packed else torch.empty)(T, B, 4 * H, **z)                 # rows not run stay zero
    dhs = torch.zeros(T, B, Q, **z) if w_hr is not None else None                   # dL/dh_t, for dW_hr
    if vl is None:
        dh, dc, ends = dh_last.clone(), dc_last.clone(), None
    else:
        dy = dy.masked_fill(~vl.step_mask, 0.0)                                     # padding is no output
        dh, dc = torch.zeros(B, Q, **z), torch.zeros(B, H, **z)
        ends = (vl.lengths - 1 == torch.arange(T).unsqueeze(1)).unsqueeze(2).to(**z)  # (T, B, 1): t is b's last
    for t in range(T - 1, -1, -1):
        n = B if vl is None else vl.active(t, B)
        if ends is not None:                  # a sequence's final state is its state at its own last step
            dh.addcmul_(ends[t], dh_last)
            dc.addcmul_(ends[t], dc_last)
        dh_t, dc_t, da_t = dh[:n], dc[:n], da[t, :n]
        dh_t.add_(dy[t, :n])
        if w_hr is not None:
            dhs[t, :n] = dh_t
            dm = mm(dh_t, w_hr)                                                      # (n, H): dL/dm_t
        else:
            dm = dh_t
        dc_t.addcmul_(dm, o_dtc[t, :n])
        torch.mul(dm, tc_do[t, :n], out=da_t[:, :H])
        torch.mul(dc_t.unsqueeze(1), ifg[t, :n].view(n, 3, H), out=da_t[:, H:].view(n, 3, H))
        dc_t.mul_(f[t, :n])
        ctx.gemm.mm_out(da_t, w_hh_o, dh_t)                                          # the one GEMM back
    need = ctx.needs_input_grad
    rows = da.view(T * B, 4 * H)
    inverse = torch.argsort(order)
    dx = mm(rows, w_ih_o).view(T, B, I) if need[0] else None
    dw_ih = mm(rows.t(), x.reshape(T * B, I))[inverse] if need[3] else None
    dw_hh = mm(rows.t(), torch.cat([h0.unsqueeze(0), hs[:-1]]).view(T * B, Q))[inverse] if need[4] else None
    db = rows.sum(0)[inverse] if need[5] else None
    dw_hr = mm(dhs.view(T * B, Q).t(), ms.view(T * B, H)) if w_hr is not None and need[6] else None
    return dx, dh, dc, dw_ih, dw_hh, db, dw_hr, None, None, None, None


class BPTTLSTM(_CanonicalParams):
    """From scratch with an explicit backward (LSTMFunction); same parameters as the others.

    The gate order (_order) is a buffer, made once: it moves with the model to its device,
    so no forward copies it from the host inside the timed region."""

    cell = "lstm"
    transposed: bool | None = None     # None: by batch size (TRANSPOSED_MIN_BATCH); True/False: force a layout

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER):
        super().__init__(input_size, hidden_size, shape)
        self.register_buffer("gate_order", _order(hidden_size, "cpu"), persistent=False)    # (4H,) int64

    def layer(self, x: Tensor, state, p: LayerParams, vl) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h0, c0 = state
        bias = p.b_ih + p.b_hh                                                    # autograd splits db to both
        lib, kind = self.gemm, x.device.type
        if torch.is_autocast_enabled(kind):        # autocast cannot see into the Function: it casts as autocast
            lib = cast(lib, torch.get_autocast_dtype(kind))   # would, every product both ways, and runs the
        with torch.autocast(kind, enabled=False):  # rest in the parameters' dtype
            y, h, c = LSTMFunction.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), p.w_ih, p.w_hh, bias,
                                         p.w_hr, self.transposed, self.gate_order, vl, lib)
        return y, (h, c)
