"""Every implementation computes the same function: outputs, final state, and the
gradients with respect to the input, the initial state and every parameter.

Each test draws fresh random weights, inputs and initial state from its own seed,
loads the same canonical weights into every implementation, and compares them in
float64 on the CPU (onednn-lstm, which is float32 only, against the float64 result).
"""
import contextlib

import pytest
import torch

from harness.core import env
from harness.core.errors import Skip
from harness.implementations import registry
from harness.implementations.models import CANONICAL, ONE_LAYER, Shape, canonical_params

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


def run_case(name, cell, T, B, I, H, seed, device="cpu", dtype="float64", shape=ONE_LAYER, lengths=None,
             mode=None, rng_seed=None, autocast=None, gemm=None):
    """Outputs and gradients of `name` on fresh random data drawn from `seed`: a stack of `shape`,
    a variable-length batch run in `mode` where `lengths` (B,) is given, the forward under
    torch.autocast(dtype=autocast) where it is given."""
    gen = torch.Generator().manual_seed(seed)
    weights = canonical_params(cell, I, H, seed=seed + 1000, shape=shape)
    # random, not pytorch-default, scale: exercises saturation and sign changes
    weights = {n: w * (1.5 + torch.rand((), generator=gen, dtype=torch.float64)) for n, w in weights.items()}
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    model = registry.create(name, I, H, device=device, dtype=dtype, shape=shape, lengths_mode=mode, gemm=gemm)
    model.load_canonical(weights)
    tdtype = registry.DTYPES[dtype]
    state = [torch.randn(s.shape, generator=gen, dtype=torch.float64) for s in model.zero_state(B)]
    # a random loss over every output, so every gradient is exercised
    gy = torch.randn(T, B, shape.directions * (shape.proj_size or H), generator=gen, dtype=torch.float64)
    gs = [torch.randn(s.shape, generator=gen, dtype=torch.float64) for s in state]
    x = x.to(device, tdtype).requires_grad_(True)
    state = [s.to(device, tdtype).requires_grad_(True) for s in state]
    if rng_seed is not None:                      # dropout: the same masks, drawn from the global generator
        torch.manual_seed(rng_seed)
    with (torch.autocast(device.split(":")[0], dtype=registry.DTYPES[autocast]) if autocast
          else contextlib.nullcontext()):
        y, final = model(x, tuple(state), lengths)
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
        model.weight_ih_l0[4:8].zero_()       # the forget gate's rows, canonical order i, f, g, o
    assert named["W_xf"].abs().sum() == 0 and named["W_xi"].abs().sum() > 0
    assert named["W_xc"].data_ptr() == model.weight_ih_l0[8:12].data_ptr()


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
    cell = module.__name__.lower()
    assert set(canonical_params(cell, 3, 4, shape=Shape(2, True))) == {
        n for n, _ in module(3, 4, num_layers=2, bidirectional=True).named_parameters()}


@pytest.mark.parametrize("transposed", [False, True], ids=["usual-layout", "transposed-layout"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (4, 3, 2, 3), (7, 2, 5, 4)])
def test_bptt_gradcheck(T, B, I, H, transposed):
    from harness.implementations.bptt import LSTMFunction
    gen = torch.Generator().manual_seed(T * 100 + H)
    shapes = [(T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,)]
    args = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert torch.autograd.gradcheck(lambda *a: LSTMFunction.apply(*a, None, transposed), args)


@pytest.mark.parametrize("transposed", [False, True], ids=["usual-layout", "transposed-layout"])
@pytest.mark.parametrize("size", [(6, 20, 3, 7), (9, 4, 8, 8), (1, 17, 2, 3)],
                         ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_bptt_both_layouts_match_torch_lstm(size, transposed, monkeypatch):
    """Both internal layouts (chosen by batch size in use) against torch-lstm, forced either way."""
    from harness.implementations.bptt import BPTTLSTM
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
    h0 = torch.randn(1, B, H, generator=gen, dtype=torch.float64)
    model = registry.create("torch-gru", I, H, dtype="float64", seed=801)
    y, (h,) = model(x, (h0,))
    ref = gru_reference(x, h0[0], w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"])
    assert max_rel(y, ref) < 1e-13 and max_rel(h[0], ref[-1]) < 1e-13


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
    for name in ("weight_ih_l0", "weight_hh_l0"):
        torch.testing.assert_close(d2l[name], seed[name] / 10, rtol=1e-14, atol=0)
    assert all(d2l[b].abs().sum() == 0 for b in ("bias_ih_l0", "bias_hh_l0"))


@pytest.mark.parametrize("batch,transposed", [(1, False), (15, False), (16, True), (40, True)])
def test_bptt_chooses_its_layout_by_batch(batch, transposed):
    from harness.implementations.bptt import TRANSPOSED_MIN_BATCH
    assert TRANSPOSED_MIN_BATCH == 16
    y, _ = registry.create("bptt-lstm", 3, 4)(torch.randn(2, batch, 3))
    assert y.grad_fn.transposed is transposed


# -- stacks, projections, dropout and variable lengths ---------------------------------------------
STACK_SIZE = (9, 5, 4, 6)                       # T, B, I, H
LENGTHS = torch.tensor([9, 2, 6, 1, 9])         # unsorted, with ties, 1 and T among them
STACKS = [Shape(2), Shape(1, True), Shape(3, True), Shape(2, False, 3), Shape(2, True, 3)]
stack_id = "L{0.layers}-D{0.directions}-P{0.proj_size}".format


def reference(cell, mode, shape, seed, size=STACK_SIZE, dtype="float64"):
    """nn.LSTM (nn.RNN) on native kernels; a variable-length batch as a PackedSequence."""
    lengths = None if mode == "fixed" else LENGTHS
    return run_case(f"torch-{cell}", cell, *size, seed=seed, shape=shape, lengths=lengths,
                    mode=None if lengths is None else "packed", dtype=dtype)


@pytest.mark.parametrize("mode", ["fixed", "packed", "masked"])
@pytest.mark.parametrize("shape", STACKS, ids=stack_id)
@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "bptt-lstm"])
def test_stacked_lstm_matches_torch_lstm_float64(name, shape, mode):
    """Outputs (unpacked), the final (h, c) of every layer and direction, every gradient."""
    seed = 1100 + STACKS.index(shape)
    lengths = None if mode == "fixed" else LENGTHS
    got = run_case(name, "lstm", *STACK_SIZE, seed=seed, shape=shape, lengths=lengths,
                   mode=None if lengths is None else mode)
    assert_same(got, reference("lstm", mode, shape, seed), 1e-10)


@pytest.mark.parametrize("mode", ["fixed", "packed", "masked"])
@pytest.mark.parametrize("shape", [Shape(2), Shape(1, True), Shape(3, True)], ids=stack_id)
def test_stacked_scratch_rnn_matches_torch_rnn_float64(shape, mode):
    lengths = None if mode == "fixed" else LENGTHS
    got = run_case("scratch-rnn", "rnn", *STACK_SIZE, seed=1200, shape=shape, lengths=lengths,
                   mode=None if lengths is None else mode)
    assert_same(got, reference("rnn", mode, shape, 1200), 1e-10)


@pytest.mark.parametrize("shape", [s for s in STACKS if not s.proj_size], ids=stack_id)
def test_stacked_onednn_lstm_matches_float64_reference(shape):
    got = run_case("onednn-lstm", "lstm", *STACK_SIZE, seed=1300, shape=shape, dtype="float32")
    assert_same(got, reference("lstm", "fixed", shape, 1300), 1e-5)


OWN_GEMMS = [("scratch-lstm", "lstm"), ("fused-lstm", "lstm"), ("bptt-lstm", "lstm"), ("scratch-rnn", "rnn")]


@pytest.mark.parametrize("gemm", ["aten", "onednn"])
@pytest.mark.parametrize("size", SIZES + [WIDE], ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
@pytest.mark.parametrize(("name", "cell"), OWN_GEMMS, ids=[n for n, _ in OWN_GEMMS])
def test_every_gemm_library_matches_float64_in_float32(name, cell, size, gemm):
    """Every (implementation, gemm) pair in float32 against nn.LSTM (nn.RNN) in float64: outputs, final state and
    every gradient, within float32's tolerance (bptt-lstm's transposed layout included: WIDE)."""
    seed = 1500 + SIZES.index(size) if size in SIZES else 1599
    ref = run_case(f"torch-{cell}", cell, *size, seed=seed)
    assert_same(run_case(name, cell, *size, seed=seed, dtype="float32", gemm=gemm), ref, 1e-5)


@pytest.mark.parametrize("mode", ["fixed", "packed", "masked"])
@pytest.mark.parametrize(("name", "cell"), OWN_GEMMS, ids=[n for n, _ in OWN_GEMMS])
def test_onednn_gemms_take_stacks_projections_and_lengths(name, cell, mode):
    shape = Shape(2, True, 3) if cell == "lstm" else Shape(2, True)
    lengths = None if mode == "fixed" else LENGTHS
    got = run_case(name, cell, *STACK_SIZE, seed=1700, shape=shape, lengths=lengths, dtype="float32",
                   mode=None if lengths is None else mode, gemm="onednn")
    assert_same(got, reference(cell, mode, shape, 1700), 1e-5)


@pytest.mark.parametrize("name", [n for n, _ in OWN_GEMMS])
def test_with_onednn_every_gemm_goes_through_onednn(name):
    """Forwards and backwards: no aten GEMM runs, and oneDNN's matmul does (read off the profiler's op names)."""
    from harness.measure.profiling import op_names
    model = registry.create(name, 5, 6, dtype="float32", gemm="onednn", seed=1)
    ops = op_names(model, torch.randn(4, 3, 5))
    assert "mkldnn::_linear_pointwise" in ops
    assert not ops & {"aten::mm", "aten::addmm", "aten::matmul", "aten::bmm", "aten::addmm_", "aten::linear"}
    aten = op_names(registry.create(name, 5, 6, dtype="float32", seed=1), torch.randn(4, 3, 5))
    assert "mkldnn::_linear_pointwise" not in aten and aten & {"aten::mm", "aten::addmm"}


@pytest.mark.parametrize("transposed", [False, True], ids=["usual-layout", "transposed-layout"])
def test_stacked_bptt_in_both_layouts(transposed, monkeypatch):
    from harness.implementations.bptt import BPTTLSTM
    monkeypatch.setattr(BPTTLSTM, "transposed", transposed)
    size, shape = (6, 20, 3, 7), Shape(2, True)
    ref = run_case("torch-lstm", "lstm", *size, seed=1400, shape=shape)
    assert_same(run_case("bptt-lstm", "lstm", *size, seed=1400, shape=shape), ref, 1e-10)


DROPOUT = Shape(3, True, 0, 0.5)


@pytest.mark.parametrize("name,dtype,tol", [("scratch-lstm", "float64", 1e-10), ("fused-lstm", "float64", 1e-10),
                                            ("bptt-lstm", "float64", 1e-10), ("onednn-lstm", "float32", 1e-5)])
def test_dropout_draws_the_masks_nn_lstm_draws(name, dtype, tol):
    """On the CPU nn.LSTM draws its between-layer masks as F.dropout does, from the global generator:
    with one seed, the scratch models' dropout is nn.LSTM's, exactly. (cuDNN draws them from its own
    generator, so cudnn-lstm's dropout has nothing to be compared with.)"""
    ref = run_case("torch-lstm", "lstm", *STACK_SIZE, seed=1500, shape=DROPOUT, rng_seed=7)
    assert_same(run_case(name, "lstm", *STACK_SIZE, seed=1500, shape=DROPOUT, rng_seed=7, dtype=dtype), ref, tol)
    other = run_case(name, "lstm", *STACK_SIZE, seed=1500, shape=DROPOUT, rng_seed=8, dtype=dtype)
    assert max_rel(other["y"], ref["y"]) > 1e-3                 # another seed, other masks: not vacuous


def test_dropout_is_off_in_eval_mode():
    model = registry.create("fused-lstm", 3, 4, dtype="float64", shape=Shape(2, False, 0, 0.5))
    plain = registry.create("fused-lstm", 3, 4, dtype="float64", shape=Shape(2))
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert max_rel(model(x)[0], plain(x)[0]) > 1e-3
    model.eval()
    assert max_rel(model(x)[0], plain(x)[0]) == 0.0


@pytest.mark.parametrize("name", ["fused-lstm", "bptt-lstm", "torch-lstm"])
def test_padded_mode_runs_over_the_padding(name):
    """padded: the outputs of a plain run over every step, and a short sequence's final state taken at T."""
    x = torch.randn(9, 5, 4, dtype=torch.float64)
    plain = registry.create(name, 4, 6, dtype="float64", seed=3, shape=Shape(2))
    padded = registry.create(name, 4, 6, dtype="float64", seed=3, shape=Shape(2), lengths_mode="padded")
    packed = registry.create(name, 4, 6, dtype="float64", seed=3, shape=Shape(2), lengths_mode="packed")
    (y0, s0), (y1, s1), (_, s2) = plain(x), padded(x, lengths=LENGTHS), packed(x, lengths=LENGTHS)
    assert max_rel(y1, y0) == 0.0 and max_rel(s1[0], s0[0]) == 0.0
    short = LENGTHS < 9
    assert (s1[0][:, short] - s2[0][:, short]).abs().min() > 0          # wrong for every short sequence
    assert max_rel(s1[0][:, ~short], s2[0][:, ~short]) < 1e-12          # right for the full-length ones


@pytest.mark.parametrize("mode", ["packed", "masked"])
@pytest.mark.parametrize("proj", [0, 2])
def test_bptt_general_path_gradcheck(mode, proj):
    from harness.implementations import lengths as varlen
    from harness.implementations.bptt import LSTMFunction
    T, B, I, H = 5, 4, 2, 3
    Q = proj or H
    gen = torch.Generator().manual_seed(1600 + proj)
    shapes = [(T, B, I), (B, Q), (B, H), (4 * H, I), (4 * H, Q), (4 * H,)] + ([(proj, H)] if proj else [])
    args = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    lengths = torch.tensor([2, 5, 1, 4])
    vl = varlen.Batch.make(lengths, T, mode, "cpu")
    if vl.order is not None:                    # the stack sorts the batch before a packed layer runs
        args[:3] = [a.detach()[:, vl.order] if k == 0 else a.detach()[vl.order] for k, a in enumerate(args[:3])]
        args[:3] = [a.requires_grad_(True) for a in args[:3]]
    w_hr = args[6] if proj else None
    assert torch.autograd.gradcheck(lambda *a: LSTMFunction.apply(*a[:6], w_hr if not proj else a[6], None, None,
                                                                  vl), args)


def test_what_an_implementation_lacks_is_a_skip():
    with pytest.raises(Skip, match="torch-lstm has no masked mode for variable lengths; it runs packed, padded"):
        registry.create("torch-lstm", 3, 4, lengths_mode="masked")
    with pytest.raises(Skip, match=r"dummy has no layers, bidirectional \(a one-layer, one-direction stand-in\)"):
        registry.create("dummy", 3, 4, shape=Shape(2, True))
    # oneDNN would not run them: PyTorch falls back to native kernels, which torch-lstm measures already
    assert registry.skip_reason("onednn-lstm", shape=Shape(1, False, 2)).startswith(
        "onednn-lstm has no proj_size (oneDNN's LSTM takes no PackedSequence and no projection")
    assert registry.skip_reason("onednn-lstm", lengths_mode="packed").startswith(
        "onednn-lstm has no packed mode for variable lengths; it runs padded (oneDNN's LSTM")
    assert registry.skip_reason("scratch-rnn", shape=Shape(2, True), lengths_mode="masked") is None
    plain = registry.create("onednn-lstm", 3, 4)           # no mode asked for: lengths are refused, not padded
    with pytest.raises(ValueError, match="has no packed mode: create it with lengths_mode='padded'"):
        plain(torch.randn(5, 2, 3), lengths=torch.tensor([5, 3]))


@pytest.mark.parametrize("name,shape,message", [
    ("fused-lstm", Shape(1, False, 4), r"proj_size must be in \[0, hidden\) = \[0, 4\) \(0: none\), not 4"),
    ("torch-rnn", Shape(1, False, 2), "proj_size applies to LSTM cells only, not RNN"),
    ("torch-lstm", Shape(2, False, 0, 1.0), r"dropout must be in \[0, 1\), not 1.0"),
    ("torch-lstm", Shape(0), "layers must be an integer >= 1, not 0"),
])
def test_stacks_nn_lstm_refuses_are_errors(name, shape, message):
    with pytest.raises(ValueError, match=message):
        registry.create(name, 3, 4, shape=shape)


def test_onednn_runs_stacks_on_its_own_kernels():
    """Two layers, both directions: still oneDNN's primitive, not a silent fallback."""
    from harness.measure.profiling import backend_from_ops
    model = registry.create("onednn-lstm", 4, 4, shape=Shape(2, True))
    with torch.profiler.profile() as prof:
        model(torch.randn(5, 2, 4))[0].sum().backward()
    assert backend_from_ops({e.name for e in prof.events()}) == "onednn"


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["fixed", "packed"])
@pytest.mark.parametrize("name", ["fused-lstm", "bptt-lstm", "cudnn-lstm"])
def test_cuda_stacks_match_cpu_float64(name, mode, full_float32):
    shape = Shape(2, True, 3)
    lengths = None if mode == "fixed" else LENGTHS
    got = run_case(name, "lstm", *STACK_SIZE, seed=1700, shape=shape, lengths=lengths, device="cuda",
                   mode=None if lengths is None else mode)
    assert_same(got, reference("lstm", mode, shape, 1700), 1e-10)
