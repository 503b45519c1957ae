"""minGRU and minLSTM: scan = loop = the paper's equations in float64, masked = each sequence alone, float32 at
T = 4096, no NaN from a zero state, the gradient's decay against its closed form, and what a min model lacks."""
import math

import pytest
import torch

from harness.core.errors import Skip
from harness.implementations import gemm, minrnn, registry
from harness.implementations.params import Shape
from harness.measure import accuracy, gradients

MIN = ("mingru-scan", "mingru-loop", "minlstm-scan", "minlstm-loop")
PAIRS = {"mingru": ("mingru-scan", "mingru-loop"), "minlstm": ("minlstm-scan", "minlstm-loop")}


def paper(cell, p, x, h0):
    """The paper's equations, step by step, in float64: one layer, one direction. h0 (B, H)."""
    H = h0.shape[1]
    h, ys = h0, []
    for xt in x:
        k = xt @ p["weight_ih_l0"].t() + p["bias_ih_l0"]
        h_tilde = torch.where(k[:, -H:] >= 0, k[:, -H:] + 0.5, torch.sigmoid(k[:, -H:]))
        if cell == "mingru":
            z = torch.sigmoid(k[:, :H])
            h = (1 - z) * h + z * h_tilde
        else:
            i, f = torch.sigmoid(k[:, :H]), torch.sigmoid(k[:, H:2 * H])
            h = f / (f + i) * h + i / (f + i) * h_tilde
        ys.append(h)
    return torch.stack(ys)


def run(model, x, h0, lengths=None):
    """(output, final state, every gradient by name) of loss = sum(y * w) + sum(h_T * v), fixed weights w, v."""
    x = x.clone().requires_grad_(True)
    h0 = h0.clone().requires_grad_(True)
    y, (h,) = model(x, (h0,), lengths)
    gen = torch.Generator().manual_seed(9)
    loss = (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum() + (h * torch.randn(h.shape, generator=gen,
                                                                                              dtype=h.dtype)).sum()
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.canonical().items()} | {"x": x.grad, "h0": h0.grad}
    return y.detach(), h.detach(), grads


def close(a, b, tol=1e-9):
    return (a - b).abs().max().item() <= tol * max(b.abs().max().item(), 1.0)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("T", [1, 7, 64, 150])
def test_scan_equals_loop_equals_the_papers_equations(cell, T):
    B, I, H = 3, 5, 4
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(T))
    h0 = torch.randn(1, B, H, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.5
    outs = {n: run(registry.create(n, I, H, dtype="float64", seed=2, forget_bias=1.0 if cell == "minlstm" else 0.0),
                   x, h0) for n in PAIRS[cell]}
    scan, loop = (outs[n] for n in PAIRS[cell])
    assert close(scan[0], loop[0]) and close(scan[1], loop[1])
    for name in loop[2]:
        assert close(scan[2][name], loop[2][name]), name
    model = registry.create(PAIRS[cell][0], I, H, dtype="float64", seed=2,
                            forget_bias=1.0 if cell == "minlstm" else 0.0)
    p = {n: v.detach().clone().requires_grad_(True) for n, v in model.canonical().items()}
    xr, hr = x.clone().requires_grad_(True), h0[0].clone().requires_grad_(True)
    y = paper(cell, p, xr, hr)
    gen = torch.Generator().manual_seed(9)
    (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum().add(
        (y[-1] * torch.randn((1, B, H), generator=gen, dtype=y.dtype)[0]).sum()).backward()
    assert close(scan[0], y.detach()) and close(scan[1][0], y[-1].detach())
    for name, v in p.items():
        assert close(scan[2][name], v.grad), name
    assert close(scan[2]["x"], xr.grad) and close(scan[2]["h0"][0], hr.grad)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_stacks_agree_scan_and_loop(cell):
    """Two layers, both directions, dropout 0: the shared stack around each kernel, scan = loop."""
    T, B, I, H = 20, 2, 3, 4
    shape = Shape(layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(4, B, H, dtype=torch.float64)
    scan, loop = (run(registry.create(n, I, H, dtype="float64", seed=3, shape=shape), x, h0) for n in PAIRS[cell])
    assert scan[0].shape == (T, B, 2 * H) and scan[1].shape == (4, B, H)
    assert close(scan[0], loop[0]) and close(scan[1], loop[1])
    for name in loop[2]:
        assert close(scan[2][name], loop[2][name]), name


@pytest.mark.parametrize("name", MIN)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_equals_each_sequence_alone(name, bidirectional):
    T, B, I, H = 70, 3, 3, 4
    shape = Shape(bidirectional=bidirectional)
    model = registry.create(name, I, H, dtype="float64", seed=4, shape=shape, lengths_mode="masked")
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.zeros(shape.directions, B, H, dtype=torch.float64)
    lengths = torch.tensor([70, 9, 65])
    y, h, grads = run(model, x, h0, lengths)
    for b, n in enumerate(lengths.tolist()):
        yb, (hb,) = model(x[:n, b:b + 1], (h0[:, b:b + 1],))
        assert close(y[:n, b], yb[:, 0].detach()) and close(h[:, b], hb[:, 0].detach())
        assert torch.all(y[n:, b] == 0)
    assert all(torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("name", MIN)
def test_zero_initial_state_gives_no_nan(name):
    model = registry.create(name, 4, 5, seed=0)
    x = torch.randn(30, 2, 4)
    y, h, grads = run(model, x, torch.zeros(1, 2, 5))
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["h0"].abs().sum() > 0                      # h0 still reaches the output
    y2, _ = model(x)                                        # state=None: zeros
    assert torch.equal(y2.detach(), y)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_float32_at_T4096_is_finite_and_within_tolerance(cell):
    T, B, I, H = 4096, 2, 8, 16
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
    ref = registry.create(PAIRS[cell][1], I, H, dtype="float64", seed=0)
    want, _ = ref(x.double())
    model = registry.create(PAIRS[cell][0], I, H, dtype="float32", seed=0)
    got, _ = model(x)
    got.sum().backward()
    assert torch.isfinite(got).all() and all(torch.isfinite(p.grad).all() for p in model.parameters())
    tol = accuracy.TOLERANCES["float32"]
    assert accuracy.relative_error(got, want) < tol
    model.scan_chunk = T                                    # the one-block form: a*_T ~ -0.7 T, and float32 loses it
    whole, _ = model(x)
    assert accuracy.relative_error(whole, want) > tol


def test_scan_blocks_do_not_change_the_function():
    """Any block size, T a multiple of it or not, is the one recurrence (float64)."""
    T, B, H = 50, 2, 3
    gen = torch.Generator().manual_seed(0)
    la = -torch.rand(T, B, H, generator=gen, dtype=torch.float64)
    lb = torch.randn(T, B, H, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    h, want = h0, []
    for t in range(T):
        h = la[t].exp() * h + lb[t].exp()
        want.append(h)
    for chunk in (1, 7, 50, 64):
        assert close(minrnn.scan(la, lb, h0, chunk), torch.stack(want), 1e-12), chunk


@pytest.mark.parametrize("cell,f_bias,i_bias", [("minlstm", 1.0, -0.5), ("minlstm", 0.0, 0.0), ("mingru", -1.0, 0.0)])
def test_decay_factor_is_the_closed_form(cell, f_bias, i_bias):
    """Gates with no input weights and one bias each, and h~'s bias so large that g is on its linear branch
    (g' = 1): dL/dx_t = a^(T-t) (i' W_h)^T g / B exactly, a = f' (minLSTM) or 1 - z (minGRU); so the fitted
    decay factor is a, and the loop's ||dL/dh_t|| is the closed form ||g (prod a) / B||."""
    T, B, I, H = 25, 2, 3, 4
    scan, loop = (registry.create(n, I, H, dtype="float64", seed=1) for n in PAIRS[cell])
    for model in (scan, loop):
        with torch.no_grad():
            w, b = model.weight_ih_l0, model.bias_ih_l0
            gates = H if cell == "mingru" else 2 * H
            w[:gates].zero_()
            b[-H:] = 50.0                                      # k_h >> 0: g(v) = v + 1/2
            if cell == "mingru":
                b[:H] = f_bias                                 # z's bias: a = 1 - sigmoid(b)
            else:
                b[:H], b[H:2 * H] = i_bias, f_bias
    a = (1 - 1 / (1 + math.exp(-f_bias)) if cell == "mingru" else
         (1 / (1 + math.exp(-f_bias))) / (1 / (1 + math.exp(-f_bias)) + 1 / (1 + math.exp(-i_bias))))
    x, g = gradients.probe_input(T, B, I, 0), gradients.probe_vector(H, 0)
    for model in (scan, loop):
        norms = gradients.grad_norms(model, x, g, states=model is loop)
        for t, v in enumerate(norms["x"], start=1):
            assert v / norms["x"][-1] == pytest.approx(a ** (T - t), rel=1e-9)
        assert gradients.fit_decay(norms["x"])[0] == pytest.approx(a, rel=1e-9)
    closed = gradients.closed_form(loop, x, g)
    assert len(closed) == T
    for got, want in zip(norms["h"], closed, strict=True):
        assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("name", ["minlstm-loop", "mingru-loop", "minlstm-scan"])
def test_closed_form_equals_dL_dh_at_initialisation(name):
    """With the drawn weights the gates vary with x; dL/dh_t is still g times the product of a_s for s > t."""
    T, B, I, H = 30, 3, 4, 5
    model = registry.create(name, I, H, dtype="float64", seed=6, forget_bias=1.0 if "lstm" in name else 0.0)
    x, g = gradients.probe_input(T, B, I, 6), gradients.probe_vector(H, 6)
    closed = gradients.closed_form(model, x, g)
    loop = registry.create(name.replace("scan", "loop"), I, H, dtype="float64", seed=6,
                           forget_bias=1.0 if "lstm" in name else 0.0)
    h = gradients.grad_norms(loop, x, g, states=True)["h"]
    assert max(abs(p - q) / q for p, q in zip(h, closed, strict=True)) < 1e-10


def test_forget_bias_lands_on_the_minlstm_forget_rows():
    a = registry.create("minlstm-scan", 3, 4, dtype="float64", seed=1)
    b = registry.create("minlstm-scan", 3, 4, dtype="float64", seed=1, forget_bias=2.0)
    diff = b.bias_ih_l0 - a.bias_ih_l0
    assert torch.equal(diff.detach(), torch.tensor([0.0] * 4 + [2.0] * 4 + [0.0] * 4, dtype=torch.float64))
    assert set(a.canonical()) == {"weight_ih_l0", "bias_ih_l0"}
    assert a.weight_ih_l0.shape == (12, 3)
    assert registry.create("mingru-loop", 3, 4).weight_ih_l0.shape == (8, 3)
    with pytest.raises(ValueError, match="forget_bias applies to LSTM and minLSTM cells only, not mingru-scan"):
        registry.create("mingru-scan", 3, 4, forget_bias=1.0)


@pytest.mark.parametrize("kwargs,reason", [
    ({"spectral_radius": 1.5}, "mingru-scan has no recurrent matrix: spectral_radius has nothing to act on"),
    ({"init": "orthogonal"}, "mingru-scan has no recurrent matrix: init 'orthogonal' has nothing to act on"),
    ({"shape": Shape(proj_size=2)}, "mingru-scan has no proj_size \\(no recurrent matrix"),
    ({"lengths_mode": "packed"}, "mingru-scan has no packed mode for variable lengths; it runs masked, padded"),
])
def test_what_a_min_model_lacks(kwargs, reason):
    with pytest.raises((Skip, ValueError), match=reason):
        registry.create("mingru-scan", 3, 4, **kwargs)


@pytest.mark.skipif(gemm.missing("onednn", "cpu", torch.float32) is not None, reason="no oneDNN matmul here")
@pytest.mark.parametrize("name", MIN)
def test_onednn_gemm_computes_the_same(name):
    x = torch.randn(40, 2, 6)
    a, _ = registry.create(name, 6, 8, seed=1)(x)
    b, _ = registry.create(name, 6, 8, seed=1, gemm="onednn")(x)
    assert accuracy.relative_error(b, a.double()) < 1e-5


@pytest.mark.parametrize("name", MIN)
def test_bfloat16_autocast_runs_and_stays_near(name):
    x = torch.randn(200, 2, 8)
    model = registry.create(name, 8, 8, seed=1)
    want, _ = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = model(x)
    got.float().sum().backward()
    assert accuracy.relative_error(got.float(), want.double()) < accuracy.TOLERANCES["bfloat16"]


@pytest.mark.parametrize("name", MIN)
@pytest.mark.parametrize("T,B,H", [(128, 8, 16), (200, 4, 32)])
def test_what_the_forward_keeps_is_the_count(name, T, B, H):
    """minrnn.KEPT, counted op by op, is what autograd saves (less the input; the scan's block carries are n*B*H)."""
    model = registry.create(name, H, H)
    x = torch.randn(T, B, H)
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    cell, mode = name.split("-")
    want = minrnn.kept_bytes(mode, cell, B, T, H, itemsize=4)
    assert abs(sum(saved.values()) - x.numel() * 4 - want) <= 0.01 * want


@pytest.mark.parametrize("name", MIN)
def test_peak_memory_grows_linearly_in_T(name):
    from harness.measure import memory
    model = registry.create(name, 32, 32)

    def peak(T):
        x = torch.randn(T, 4, 32)
        return memory.peak_bytes(lambda: model(x)[0].sum().backward(), "cpu")

    assert 1.8 < peak(256) / peak(128) < 2.2


def test_the_scans_backward_is_the_recurrences_gradient():
    gen = torch.Generator().manual_seed(3)
    la = (-torch.rand(70, 2, 3, generator=gen, dtype=torch.float64)).requires_grad_(True)
    lb = torch.randn(70, 2, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    h0 = torch.randn(2, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, h: minrnn.scan(a, b, h, 16), (la, lb, h0))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_far_gradient_keeps_its_precision_in_float32(cell):
    """||dL/dx_t|| a hundred steps from the loss is about 1e-25 of the near one: the float32 scan's curve is the
    float64 loop's to 1e-3 at every distance, so the fitted decay factor is the loop's."""
    T, B, H = 100, 4, 64
    x, g = gradients.probe_input(T, B, H, 0), gradients.probe_vector(H, 0)
    want = gradients.grad_norms(registry.create(PAIRS[cell][1], H, H, dtype="float64"), x, g)["x"]
    got = gradients.grad_norms(registry.create(PAIRS[cell][0], H, H, dtype="float32"), x, g)["x"]
    assert want[0] / want[-1] < 1e-20
    assert max(abs(p / q - 1) for p, q in zip(got, want, strict=True)) < 1e-3
    assert gradients.fit_decay(got)[0] == pytest.approx(gradients.fit_decay(want)[0], rel=1e-4)


def test_a_min_cells_one_step_jacobian_is_its_largest_a_gate():
    from harness.measure import jacobian
    model = registry.create("minlstm-scan", 3, 4, dtype="float64", seed=2, forget_bias=1.0)
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    got = jacobian.rows(model, x, "tanh", {})
    p = {k: v.detach() for k, v in model.canonical().items()}
    a, _ = minrnn.coefficients("minlstm", x @ p["weight_ih_l0"].t() + p["bias_ih_l0"])     # (T, B, H)
    step, _ = jacobian._step("minlstm", p, "tanh")
    for row in got:
        t = row["t"]
        assert row["jacobian_norm"] == pytest.approx(a[t - 1].amax(1).mean().item(), rel=1e-12)
        assert row["forget_mean"] == pytest.approx(a[t - 1].mean().item(), rel=1e-12)
        h = torch.rand(2, 4, dtype=torch.float64)          # and the power iteration agrees on diag(a_t)
        power = jacobian.top_singular_values(lambda s, xt=x[t - 1]: step(xt, s)[0], h)
        assert power.mean().item() == pytest.approx(row["jacobian_norm"], rel=1e-6)


def test_keys_a_min_model_lacks_make_skipped_rows_in_a_sweep(tmp_path):
    """In a section beside the LSTM: spectral_radius and proj_size skip the min models with why; nonlinearity
    collapses; minLSTM takes forget_bias (its f gate), minGRU lets it collapse."""
    import csv
    import textwrap

    from harness.config import scenario
    from harness.run import sweep
    p = tmp_path / "m.toml"
    p.write_text(textwrap.dedent("""
        name = "m"
        [defaults]
        threads = 1
        [[gradients]]
        impl = ["fused-lstm", "minlstm-loop", "mingru-loop"]
        hidden = 4
        seq_len = 6
        seeds = 2
        forget_bias = 1.0
        init = "orthogonal"
        spectral_radius = 1.0
        [[throughput]]
        impl = ["fused-lstm", "mingru-scan"]
        hidden = 4
        seq_len = 3
        batch = 2
        phase = "forward"
        proj_size = [0, 2]
        rounds = 2
        warmup = 0
        memory = false
    """))
    sc = scenario.load(p)
    cases = scenario.expand(sc)
    assert [(c.impl, c.forget_bias) for c in cases if c.section == "gradients"] == [
        ("fused-lstm", 1.0), ("minlstm-loop", 1.0), ("mingru-loop", None)]
    run, rows = sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    with open(run.dir / "decay.csv", newline="") as f:
        decay = {r["impl"]: (r["status"], r["reason"]) for r in csv.DictReader(f)}
    assert decay["fused-lstm"][0] == "ok"
    for name in ("minlstm-loop", "mingru-loop"):
        assert decay[name] == ("skipped", f"{name} has no recurrent matrix: spectral_radius has nothing to act on "
                                          "(its gates read x_t only)")
    status = {(r["impl"], r["proj_size"]): (r["status"], r["reason"]) for r in rows}
    assert status[("mingru-scan", 0)][0] == status[("fused-lstm", 2)][0] == "ok"
    assert status[("mingru-scan", 2)] == ("skipped", "mingru-scan has no proj_size (" + registry.MIN_LACKS + ")")


def test_a_gradients_case_of_a_min_cell_holds_its_closed_form():
    from harness.config.cases import GradientCase
    case = GradientCase(impl="minlstm-scan", device="cpu", dtype="float64", hidden=4, input=3, seq_len=9, batch=2,
                        init="pytorch", forget_bias=1.0, nonlinearity=None, seed=0, seeds=2, threads=1)
    rows, decay = gradients.run_case(case, "r")
    assert sorted({r["wrt"] for r in rows}) == ["gates", "x"] and [d["wrt"] for d in decay] == ["x", "gates"]
    model = registry.create("minlstm-scan", 3, 4, dtype="float64", seed=1, forget_bias=1.0)
    want = gradients.closed_form(model, gradients.probe_input(9, 2, 3, 1), gradients.probe_vector(4, 1))
    got = [r["grad_norm"] for r in rows if r["wrt"] == "gates" and r["seed"] == 1]
    assert got == want
