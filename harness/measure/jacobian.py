"""Inside the network while it learns: the one-step Jacobian along the sequence, and the forget gate.

At the start, middle and end of a [[task]]'s training (tasks.checkpoints), for a one-layer model
(any implementation: every one holds the canonical parameters), on the first PROBE_BATCH
sequences of the held-out set, in float64 on the CPU, the recurrence is replayed one step at a
time from the model's own parameters:

    s_t = step(x_t, s_{t-1})       s = h (RNN), or (h, c) (LSTM)

and at POINTS steps t, evenly spaced from the first to the last, it records (dynamics.csv, columns.DYNAMICS_COLUMNS):

- jacobian_norm: the largest singular value of J_t = ds_t/ds_{t-1}, the one-step Jacobian,
  for each sequence, by power iteration on J_t^T J_t (until its eigen-residual is below
  POWER_TOL, at most POWER_ITERS steps) with autograd's
  vector-Jacobian products (torch.autograd.grad; J v as the derivative of J^T u in u);
  the mean over the sequences. The gradient that reaches t from far ahead is a product of
  these Jacobians, so a norm held near 1 is what lets it travel. For an LSTM the state is
  (h, c): the cell is the path the LSTM's gradient takes, and dh_t/dh_{t-1} alone leaves it out.
- forget_mean, forget_open: LSTM only, the forget gate's mean over sequences and units at t,
  and the fraction of its values above OPEN_GATE (0.9). Blank for an RNN. For a min cell, its a gate (minLSTM's
  f' = f / (f + i), minGRU's 1 - z), which is its whole one-step Jacobian: diag(a_t).

A stack (layers > 1) gets no rows: the replay is of one layer.
"""
from __future__ import annotations

import torch
from torch import Tensor

from harness.implementations import minrnn
from harness.implementations.params import GATES, NO_RECURRENT

POWER_ITERS = 1000      # power-iteration steps per t at most; it stops once every sequence's residual
POWER_TOL = 1e-7        # ||J^T J v - lambda v|| is below this, relative to lambda (a step-to-step change
                        # is no test: with close top singular values it is small long before convergence)
PROBE_BATCH = 16        # held-out sequences the dynamics are averaged over
OPEN_GATE = 0.9         # a forget gate above this counts as open (keeping the cell)
POWER_SEED = 7          # the start vectors of the power iteration
POINTS = 10             # steps t measured along a sequence, evenly spaced, the first and last included


def _step(cell: str, p: dict[str, Tensor], nonlinearity: str):
    """(x_t, s_{t-1}) -> (s_t, forget gate or None), s the flat state (B, H) or (B, 2H)."""
    if cell in NO_RECURRENT:                                    # h_t = a_t h_{t-1} + b_t: J_t = diag(a_t)
        def step(x, s):
            a, b_ = minrnn.coefficients(cell, x @ p["weight_ih_l0"].t() + p["bias_ih_l0"])
            return a * s + b_, a
        return step, p["weight_ih_l0"].shape[0] // GATES[cell]
    W_ih, W_hh = p["weight_ih_l0"], p["weight_hh_l0"]          # (G*H, I), (G*H, H)
    b = p["bias_ih_l0"] + p["bias_hh_l0"]                       # (G*H,)
    H = W_hh.shape[1]
    if cell == "lstm":
        def step(x, s):
            h, c = s[:, :H], s[:, H:]
            z = x @ W_ih.t() + h @ W_hh.t() + b                 # (B, 4H), gates i, f, g, o
            i, f, g, o = z.chunk(4, dim=1)
            f = torch.sigmoid(f)
            c = f * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.cat([torch.sigmoid(o) * torch.tanh(c), c], dim=1), f
        return step, 2 * H
    act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda v: v}[nonlinearity]

    def step(x, s):
        return act(x @ W_ih.t() + s @ W_hh.t() + b), None
    return step, H


def top_singular_values(f, s: Tensor, iters: int = POWER_ITERS, seed: int = POWER_SEED) -> Tensor:
    """The largest singular value of each row's Jacobian of f at s (f maps (B, S) -> (B, S) row by row,
    so its Jacobian is block-diagonal): power iteration on J^T J, one row per sequence. J^T u is one
    vector-Jacobian product (autograd.grad); J v is the derivative in u of <J^T u, v>, a second one."""
    with torch.enable_grad():
        s = s.detach().requires_grad_(True)
        out = f(s)
        u = torch.zeros_like(out, requires_grad=True)
        (jt_u,) = torch.autograd.grad(out, s, u, create_graph=True)          # J^T u, linear in u

        def jvp(v):
            return torch.autograd.grad(jt_u, u, v, retain_graph=True)[0]

        def vjp(w):
            return torch.autograd.grad(out, s, w, retain_graph=True)[0]

        v = torch.randn(s.shape, generator=torch.Generator().manual_seed(seed), dtype=s.dtype)
        v = v / v.norm(dim=1, keepdim=True)
        tiny = torch.finfo(s.dtype).tiny
        for _ in range(iters):
            w = vjp(jvp(v))                                                    # J^T J v
            lam = (v * w).sum(dim=1, keepdim=True)                             # Rayleigh quotient, ~ sigma^2
            residual = (w - lam * v).norm(dim=1, keepdim=True)
            if torch.all(residual <= POWER_TOL * lam.abs()):   # an eigenvalue of J^T J lies within the residual
                break
            n = w.norm(dim=1, keepdim=True)
            v = torch.where(n > 0, w / n.clamp_min(tiny), v)
        return jvp(v).norm(dim=1).detach()                  # ||J v||: sigma_max at the top singular vector


def rows(core, x: Tensor, nonlinearity: str, base: dict) -> list[dict]:
    """One row per step t of the probe batch x (T, B, I): jacobian_norm, and the forget gate's for LSTMs."""
    if core.shape.layers != 1:
        return []
    cell = core.cell
    p = {k: v.detach().to("cpu", torch.float64) for k, v in core.canonical().items()}
    step, width = _step(cell, p, nonlinearity)
    x = x[:, :PROBE_BATCH].detach().to("cpu", torch.float64)   # (T, B, I)
    s = torch.zeros(x.shape[1], width, dtype=torch.float64)    # the zero initial state
    T = x.shape[0]
    measured = {round(1 + k * (T - 1) / (POINTS - 1)) for k in range(POINTS)} if T > POINTS else set(range(1, T + 1))
    out = []
    for t, xt in enumerate(x, start=1):
        if t not in measured:
            s, _ = step(xt, s)
            continue
        if cell in NO_RECURRENT:                            # J_t = diag(a_t): its largest singular value is max a_t
            s, f = step(xt, s)
            sigma = f.abs().amax(dim=1)
        else:
            sigma = top_singular_values(lambda state, xt=xt: step(xt, state)[0], s)
            s, f = step(xt, s)
        out.append({**base, "t": t, "jacobian_norm": sigma.mean().item(),
                    "forget_mean": f.mean().item() if f is not None else "",
                    "forget_open": (f > OPEN_GATE).double().mean().item() if f is not None else ""})
    return out
