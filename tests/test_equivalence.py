"""Every implementation computes the same function: outputs, final state, and the
gradients with respect to the input, the initial state and every parameter.

Each test draws fresh random weights, inputs and initial state from its own seed,
loads the same canonical weights into every implementation, and compares them in
float64 on the CPU (onednn-lstm, which is float32 only, against the float64 result).
"""
import pytest
import torch

from harness import env, registry
from harness.models import CANONICAL, canonical_params

# (T, B, I, H): T=1 and B=1 included, I != H included
SIZES = [(1, 1, 1, 1), (1, 3, 4, 5), (6, 1, 3, 7), (9, 4, 8, 8), (17, 5, 11, 6), (30, 2, 16, 32)]
WIDE = (6, 20, 3, 7)          # B >= bptt.TRANSPOSED_MIN_BATCH: bptt-lstm's transposed layout, by itself
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")


@pytest.fixture
def full_float32():
    """TF32 off for one test, and the process's own flags back after it (monkeypatch cannot
    undo them: torch.backends.cuda.matmul's are no plain attributes)."""
    before = env.tf32_flags()
    env.set_tf32(False)
    yield
    env.restore_tf32(before)


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the error relative to the reference's scale."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def run_case(name, cell, T, B, I, H, seed, device="cpu", dtype="float64"):
    """Outputs and gradients of `name` on fresh random data drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    weights = canonical_params(cell, I, H, seed=seed + 1000)
    # random, not pytorch-default, scale: exercises saturation and sign changes
    weights = {n: w * (1.5 + torch.rand((), generator=gen, dtype=torch.float64)) for n, w in weights.items()}
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    n_state = 2 if cell == "lstm" else 1
    state = [torch.randn(B, H, generator=gen, dtype=torch.float64) for _ in range(n_state)]
    # a random loss over every output, so every gradient is exercised
    gy = torch.randn(T, B, H, generator=gen, dtype=torch.float64)
    gs = [torch.randn(B, H, generator=gen, dtype=torch.float64) for _ in range(n_state)]

    model = registry.create(name, I, H, device=device, dtype=dtype)
    model.load_canonical(weights)
    tdtype = registry.DTYPES[dtype]
    x = x.to(device, tdtype).requires_grad_(True)
    state = [s.to(device, tdtype).requires_grad_(True) for s in state]
    y, final = model(x, tuple(state))
    loss = (y * gy.to(device, tdtype)).sum()
    loss = loss + sum((f * g.to(device, tdtype)).sum() for f, g in zip(final, gs, strict=True))
    loss.backward()
    out = {"y": y, **{f"final{k}": f for k, f in enumerate(final)}, "grad_x": x.grad}
    out |= {f"grad_state{k}": s.grad for k, s in enumerate(state)}
    out |= {f"grad_{n}": p.grad for n, p in model.canonical().items()}
    return out


def assert_same(got: dict, ref: dict, tol: float):
    assert got.keys() == ref.keys()
    errors = {k: max_rel(got[k], ref[k]) for k in ref}
    bad = {k: e for k, e in errors.items() if not e <= tol}
    assert not bad, f"relative errors above {tol}: {bad}"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "bptt-lstm"])
def test_lstm_matches_torch_lstm_float64(name, size):
    seed = SIZES.index(size)
    ref = run_case("torch-lstm", "lstm", *size, seed=seed)
    assert_same(run_case(name, "lstm", *size, seed=seed), ref, 1e-10)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_onednn_lstm_matches_float64_reference(size):
    seed = 100 + SIZES.index(size)
    ref = run_case("torch-lstm", "lstm", *size, seed=seed)
    assert_same(run_case("onednn-lstm", "lstm", *size, seed=seed, dtype="float32"), ref, 1e-5)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_scratch_rnn_matches_torch_rnn_float64(size):
    seed = 200 + SIZES.index(size)
    ref = run_case("torch-rnn", "rnn", *size, seed=seed)
    assert_same(run_case("scratch-rnn", "rnn", *size, seed=seed), ref, 1e-10)


def test_comparison_is_sensitive():
    """A changed weight must fail the comparison: the tolerance is not vacuous."""
    ref = run_case("torch-lstm", "lstm", 5, 2, 3, 4, seed=7)
    model_out = run_case("fused-lstm", "lstm", 5, 2, 3, 4, seed=8)
    with pytest.raises(AssertionError):
        assert_same(model_out, ref, 1e-10)


def test_same_seed_same_function_everywhere():
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    names = ("scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm")
    ys = [registry.create(n, 3, 5, dtype="float64", seed=11)(x)[0] for n in names]
    assert all(max_rel(y, ys[-1]) < 1e-12 for y in ys)
    other = registry.create("torch-lstm", 3, 5, dtype="float64", seed=12)(x)[0]
    assert max_rel(other, ys[-1]) > 1e-3


def test_scratch_lstm_names_are_views_of_canonical():
    model = registry.create("scratch-lstm", 3, 4, dtype="float64", seed=0)
    named = model.tutorial_params()
    assert sorted(named) == sorted(f"{p}{g}" for g in "ifoc" for p in ("W_x", "W_h", "b_", "b_h"))
    assert named["W_xf"].shape == (3, 4) and named["W_hf"].shape == (4, 4) and named["b_f"].shape == (4,)
    with torch.no_grad():
        model.weight_ih[4:8].zero_()          # the forget gate's rows, canonical order i, f, g, o
    assert named["W_xf"].abs().sum() == 0 and named["W_xi"].abs().sum() > 0
    assert named["W_xc"].data_ptr() == model.weight_ih[8:12].data_ptr()


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("size", SIZES[:4] + [WIDE], ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm", "cudnn-lstm"])
def test_cuda_lstm_matches_cpu_float64(name, size, full_float32):
    seed = 300 + (SIZES + [WIDE]).index(size)
    ref = run_case("torch-lstm", "lstm", *size, seed=seed)
    assert_same(run_case(name, "lstm", *size, seed=seed, device="cuda"), ref, 1e-10)


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["scratch-rnn", "torch-rnn"])
def test_cuda_rnn_matches_cpu_float64(name):
    ref = run_case("torch-rnn", "rnn", 9, 4, 8, 8, seed=400)
    assert_same(run_case(name, "rnn", 9, 4, 8, 8, seed=400, device="cuda"), ref, 1e-10)


@CUDA
@pytest.mark.cuda
def test_cudnn_lstm_float32_matches_float64_reference(full_float32):
    ref = run_case("torch-lstm", "lstm", 9, 4, 8, 8, seed=500)
    assert_same(run_case("cudnn-lstm", "lstm", 9, 4, 8, 8, seed=500, device="cuda", dtype="float32"), ref, 1e-5)


@pytest.mark.parametrize("module", [torch.nn.LSTM, torch.nn.RNN, torch.nn.GRU])
def test_canonical_names_are_nn_layer_zero_names(module):
    """The canonical layout is nn.LSTM's (and nn.RNN's, nn.GRU's) own: CANONICAL + _l0 names every parameter."""
    assert {f"{n}_l0" for n in CANONICAL} == {n for n, _ in module(3, 4).named_parameters()}


@pytest.mark.parametrize("transposed", [False, True], ids=["usual-layout", "transposed-layout"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (4, 3, 2, 3), (7, 2, 5, 4)])
def test_bptt_gradcheck(T, B, I, H, transposed):
    from harness.bptt import LSTMFunction
    gen = torch.Generator().manual_seed(T * 100 + H)
    shapes = [(T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,)]
    args = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert torch.autograd.gradcheck(lambda *a: LSTMFunction.apply(*a, transposed), args)


@pytest.mark.parametrize("transposed", [False, True], ids=["usual-layout", "transposed-layout"])
@pytest.mark.parametrize("size", [(6, 20, 3, 7), (9, 4, 8, 8), (1, 17, 2, 3)],
                         ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_bptt_both_layouts_match_torch_lstm(size, transposed, monkeypatch):
    """Both internal layouts (chosen by batch size in use) against torch-lstm, forced either way."""
    from harness.bptt import BPTTLSTM
    monkeypatch.setattr(BPTTLSTM, "transposed", transposed)
    ref = run_case("torch-lstm", "lstm", *size, seed=700)
    assert_same(run_case("bptt-lstm", "lstm", *size, seed=700), ref, 1e-10)


def test_bptt_backward_is_its_own():
    """No autograd graph inside the forward: the backward is the Function's."""
    model = registry.create("bptt-lstm", 3, 4)
    y, _ = model(torch.randn(5, 2, 3))
    assert type(y.grad_fn).__name__ == "LSTMFunctionBackward"


# -- paths no other test took: GRU, half precisions, the d2l init, bptt's layout switch -------------------
def gru_reference(x, h, w_ih, w_hh, b_ih, b_hh):
    """nn.GRU's documented equations, written out in float64: gates r, z, n."""
    H = h.shape[1]
    ys = []
    for xt in x:
        gi, gh = xt @ w_ih.t() + b_ih, h @ w_hh.t() + b_hh            # (B, 3H) each
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys)


@pytest.mark.parametrize("size", SIZES[2:5], ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_torch_gru_matches_the_gru_equations(size):
    T, B, I, H = size
    gen = torch.Generator().manual_seed(800)
    w = canonical_params("gru", I, H, seed=801)
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    model = registry.create("torch-gru", I, H, dtype="float64", seed=801)
    y, (h,) = model(x, (h0,))
    ref = gru_reference(x, h0, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    assert max_rel(y, ref) < 1e-13 and max_rel(h, ref[-1]) < 1e-13


ROUNDOFF = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}     # unit roundoff: 8 and 11 significand bits
HALF_TOLERANCE = 10          # units of roundoff, over the 9 steps of the case below (2 to 6 were seen)


@pytest.mark.parametrize("dtype", list(ROUNDOFF))
@pytest.mark.parametrize("name,cell,ref", [
    ("scratch-lstm", "lstm", "torch-lstm"), ("fused-lstm", "lstm", "torch-lstm"), ("bptt-lstm", "lstm", "torch-lstm"),
    ("torch-lstm", "lstm", "torch-lstm"), ("onednn-lstm", "lstm", "torch-lstm"), ("scratch-rnn", "rnn", "torch-rnn"),
    ("torch-rnn", "rnn", "torch-rnn"), ("torch-gru", "gru", "torch-gru")])
def test_half_precisions_match_float64(name, cell, ref, dtype):
    if reason := registry.skip_reason(name, "cpu", dtype):
        pytest.skip(reason)
    size = (9, 4, 8, 8)
    assert_same(run_case(name, cell, *size, seed=900, dtype=dtype), run_case(ref, cell, *size, seed=900),
                HALF_TOLERANCE * ROUNDOFF[dtype])


def test_d2l_init_is_the_tutorial_init_scaled_down():
    """The same draws as `seed` (weights ~ N(0, 0.1^2)) at a tenth of the scale, biases zero."""
    d2l, seed = (canonical_params("lstm", 3, 4, seed=5, init=i) for i in ("d2l", "seed"))
    for name in ("weight_ih", "weight_hh"):
        torch.testing.assert_close(d2l[name], seed[name] / 10, rtol=1e-14, atol=0)
    assert all(d2l[b].abs().sum() == 0 for b in ("bias_ih", "bias_hh"))


@pytest.mark.parametrize("batch,transposed", [(1, False), (15, False), (16, True), (40, True)])
def test_bptt_chooses_its_layout_by_batch(batch, transposed):
    from harness.bptt import TRANSPOSED_MIN_BATCH
    assert TRANSPOSED_MIN_BATCH == 16
    y, _ = registry.create("bptt-lstm", 3, 4)(torch.randn(2, batch, 3))
    assert y.grad_fn.transposed is transposed
