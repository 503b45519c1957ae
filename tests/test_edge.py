"""The edge between vanishing and exploding: spectral_radius, the identity init, the linear RNN,
and the dynamics recorded while a task trains, each against an exact answer."""
import pytest
import torch

from harness import cli
from harness.config.cases import TaskCase
from harness.core.errors import Skip
from harness.implementations import params, registry
from harness.implementations.models import Shape
from harness.measure import gradients, jacobian, tasks
from harness.store.columns import DYNAMICS_COLUMNS

RHOS = [0.5, 0.9, 1.0, 1.1, 1.5]


def factor(model, T=30, H=8, seed=0):
    norms = gradients.grad_norms(model, gradients.probe_input(T, 2, model.input_size, seed),
                                 gradients.probe_vector(H, seed))["x"]
    f, n = gradients.fit_decay(norms)
    assert n == T - 1
    return f


@pytest.mark.parametrize("rho", RHOS)
def test_a_linear_rnn_with_w_rho_identity_has_factor_rho(rho):
    model = registry.create("scratch-rnn", 8, 8, dtype="float64", init="identity", nonlinearity="linear",
                            spectral_radius=rho)
    assert torch.equal(model.weight_hh_l0.detach(), rho * torch.eye(8, dtype=torch.float64))
    assert factor(model) == pytest.approx(rho, rel=1e-9)


@pytest.mark.parametrize("rho", RHOS)
def test_a_linear_rnn_with_w_rho_q_has_factor_rho_once_its_input_weights_are_orthogonal(rho):
    model = registry.create("scratch-rnn", 8, 8, dtype="float64", init="orthogonal", nonlinearity="linear",
                            spectral_radius=rho, seed=3)
    assert torch.linalg.svdvals(model.weight_hh_l0.detach()) == pytest.approx([rho] * 8, rel=1e-12)
    drawn = factor(model)                                   # U(-1/sqrt(H), 1/sqrt(H)) input weights: close
    assert drawn == pytest.approx(rho, rel=5e-3) and drawn != pytest.approx(rho, rel=1e-9)
    q, r = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64))
    with torch.no_grad():
        model.weight_ih_l0.copy_(q)
    assert factor(model) == pytest.approx(rho, rel=1e-9)


def test_every_gate_block_of_every_layer_and_direction_gets_the_spectral_radius():
    p = params.canonical_params("lstm", 5, 6, seed=1, shape=Shape(2, True))
    params.rescale_recurrent(p, "lstm", 1.25)
    blocks = [w[k * 6:(k + 1) * 6] for n, w in p.items() if n.startswith("weight_hh") for k in range(4)]
    assert len(blocks) == 16
    assert [round(params.spectral_radius(b), 12) for b in blocks] == [1.25] * 16
    assert params.spectral_radius(torch.diag(torch.tensor([0.5, -2.0, 1.0]))) == 2.0


def test_the_identity_init_keeps_pytorchs_input_weights_and_zeroes_the_biases():
    irnn = params.canonical_params("rnn", 3, 4, seed=5, init="identity")
    plain = params.canonical_params("rnn", 3, 4, seed=5)
    assert torch.equal(irnn["weight_ih_l0"], plain["weight_ih_l0"])
    assert torch.equal(irnn["weight_hh_l0"], torch.eye(4, dtype=torch.float64))
    assert irnn["bias_ih_l0"].abs().sum() == 0 and irnn["bias_hh_l0"].abs().sum() == 0
    with pytest.raises(ValueError, match="^init 'identity' applies to RNN cells only, not LSTM$"):
        params.canonical_params("lstm", 3, 4, init="identity")


def test_nn_rnn_has_no_linear_nonlinearity_so_torch_rnn_skips():
    with pytest.raises(Skip, match=r"^torch-rnn has no linear nonlinearity \(it has tanh, relu\); scratch-rnn has$"):
        registry.create("torch-rnn", 3, 4, nonlinearity="linear")


def test_dynamics_of_a_linear_rnn_are_its_recurrent_matrix():
    model = registry.create("scratch-rnn", 4, 8, dtype="float64", init="identity", nonlinearity="linear",
                            spectral_radius=0.7)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    rows = jacobian.rows(model, x, "linear", {"seed": 0})
    assert [r["t"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["jacobian_norm"] for r in rows] == pytest.approx([0.7] * 5, rel=1e-12)
    assert {r["forget_mean"] for r in rows} == {""} and {r["seed"] for r in rows} == {0}
    model = registry.create("scratch-rnn", 4, 8, dtype="float64", nonlinearity="linear", seed=3)
    top = torch.linalg.svdvals(model.weight_hh_l0.detach())[0].item()
    assert jacobian.rows(model, x, "linear", {})[0]["jacobian_norm"] == pytest.approx(top, rel=1e-6)


def test_dynamics_of_an_lstm_match_its_explicit_jacobian():
    model = registry.create("torch-lstm", 3, 5, dtype="float64", seed=2)
    p = model.canonical()
    x = torch.randn(4, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(11))   # slow to converge
    step, _ = jacobian._step("lstm", {k: v.detach() for k, v in p.items()}, "tanh")
    s = torch.zeros(1, 10, dtype=torch.float64)
    want = []
    for xt in x:
        J = torch.autograd.functional.jacobian(lambda state, xt=xt: step(xt, state)[0], s)   # (1, 10, 1, 10)
        want.append(torch.linalg.svdvals(J[0, :, 0, :])[0].item())
        s = step(xt, s)[0]
    got = [r["jacobian_norm"] for r in jacobian.rows(model, x, "tanh", {})]
    assert got == pytest.approx(want, rel=1e-9)        # converged power iteration: the top value


@pytest.mark.parametrize(("bias", "open_fraction"), [(30.0, 1.0), (-30.0, 0.0)])
def test_the_forget_gate_is_read_where_it_is_pinned(bias, open_fraction):
    model = registry.create("fused-lstm", 3, 5, dtype="float64", forget_bias=bias)
    rows = jacobian.rows(model, torch.randn(3, 2, 3, dtype=torch.float64), "tanh", {})
    assert [r["forget_open"] for r in rows] == [open_fraction] * 3
    assert all(abs(r["forget_mean"] - open_fraction) < 1e-9 for r in rows)


def test_a_long_sequence_is_measured_at_evenly_spaced_steps():
    model = registry.create("scratch-rnn", 2, 3, dtype="float64")
    rows = jacobian.rows(model, torch.randn(49, 1, 2, dtype=torch.float64), "tanh", {})
    assert [r["t"] for r in rows] == [1, 6, 12, 17, 22, 28, 33, 38, 44, 49]
    assert jacobian.rows(registry.create("fused-lstm", 2, 3, shape=Shape(2)), torch.randn(4, 1, 2), "tanh", {}) == []


def test_a_task_records_dynamics_at_its_start_middle_and_end():
    case = TaskCase(task="adding", impl="torch-rnn", device="cpu", dtype="float32", hidden=4, seq_len=6, batch=2,
                    steps=4, lr=1e-3, clip=1.0, forget_bias=None, init="identity", seed=0, threads=1, eval_every=2,
                    eval_size=3, nonlinearity="relu", spectral_radius=0.9)
    train, curves, dyn = tasks.run_case(case, "r")
    assert sorted({r["train_step"] for r in dyn}) == [0, 2, 4] and len(dyn) == 3 * 6
    assert set(dyn[0]) == set(DYNAMICS_COLUMNS) - {"case_id"}
    assert (dyn[0]["init"], dyn[0]["nonlinearity"], dyn[0]["spectral_radius"]) == ("identity", "relu", 0.9)
    assert dyn[0]["jacobian_norm"] == pytest.approx(0.9, rel=1e-5)     # h_0 = 0 and relu's slope is 1 where z > 0
    assert (train[0]["init"], train[0]["nonlinearity"], train[0]["steps"]) == ("identity", "relu", 4)


@pytest.mark.parametrize(("body", "line"), [
    ('impl = "scratch-rnn"\nspectral_radius = [1.0, 0]',
     "[[gradients]] #1, key 'spectral_radius': must be positive, not 0"),
    ('impl = "fused-lstm"\ninit = "identity"',
     "[[gradients]] #1, key 'init': 'identity' applies to RNN implementations only, not fused-lstm "
     "(put it in a section of its own)"),
    ('impl = "scratch-rnn"\nnonlinearity = "sigmoid"', "[[gradients]] #1, key 'nonlinearity': "),
])
def test_bad_edge_keys_are_one_line(tmp_path, capsys, body, line):
    f = tmp_path / "e.toml"
    f.write_text(f'name = "e"\n[[gradients]]\n{body}\nhidden = 4\nseq_len = 5\n')
    assert cli.main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert line in err and len(err.splitlines()) == 1, err
