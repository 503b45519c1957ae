"""The canonical parameters: their names, shapes and seeded draws, and the stack's shape.

Every implementation of one cell type holds the same parameters, with nn.LSTM's names, layout
and gate order (i, f, g, o for LSTM; r, z, n for GRU), for every layer l and direction
(suffix "" or "_reverse"):

    weight_ih_l{l}  (G*H, I_l)    weight_hh_l{l}  (G*H, Q)    weight_hr_l{l}  (P, H)  (proj_size only)
    bias_ih_l{l}    (G*H,)        bias_hh_l{l}    (G*H,)

with G = 4 (LSTM), 3 (GRU), 1 (RNN), 2 (minGRU: z, h~), 3 (minLSTM: i, f, h~; no weight_hh and no
bias_hh for these two: NO_RECURRENT), Q = P (proj_size) or H, I_0 = I and I_l = D*Q above
(D = 2 directions when bidirectional). `canonical_params()` draws them from a seed on the
CPU in float64, so one seed gives the same function on every implementation, device and dtype.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

GATES = {"lstm": 4, "gru": 3, "rnn": 1, "mingru": 2, "minlstm": 3}  # G: gate blocks per cell type
NO_RECURRENT = ("mingru", "minlstm")   # cells whose gates read x_t only: no weight_hh, no bias_hh (minrnn.py)
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "mingru": "minGRU", "minlstm": "minLSTM"}   # in prose
FORGET_CELLS = ("lstm", "minlstm")     # cells with a forget gate, weight_ih's rows H:2H: what forget_bias acts on
CANONICAL = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")   # one layer's, without the _l{l} suffix
PROJECTION = "weight_hr"                                       # LSTM with proj_size only
DIRECTIONS = ("", "_reverse")                                  # nn.LSTM's suffix of direction d
INITS = ("pytorch", "seed", "d2l", "orthogonal", "identity")
NONLINEARITIES = ("tanh", "relu", "linear")  # RNN cells only; linear: scratch-rnn only (nn.RNN has none)
# pytorch:    nn's default, every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
# seed:       the tutorial's: weights ~ N(0, 0.1^2), biases zero
# d2l:        weights ~ N(0, 0.01^2), biases zero
# orthogonal: pytorch's input weights and biases, each recurrent (H, Q) gate block a matrix with
#             orthonormal columns (orthogonal when Q = H)
# identity:   RNN only: pytorch's input weights, W_hh = I, biases zero. With relu, the IRNN of
#             Le, Jaitly & Hinton 2015.



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
            if cell in NO_RECURRENT:
                del out[f"weight_hh{s}"], out[f"bias_hh{s}"]
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
    if init == "identity":
        if cell != "rnn":
            raise ValueError(f"init 'identity' applies to RNN cells only, not {cell.upper()}")
        k = 1.0 / math.sqrt(H)
        return {n: (torch.rand(s, **f64) * (2 * k) - k if n.startswith("weight_ih") else
                    torch.eye(H, dtype=torch.float64) if n.startswith("weight_hh") else
                    torch.zeros(s, dtype=torch.float64)) for n, s in shapes.items()}
    std = 0.1 if init == "seed" else 0.01
    return {n: (torch.randn(s, **f64) * std if n.startswith("weight") else torch.zeros(s, dtype=torch.float64))
            for n, s in shapes.items()}


def spectral_radius(block: Tensor) -> float:
    """max |eigenvalue| of a square matrix: torch.linalg.eigvals in float64 (exact, not power iteration,
    which converges slowly when the largest eigenvalues are close in modulus, as a random matrix's are)."""
    return torch.linalg.eigvals(block.to(torch.float64)).abs().max().item()


def rescale_recurrent(params: dict[str, Tensor], cell: str, radius: float) -> None:
    """Scale each recurrent gate block (every weight_hh's G blocks of (H, H), every layer and
    direction) so that its spectral radius is `radius`. An orthogonal block has every singular
    value equal to 1, so after this every singular value is `radius` exactly."""
    G = GATES[cell]
    for name in [n for n in params if n.startswith("weight_hh")]:
        w = params[name]
        H = w.shape[0] // G
        if w.shape[1] != H:
            raise ValueError(f"spectral_radius needs square recurrent blocks; {name} is {tuple(w.shape)} "
                             f"(proj_size?)")
        for k in range(G):
            block = w[k * H:(k + 1) * H]
            r = spectral_radius(block)
            if r == 0.0:
                raise ValueError(f"{name}'s gate block {k} has spectral radius 0: nothing to rescale")
            block.mul_(radius / r)
