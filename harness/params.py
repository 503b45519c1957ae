"""The canonical parameters: their names, shapes and seeded draws, and the stack's shape.

Every implementation of one cell type holds the same parameters, with nn.LSTM's names, layout
and gate order (i, f, g, o for LSTM; r, z, n for GRU), for every layer l and direction
(suffix "" or "_reverse"):

    weight_ih_l{l}  (G*H, I_l)    weight_hh_l{l}  (G*H, Q)    weight_hr_l{l}  (P, H)  (proj_size only)
    bias_ih_l{l}    (G*H,)        bias_hh_l{l}    (G*H,)

with G = 4 (LSTM), 3 (GRU), 1 (RNN), Q = P (proj_size) or H, I_0 = I and I_l = D*Q above
(D = 2 directions when bidirectional). `canonical_params()` draws them from a seed on the
CPU in float64, so one seed gives the same function on every implementation, device and dtype.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # G: gate blocks per cell type
CANONICAL = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")   # one layer's, without the _l{l} suffix
PROJECTION = "weight_hr"                                       # LSTM with proj_size only
DIRECTIONS = ("", "_reverse")                                  # nn.LSTM's suffix of direction d
INITS = ("pytorch", "seed", "d2l", "orthogonal")
NONLINEARITIES = ("tanh", "relu")  # RNN cells only
# pytorch:    nn's default, every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
# seed:       the tutorial's: weights ~ N(0, 0.1^2), biases zero
# d2l:        weights ~ N(0, 0.01^2), biases zero
# orthogonal: pytorch's input weights and biases, each recurrent (H, Q) gate block a matrix with
#             orthonormal columns (orthogonal when Q = H)



class Shape(NamedTuple):
    """The stack's shape: what nn.LSTM's constructor takes besides the sizes."""
    layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


ONE_LAYER = Shape()    # one layer, one direction, no projection, no dropout: the default stack


def stack_problem(key: str, value) -> str | None:
    """What is wrong with one layers or dropout value on its own ('must be ..., not V'), or None. The
    scenario schema and registry.check_shape both ask this; proj_size's rule needs hidden and the cell."""
    if key == "layers" and value < 1:
        return f"must be an integer >= 1, not {value}"
    if key == "dropout" and not 0 <= value < 1:
        return f"must be in [0, 1), not {value}"
    return None


def param_shapes(cell: str, input_size: int, hidden_size: int, shape: Shape = ONE_LAYER) -> dict[str, tuple]:
    """Every canonical parameter's shape, in nn.LSTM's own order (layer, direction, then
    weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)."""
    G, H, P = GATES[cell], hidden_size, shape.proj_size
    Q = P or H
    out = {}
    for layer in range(shape.layers):
        width = input_size if layer == 0 else shape.directions * Q
        for suffix in DIRECTIONS[:shape.directions]:
            s = f"_l{layer}{suffix}"
            out |= {f"weight_ih{s}": (G * H, width), f"weight_hh{s}": (G * H, Q), f"bias_ih{s}": (G * H,),
                    f"bias_hh{s}": (G * H,)}
            if P:
                out[f"{PROJECTION}{s}"] = (P, H)
    return out


def canonical_params(cell: str, input_size: int, hidden_size: int, seed: int = 0, init: str = "pytorch",
                     shape: Shape = ONE_LAYER) -> dict[str, Tensor]:
    """Draw the canonical parameters on the CPU in float64, from `seed` alone. Layer 0's forward
    direction is drawn first and the same way whatever the stack, so a one-layer model's
    parameters are a deeper one's first layer."""
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}; allowed: {', '.join(GATES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
    G, H = GATES[cell], hidden_size
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=gen)
    shapes = param_shapes(cell, input_size, hidden_size, shape)
    if init in ("pytorch", "orthogonal"):
        k = 1.0 / math.sqrt(H)
        p = {n: torch.rand(s, **f64) * (2 * k) - k for n, s in shapes.items()}
        if init == "orthogonal":
            for name in (n for n in shapes if n.startswith("weight_hh")):
                blocks = []
                for _ in range(G):
                    q, r = torch.linalg.qr(torch.randn(H, shapes[name][1], **f64))
                    blocks.append(q * torch.sign(torch.diagonal(r)))    # Haar-distributed
                p[name] = torch.cat(blocks, 0)
        return p
    std = 0.1 if init == "seed" else 0.01
    return {n: (torch.randn(s, **f64) * std if n.startswith("weight") else torch.zeros(s, dtype=torch.float64))
            for n, s in shapes.items()}
