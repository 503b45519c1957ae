"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201), scan and loop.

Their gates read x_t alone, never h_{t-1}, so the recurrence is linear in h with coefficients known in
advance, h_t = a_t * h_{t-1} + b_t, and a whole sequence can be computed at once by a parallel scan:

    minGRU   z_t = sigmoid(k_z),  h~_t = g(k_h)               a_t = 1 - z_t,  b_t = z_t * h~_t
    minLSTM  f_t = sigmoid(k_f),  i_t = sigmoid(k_i),  h~_t = g(k_h)
             f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)  a_t = f'_t,    b_t = i'_t * h~_t

with k = x_t W_ih^T + b_ih chunked by gate (canonical order z, h~ for minGRU; i, f, h~ for minLSTM, so
that the forget gate's rows are H:2H as in nn.LSTM and forget_bias lands on them), and g the paper's
positive activation: g(v) = v + 1/2 for v >= 0, sigmoid(v) below. There is no weight_hh and no bias_hh
(params.NO_RECURRENT). Both modes compute the one function:

    scan  (mingru-scan, minlstm-scan) one GEMM for every step's gates, then the scan in log space, as
          the paper's appendix does: log a and log b from softplus terms (log f' = -softplus(d),
          log i' = -softplus(-d), d = softplus(-k_f) - softplus(-k_i); log g from its two branches), and

              a*_t = sum_{s<=t} log a_s,    h_t = exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)) + exp(a*_t) h_0

          h_0 enters as its own term, so a zero (or negative) initial state needs no log of it and gives no NaN.
          The sums run over blocks of SCAN_CHUNK steps at once, and a block's end state carries to the next:
          over the whole sequence a*_T grows like 0.7 T, and a float32 sum of that size loses its last digits
          (at T = 4096 the one-block form is 1.7e-4 off float64, beyond float32's tolerance; in blocks of 64,
          3e-6). A lower precision's scan runs in float32 (SCAN_FLOOR), as an LSTM kernel keeps its cell.
          Its backward is a scan too, backwards in time (_Scan), so that a gradient far from the loss keeps its
          relative precision: autograd through logcumsumexp loses it below about eps of the near gradient.
    loop  (mingru-loop, minlstm-loop) token by token, as inference runs: one (B, I) x (I, G*H) GEMM per step,
          the gates in linear space, h_t = a_t * h_{t-1} + b_t.

Variable lengths (masked): a finished sequence's step has a = 1 and b = 0 (f' = 1, i' = 0; z = 0), so its state
holds; its output is zero. `kept_bytes` is what each mode's train forward keeps for its backward, counted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.implementations.models import _CanonicalParams
from harness.implementations.params import ONE_LAYER, Shape

SCAN_CHUNK = 64          # steps per block of the scan's log-space sums (see the module docstring)
NEG = -1.0e4             # log b of a step that adds nothing: exp(NEG) = 0, and finite, so no NaN in a gradient
SCAN_FLOOR = torch.float32   # the scan's arithmetic dtype at least (bfloat16's 8 bits lose a block's sum)
GATE_NAMES = {"mingru": ("z", "h~"), "minlstm": ("i", "f", "h~")}   # canonical order of weight_ih's blocks


def g(v: Tensor) -> Tensor:
    """The paper's positive activation: v + 1/2 for v >= 0, sigmoid(v) below. Continuous at 0, but its slope jumps
    there (1 above, 1/4 below): a pre-activation within rounding of 0 takes the other branch's slope in float32. At
    B16 H256 T = 4096 (16.8M h~ elements) one of them did, and the weight gradient was 3.6e-4 off float64, scan and
    loop alike (run 20261205T220341Z): beyond float32's tolerance, and the error pass says so."""
    return torch.where(v >= 0, F.relu(v) + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """log g(v), each branch finite everywhere so that torch.where's gradient has no NaN in it."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def log_coefficients(cell: str, k: Tensor) -> tuple[Tensor, Tensor]:
    """(log a, log b), each (..., H), from the gates' pre-activations k (..., G*H)."""
    if cell == "mingru":
        kz, kh = k.chunk(2, -1)
        return -F.softplus(kz), -F.softplus(-kz) + log_g(kh)              # log(1 - z), log z + log g
    ki, kf, kh = k.chunk(3, -1)
    d = F.softplus(-kf) - F.softplus(-ki)                                  # log i - log f
    return -F.softplus(d), -F.softplus(-d) + log_g(kh)                     # log f', log i' + log g


def coefficients(cell: str, k: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b), each (..., H), in linear space, from k (..., G*H): the loop's form."""
    if cell == "mingru":
        kz, kh = k.chunk(2, -1)
        z = torch.sigmoid(kz)
        return 1 - z, z * g(kh)
    ki, kf, kh = k.chunk(3, -1)
    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
    total = f + i                                                          # once: the backward keeps it
    return f / total, i / total * g(kh)


def blocks(seq_len: int, chunk: int = SCAN_CHUNK) -> tuple[int, int]:
    """(n, C): the fewest blocks of at most `chunk` steps that cover seq_len, and their equal length C (the last
    block padded to it): T = 100 runs as 2 blocks of 50, not 2 of 64."""
    n = -(-seq_len // chunk)
    return n, -(-seq_len // n)


def blocked_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = SCAN_CHUNK) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for t = 1..T, every t at once: log_a, log_b (T, B, H), h0 (B, H) -> (T, B, H).
    Blocks of at most `chunk` steps (`blocks`; the last padded with a = 1, b = 0) are scanned at once; each block's
    end state then enters the next (T / chunk elementwise steps)."""
    T, B, H = log_a.shape
    n, chunk = blocks(T, chunk)
    pad = (0, 0, 0, 0, 0, n * chunk - T)
    la = F.pad(log_a, pad).view(n, chunk, B, H)
    lb = F.pad(log_b, pad, value=NEG).view(n, chunk, B, H)
    a_star = la.cumsum(1)                                                  # (n, C, B, H): log of a's product
    local = torch.exp(a_star + torch.logcumsumexp(lb - a_star, 1))         # (n, C, B, H): each block from zero
    decay = torch.exp(a_star)                                              # (n, C, B, H): from the block's start
    starts, h = [], h0
    for k in range(n):                                                     # the state entering each block
        starts.append(h)
        h = local[k, -1] + decay[k, -1] * h
    out = local + decay * torch.stack(starts).unsqueeze(1)                 # (n, C, B, H)
    return out.view(n * chunk, B, H)[:T]


def _log_parts(g: Tensor) -> tuple[Tensor, Tensor]:
    """log of g's positive part and of its negative part's magnitude, NEG where a part is zero."""
    pos, neg = g.clamp_min(0), (-g).clamp_min(0)
    return (torch.where(pos > 0, pos.log(), NEG), torch.where(neg > 0, neg.log(), NEG))


class _Scan(torch.autograd.Function):
    """blocked_scan with its own backward, itself a scan: the adjoint G_t = dL/dh_t of h_t = a_t h_{t-1} + b_t runs
    backwards in time, G_t = grad_t + a_{t+1} G_{t+1}, a linear recurrence of the same form (its input split into
    positive and negative parts, each scanned in log space). Then dL/dlog b_t = G_t b_t, dL/dlog a_t = G_t a_t h_{t-1}
    and dL/dh_0 = a_1 G_1: products, so a gradient far from the loss keeps its relative precision. Autograd through
    the log-space ops would get it as a difference of terms near the loss's own size (logcumsumexp's backward): an
    absolute floor near eps, which in float32 flattens the gradient's decay beyond about 25 steps."""

    @staticmethod
    def forward(ctx, log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int) -> Tensor:
        h = blocked_scan(log_a, log_b, h0, chunk)
        ctx.save_for_backward(log_a, log_b, h0, h)
        ctx.chunk = chunk
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        log_a, log_b, h0, h = ctx.saved_tensors
        # reversed time u = T-1-t: G~_u = grad~_u + a_{t+1} G~_{u-1}, so the coefficient at u is log a_{T-u}
        la = torch.cat([torch.zeros_like(log_a[:1]), log_a.flip(0)[:-1]])   # (T, B, H)
        pos, neg = _log_parts(grad.flip(0))
        zero = torch.zeros_like(h0)
        G = (blocked_scan(la, pos, zero, ctx.chunk) - blocked_scan(la, neg, zero, ctx.chunk)).flip(0)   # dL/dh_t
        before = torch.cat([h0.unsqueeze(0), h[:-1]])                      # h_{t-1}: (T, B, H)
        a = torch.exp(log_a)
        return G * a * before, G * torch.exp(log_b), a[0] * G[0], None


def scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = SCAN_CHUNK) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for t = 1..T, every t at once (blocked_scan), differentiable by _Scan's backward:
    log_a, log_b (T, B, H), h0 (B, H) -> (T, B, H)."""
    return _Scan.apply(log_a, log_b, h0, chunk)


class _MinRecurrent(_CanonicalParams):
    """The stack (layers, directions, masked lengths) around a one-layer minGRU or minLSTM kernel."""

    def _gates(self, x: Tensor, p) -> Tensor:
        """k = x W_ih^T + b_ih for x (N, I): (N, G*H), through the model's GEMM library."""
        return self.gemm.addmm(p.b_ih, x, p.w_ih.t())


class MinScan(_MinRecurrent):
    """Every step at once: one GEMM for the gates of all T steps, then the log-space scan (`scan`)."""

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, cell: str = "mingru"):
        self.cell = cell
        super().__init__(input_size, hidden_size, shape)
        self.scan_chunk = SCAN_CHUNK

    def layer(self, x, state, p, vl):
        T, B, I = x.shape
        (h0,) = state
        k = self._gates(x.reshape(T * B, I), p).view(T, B, -1)               # (T, B, G*H)
        work = torch.promote_types(k.dtype, SCAN_FLOOR)
        log_a, log_b = log_coefficients(self.cell, k.to(work))               # (T, B, H) each
        if vl is not None:                                                   # masked: a = 1, b = 0 once done
            log_a, log_b = log_a.masked_fill(~vl.step_mask, 0.0), log_b.masked_fill(~vl.step_mask, NEG)
        h = scan(log_a, log_b, h0.to(work), self.scan_chunk).to(k.dtype)    # (T, B, H)
        y = h if vl is None else h.masked_fill(~vl.step_mask, 0.0)
        return y, (h[-1],)


class MinLoop(_MinRecurrent):
    """Token by token: per step, one (B, I) x (I, G*H) GEMM for the gates and h_t = a_t h_{t-1} + b_t."""

    def __init__(self, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER, cell: str = "mingru"):
        self.cell = cell
        super().__init__(input_size, hidden_size, shape)

    def layer(self, x, state, p, vl):
        (h,) = state
        outputs = []
        for t, xt in enumerate(x):                                           # xt: (B, I)
            with self._label(t):
                a, b = coefficients(self.cell, self._gates(xt, p))           # (B, H) each
                (h,), out = self.advance(vl, t, (a * h + b,), (h,))
            self._record(h)
            outputs.append(out)
        return torch.stack(outputs), (h,)                                    # (T, B, H)


KEPT = {("scan", "mingru"): (9, 1), ("scan", "minlstm"): (10, 1),      # (float, bool) tensors of (T, B, H) that
        ("loop", "mingru"): (6, 1), ("loop", "minlstm"): (9, 1)}        # a layer's forward keeps for its backward
# Counted op by op (tests/test_minrnn.py holds the count to autograd's saved tensors):
#   log g, both modes of it: relu(k_h) and relu + 1/2 (log's input), -k_h (softplus's input), and the bool v >= 0
#   scan, minGRU:  k (softplus(k_z) keeps a view of k: both its halves, 2), -k_z; log g's 3; the scan's log a, log b
#                  and its output h (_Scan's backward needs h_{t-1}): 2 + 1 + 3 + 3 = 9
#   scan, minLSTM: -k_f, -k_i, d, -d (each softplus's input; k itself is freed); log g's 3; the scan's 3: 10
#   loop, minGRU:  z (sigmoid's output), a = 1 - z, h_{t-1} (both of a * h's operands), relu(k_h) and
#                  sigmoid(k_h) (g's branches' outputs), g(k_h): 6
#   loop, minLSTM: f, i (sigmoid outputs), f + i (both quotients' divisor), f' and h_{t-1}, i' and g(k_h) (the
#                  products' operands), relu(k_h) and sigmoid(k_h): 9


def kept_bytes(mode: str, cell: str, batch: int, seq_len: int, hidden: int, itemsize: int) -> int:
    """What one layer and direction's train forward keeps for its backward (float32 or wider), in bytes: KEPT's
    tensors of (T, B, H), a bool one byte an element; besides them the input (the scan's output, which its backward
    keeps, is among them). The peak adds the backward's own working set (the report draws both)."""
    floats, bools = KEPT[(mode, cell)]
    per_step = (floats * itemsize + bools) * seq_len
    if mode == "scan":                  # its output is a view of whole blocks: T padded to n * C (blocks)
        n, C = blocks(seq_len)
        per_step += itemsize * (n * C - seq_len)
    return per_step * batch * hidden
