"""Gradient norms over distance, and their fitted decay.

The measurement. Inputs x (T, B, I) ~ N(0, 1) are leaves; the initial state is
zero. The loss depends on the last step only:

    L = (1/B) * sum_b <g, h_T[b]>        g: a fixed random unit vector in R^H

For every step t = 1..T we record ||dL/dx_t|| (the Frobenius norm over (B, I)),
at distance T - t from the loss. This works for fused kernels too, because the
inputs are leaves. For the scratch implementations (scratch-lstm, fused-lstm,
scratch-rnn, and the min cells' loops), whose per-step states are reachable, we also record ||dL/dh_t||
and, for LSTM, ||dL/dc_t|| -- total derivatives, through every later step. For a min cell (minGRU, minLSTM:
one layer, one direction) the rows with wrt = "gates" hold ||dL/dh_t|| in closed form from its gates
(closed_form), whatever the implementation: the measured x curve's decay is held against it.

A norm that is NaN or Inf, or that underflowed to exactly zero, is flagged in
`status` (nan | inf | underflow) and never used as a number.

The decay fit (decay.csv). Per configuration and seed, a least-squares line
through log(norm) against distance over the window 1 <= distance <= T-1 (the
direct term at distance 0 is left out), using ok points only and needing at
least 3 of them. The per-step decay factor is exp(slope): below 1 the gradient
shrinks with every step back, above 1 it grows. Across seeds we report the
mean factor and its 95% Student-t interval. `vanish_distance` is the first
distance at which the seed-averaged (geometric mean) norm falls below
VANISH_RATIO (1e-3) of its value at distance 0; when it never does, it is
empty and `vanishes_within_T` is false.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from harness.core import fits, intervals
from harness.core.fits import fit_decay, flag
from harness.core.thresholds import VANISH_RATIO
from harness.implementations import minrnn, registry
from harness.implementations.models import Recurrent
from harness.implementations.params import FORGET_CELLS, NO_RECURRENT
from harness.measure.timing import autocast_context

SCRATCH = ("scratch-lstm", "fused-lstm", "scratch-rnn", "mingru-loop", "minlstm-loop")   # per-step states reachable
CLOSED = "gates"      # wrt of a min cell's closed-form ||dL/dh_t|| (closed_form): the product of its a gates


def probe_vector(hidden: int, seed: int) -> Tensor:
    """The fixed random unit vector g of the loss, in float64 on the CPU."""
    g = torch.randn(hidden, generator=torch.Generator().manual_seed(10_000 + seed), dtype=torch.float64)
    return g / g.norm()


def probe_input(seq_len: int, batch: int, input_size: int, seed: int) -> Tensor:
    return torch.randn(seq_len, batch, input_size, generator=torch.Generator().manual_seed(20_000 + seed),
                       dtype=torch.float64)


def grad_norms(model: Recurrent, x: Tensor, g: Tensor, states: bool = False,
               cast: Callable[[], AbstractContextManager] = nullcontext) -> dict[str, list[float]]:
    """||dL/dx_t|| (and ||dL/dh_t||, ||dL/dc_t|| when `states`) for t = 1..T, L = mean_b <g, h_T>; the forward
    (and so the backward's GEMMs) under `cast`: torch.autocast, or nothing."""
    p = next(model.parameters())
    x = x.detach().to(device=p.device, dtype=p.dtype).requires_grad_(True)   # a leaf of its own, not the caller's
    model.trace = [] if states else None
    try:
        with cast():
            y, _ = model(x)
            loss = (y[-1].to(p.dtype) @ g.to(device=p.device, dtype=p.dtype)).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()
        out = {"x": [v.item() for v in x.grad.double().flatten(1).norm(dim=1)]}
        if states:
            names = ["h", "c"] if model.cell == "lstm" else ["h"]
            for k, name in enumerate(names):
                out[name] = [(s[k].grad.double().norm().item() if s[k].grad is not None else 0.0)
                             for s in model.trace]
    finally:
        model.trace = None
        model.zero_grad(set_to_none=True)
    return out


def closed_form(model: Recurrent, x: Tensor, g: Tensor) -> list[float]:
    """A min cell's ||dL/dh_t|| for t = 1..T in closed form, from its own parameters (layer 0) in float64 on the CPU.
    Its gates read x alone, so h_t reaches h_T only through h_{s} = a_s h_{s-1} + b_s, a diagonal product:

        dL/dh_t[b] = (1/B) g * prod_{s=t+1..T} a_s[b]       (a = f' for minLSTM, 1 - z for minGRU)

    and its norm over (B, H) is the curve the `gates` rows hold (gradients.csv's wrt = "gates")."""
    p = {k: v.detach().to("cpu", torch.float64) for k, v in model.canonical().items()}
    x = x.detach().to("cpu", torch.float64)                                   # (T, B, I)
    log_a, _ = minrnn.log_coefficients(model.cell, x @ p["weight_ih_l0"].t() + p["bias_ih_l0"])   # (T, B, H)
    after = log_a.flip(0).cumsum(0).flip(0) - log_a                           # sum over s > t of log a_s
    return [v.item() for v in (torch.exp(after) * g.to(torch.float64) / x.shape[1]).flatten(1).norm(dim=1)]


def vanish_distance(curves: list[list[float]]) -> int | None:
    """First distance where the geometric-mean curve is below VANISH_RATIO of its value at distance 0."""
    return fits.vanish_distance(curves, VANISH_RATIO)


def measure_curves(model_factory, seq_len: int, batch: int, input_size: int, hidden: int, seeds: list[int],
                   states: bool, cast: Callable[[], AbstractContextManager] = nullcontext
                   ) -> dict[int, dict[str, list[float]]]:
    """{seed: {wrt: norms by step}} with a fresh model, input and g per seed; a one-layer min cell's also hold
    the closed form (wrt CLOSED) from the same model, input and g."""
    out = {}
    for seed in seeds:
        model = model_factory(seed)
        x, g = probe_input(seq_len, batch, input_size, seed), probe_vector(hidden, seed)
        out[seed] = grad_norms(model, x, g, states=states, cast=cast)
        if model.cell in NO_RECURRENT and model.shape.layers == 1:
            out[seed][CLOSED] = closed_form(model, x, g)
    return out


def curve_rows(base: dict, seed: int, curves: dict[str, list[float]]) -> list[dict]:
    rows = []
    for wrt, norms in curves.items():
        T = len(norms)
        for t, v in enumerate(norms, start=1):
            status = flag(v)
            rows.append({**base, "seed": seed, "wrt": wrt, "step": t, "distance": T - t,
                         "grad_norm": v if status in ("ok", "underflow") else "", "status": status})
    return rows


def decay_rows(base: dict, by_seed: dict[int, dict[str, list[float]]]) -> list[dict]:
    rows = []
    wrts = next(iter(by_seed.values())).keys()
    for wrt in wrts:
        curves = [by_seed[s][wrt] for s in by_seed]
        T = len(curves[0])
        factors = [f for f, _ in (fit_decay(c) for c in curves) if f is not None]
        row = {**base, "wrt": wrt, "seeds": len(curves), "window_min": 1, "window_max": T - 1}
        if not factors:
            row.update(status="no_fit", reason="fewer than 3 finite, non-zero norms in the window", decay_factor="",
                       decay_ci_low="", decay_ci_high="")
        else:
            mean = sum(factors) / len(factors)
            if len(factors) > 1:
                sd = math.sqrt(sum((f - mean) ** 2 for f in factors) / (len(factors) - 1))
                half = intervals.t_quantile(len(factors) - 1) * sd / math.sqrt(len(factors))
                lo, hi = mean - half, mean + half
            else:
                lo = hi = ""
            row.update(decay_factor=mean, decay_ci_low=lo, decay_ci_high=hi, status="ok",
                       reason="" if len(factors) == len(curves) else f"{len(curves) - len(factors)} seed(s) not fitted")
        vd = vanish_distance(curves)
        row.update(vanish_distance=vd if vd is not None else "", vanishes_within_T=vd is not None)
        rows.append(row)
    return rows


def run_case(case, run_id: str) -> tuple[list[dict], list[dict]]:
    """All seeds of one [[gradients]] case: (gradients.csv rows, decay.csv rows). Raises errors.Skip.

    The rows' columns are columns.GRADIENT_COLUMNS and columns.DECAY_COLUMNS."""
    cell = registry.get(case.impl).cell

    def factory(seed: int) -> Recurrent:
        return registry.create(case.impl, case.input, case.hidden, device=case.device, dtype=case.dtype, seed=seed,
                               init=case.init, forget_bias=case.forget_bias or 0.0,
                               nonlinearity=case.nonlinearity or "tanh", shape=case.shape,
                               spectral_radius=case.spectral_radius)

    seeds = list(range(case.seed, case.seed + case.seeds))
    by_seed = measure_curves(factory, case.seq_len, case.batch, case.input, case.hidden, seeds,
                             states=case.impl in SCRATCH and case.layers == 1,    # the states of one layer
                             cast=autocast_context(case.device, case.autocast))
    base = {"run_id": run_id, "impl": case.impl, "cell": cell, "init": case.init,
            "forget_bias": case.forget_bias if cell in FORGET_CELLS else "",
            "nonlinearity": case.nonlinearity if cell == "rnn" else "", "hidden": case.hidden,
            "seq_len": case.seq_len, "batch": case.batch, "dtype": case.dtype, "device": case.device,
            "autocast": case.autocast, "task": "", "train_step": "", "layers": case.layers,
            "spectral_radius": "" if case.spectral_radius is None else case.spectral_radius}
    rows = []
    for seed, curves in by_seed.items():
        rows += curve_rows({**base, "input": case.input}, seed, curves)
    return rows, decay_rows(base, by_seed)
