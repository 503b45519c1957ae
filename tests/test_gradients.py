"""Gradient norms over distance against exact oracles, and the decay fit."""
import math

import pytest
import torch

from harness.implementations import registry
from harness.implementations.models import Recurrent
from harness.measure import gradients


class LinearRNN(Recurrent):
    """h_t = W h_{t-1} + U x_t: with W = rho*Q and U orthogonal, ||dL/dx_t|| = rho^(T-t) ||g||."""

    cell = "rnn"

    def __init__(self, W, U):
        super().__init__(U.shape[1], W.shape[0])
        self.W, self.U = torch.nn.Parameter(W), torch.nn.Parameter(U)

    def run(self, x, state, lengths=None):
        (h,) = state
        h = h[0]                                          # (B, H): one layer, one direction
        ys = []
        for xt in x:
            h = h @ self.W.t() + xt @ self.U.t()
            ys.append(h)
        return torch.stack(ys), (h.unsqueeze(0),)


def orthogonal(n, seed):
    q, r = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.1])
@pytest.mark.parametrize("T,B,H", [(1, 1, 3), (12, 1, 6), (30, 3, 5)])
def test_linear_rnn_oracle(rho, T, B, H):
    model = LinearRNN(rho * orthogonal(H, 1), orthogonal(H, 2))
    g = gradients.probe_vector(H, seed=0)
    norms = gradients.grad_norms(model, gradients.probe_input(T, B, H, seed=0), g)["x"]
    last = norms[-1]
    for t, v in enumerate(norms, start=1):
        assert v / last == pytest.approx(rho ** (T - t), rel=1e-9)
    if T > 3 and rho != 1.0:
        factor, n = gradients.fit_decay(norms)
        assert n == T - 1 and factor == pytest.approx(rho, rel=1e-9)


@pytest.mark.parametrize("bf", [-1.0, 0.0, 0.7, 3.0])
def test_forget_gate_product(bf):
    """W_hh = 0, zero input-to-forget weights, constant inputs: dc_T/dc_t = sigmoid(b_f)^(T-t)."""
    T, B, I, H = 15, 2, 3, 4
    model = registry.create("scratch-lstm", I, H, dtype="float64", seed=5)
    with torch.no_grad():
        model.weight_hh_l0.zero_()
        model.weight_ih_l0[H:2 * H].zero_()         # the forget gate's input weights
        model.bias_ih_l0[H:2 * H].fill_(bf)
        model.bias_hh_l0[H:2 * H].zero_()
    x = torch.randn(1, B, I, dtype=torch.float64).expand(T, B, I).contiguous()  # constant over time
    curves = gradients.grad_norms(model, x, gradients.probe_vector(H, 0), states=True)
    c = curves["c"]
    f = 1 / (1 + math.exp(-bf))
    for t, v in enumerate(c, start=1):
        assert v / c[-1] == pytest.approx(f ** (T - t), rel=1e-10)


def test_forget_bias_is_added_to_bias_ih_only():
    a = registry.create("torch-lstm", 3, 4, dtype="float64", seed=1)
    b = registry.create("torch-lstm", 3, 4, dtype="float64", seed=1, forget_bias=2.5)
    diff_ih = b.canonical()["bias_ih_l0"] - a.canonical()["bias_ih_l0"]
    assert torch.equal(diff_ih, torch.tensor([0.0] * 4 + [2.5] * 4 + [0.0] * 8, dtype=torch.float64))
    assert torch.equal(b.canonical()["bias_hh_l0"], a.canonical()["bias_hh_l0"])
    with pytest.raises(ValueError, match="forget_bias applies to LSTM and minLSTM cells only"):
        registry.create("torch-rnn", 3, 4, forget_bias=1.0)


@pytest.mark.parametrize("init", ["pytorch", "seed", "orthogonal"])
def test_same_weights_same_curves(init):
    curves = {}
    for name in ("scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm"):
        model = registry.create(name, 5, 6, dtype="float64", seed=3, init=init, forget_bias=0.5)
        curves[name] = gradients.grad_norms(model, gradients.probe_input(20, 3, 5, 3), gradients.probe_vector(6, 3),
                                            states=name in gradients.SCRATCH)
    ref = curves["torch-lstm"]["x"]
    for name in ("scratch-lstm", "fused-lstm", "bptt-lstm"):
        assert max(abs(a - b) / abs(b) for a, b in zip(curves[name]["x"], ref, strict=True)) < 1e-10
    for wrt in ("h", "c"):
        a, b = curves["scratch-lstm"][wrt], curves["fused-lstm"][wrt]
        assert max(abs(p - q) / abs(q) for p, q in zip(a, b, strict=True)) < 1e-10


def test_rnn_curves_agree_and_relu_differs():
    def curve(name, nl):
        m = registry.create(name, 4, 4, dtype="float64", seed=2, nonlinearity=nl)
        return gradients.grad_norms(m, gradients.probe_input(10, 2, 4, 2), gradients.probe_vector(4, 2))["x"]
    for nl in ("tanh", "relu"):
        a, b = curve("scratch-rnn", nl), curve("torch-rnn", nl)
        assert max(abs(p - q) / abs(q) for p, q in zip(a, b, strict=True)) < 1e-10
    assert curve("scratch-rnn", "tanh") != curve("scratch-rnn", "relu")


def test_reproducible():
    from harness.config.cases import GradientCase
    case = GradientCase(impl="fused-lstm", device="cpu", dtype="float32", hidden=8, input=8, seq_len=12, batch=2,
                        init="pytorch", forget_bias=1.0, nonlinearity=None, seed=0, seeds=2, threads=1)
    a, da = gradients.run_case(case, "r")
    b, db = gradients.run_case(case, "r")
    assert a == b and da == db
    assert len(a) == 2 * 3 * 12                     # seeds x (x, h, c) x steps
    assert {r["wrt"] for r in a} == {"x", "h", "c"} and [r["distance"] for r in a[:3]] == [11, 10, 9]


def test_flags_and_fit():
    assert [gradients.flag(v) for v in (1.0, float("nan"), float("inf"), 0.0)] == ["ok", "nan", "inf", "underflow"]
    rows = gradients.curve_rows({"impl": "x"}, 0, {"x": [0.0, float("nan"), 1e-3, 1.0]})
    assert [(r["grad_norm"], r["status"]) for r in rows] == [(0.0, "underflow"), ("", "nan"), (1e-3, "ok"),
                                                             (1.0, "ok")]
    norms = [0.5 ** (9 - t) for t in range(10)]          # distance d has 0.5**d
    assert gradients.fit_decay(norms)[0] == pytest.approx(0.5)
    assert gradients.vanish_distance([norms]) is None                 # 0.5**9 > 1e-3
    assert gradients.vanish_distance([[0.5 ** (20 - t) for t in range(21)]]) == 10   # 0.5**10 < 1e-3
    assert gradients.fit_decay([1.0, 0.0, 0.0, 1.0])[0] is None


def test_decay_interval_across_seeds():
    by_seed = {s: {"x": [f ** (19 - t) for t in range(20)]} for s, f in enumerate([0.8, 0.9, 0.85])}
    [row] = gradients.decay_rows({}, by_seed)
    assert row["decay_factor"] == pytest.approx(0.85)
    half = 4.302653 * 0.05 / math.sqrt(3)   # t(0.975, df=2)
    assert row["decay_ci_low"] == pytest.approx(0.85 - half) and row["decay_ci_high"] == pytest.approx(0.85 + half)
    assert row["seeds"] == 3 and row["window_min"] == 1 and row["window_max"] == 19


def test_the_fit_keeps_to_its_window_and_to_the_curve():
    """norms[T-1-d] = 0.5^d for d = 0..2, then flat: the window picks the points, not its neighbours."""
    bent = [1.0] * 7 + [0.25, 0.5, 1.0]                           # T = 10: distance 0 is the last step
    assert gradients.fit_decay(bent, window=(0, 2)) == (pytest.approx(0.5), 3)
    halves = [0.5 ** (9 - t) for t in range(10)]
    assert gradients.fit_decay(halves, window=(7, 10)) == (pytest.approx(0.5), 3)   # distance 10 is off the curve
    assert gradients.fit_decay(halves, window=(8, 12)) == (None, 2)


def test_vanish_distance_reads_underflow_nan_and_the_threshold():
    assert gradients.vanish_distance([[0.0, 1.0]]) == 1                           # an underflow has vanished
    assert gradients.vanish_distance([[1e-3, 1.0]]) is None                       # exactly 1e-3 is not below it
    assert gradients.vanish_distance([[1e-4, float("nan"), 1.0]]) is None         # nan first: no distance
    assert gradients.vanish_distance([[1e-4, 1.0, 1.0]]) == 2
    # the geometric mean over seeds, against the mean log at distance 0 (here 2 and 8: 4)
    assert gradients.vanish_distance([[5e-3, 2.0], [5e-3, 8.0]]) is None          # 5e-3 is 1.25e-3 of 4
    assert gradients.vanish_distance([[3e-3, 2.0], [3e-3, 8.0]]) == 1             # 3e-3 is 0.75e-3 of 4
