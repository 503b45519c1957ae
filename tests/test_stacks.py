"""Stacks and variable lengths through the whole harness: the timed step, the rows, the costs, the figures."""
import textwrap

import pandas as pd
import pytest
import torch

from harness.analysis import ratios, summary, tables
from harness.config import cases, scenario
from harness.config.cases import ThroughputCase
from harness.implementations import fused, lengths, registry
from harness.implementations.models import Shape
from harness.measure import memory, timing
from harness.report import figures, views
from harness.run import sweep
from harness.store.runs import read_rows

TINY = """
    name = "stacked"
    [defaults]
    threads = 1
    rounds = 2
    warmup = 0
    [[throughput]]
    impl = ["fused-lstm", "torch-lstm"]
    hidden = 4
    seq_len = 4
    batch = 6
    phase = "train"
    memory = false
    layers = [1, 2]
    bidirectional = [false, true]
    [[throughput]]
    impl = ["fused-lstm", "torch-lstm"]
    hidden = 4
    seq_len = 4
    batch = 6
    phase = "train"
    memory = false
    lengths = "uniform:3-5"
    lengths_mode = ["packed", "masked", "padded"]
"""


def case(**kw):
    base = dict(impl="fused-lstm", device="cpu", dtype="float32", hidden=4, input=4, seq_len=5, batch=6,
                phase="train", seed=0, threads=1, rounds=2, warmup=0, memory=False)
    return ThroughputCase(**{**base, **kw})


def test_lengths_are_drawn_from_the_seed():
    a = lengths.draw("uniform:3-5", 6, 5, seed=0)
    assert torch.equal(a, lengths.draw("uniform:3-5", 6, 5, seed=0)) and a.dtype == torch.int64
    assert a.min() >= 3 and a.max() <= 5 and not torch.equal(a, lengths.draw("uniform:3-5", 6, 5, seed=1))
    assert lengths.draw("fixed", 6, 5, seed=0) is None
    assert lengths.padding_fraction(torch.tensor([5, 3]), 5) == pytest.approx(0.2)


def test_reverse_within_lengths_keeps_the_padding_in_place():
    vl = lengths.Batch.make(torch.tensor([3, 1]), 4, "masked", "cpu")
    x = torch.arange(8.0).view(4, 2, 1)                     # x[t, b] = 2t + b
    assert lengths.reverse(x, vl)[:, :, 0].tolist() == [[4, 1], [2, 3], [0, 5], [6, 7]]
    packed = lengths.Batch.make(torch.tensor([2, 4, 1]), 4, "packed", "cpu")
    assert packed.batch_sizes == [3, 2, 1, 1] and packed.lengths.tolist() == [4, 2, 1]


def test_a_variable_length_step_counts_real_tokens_and_masks_the_loss():
    step = timing.build_step(case(lengths="uniform:3-5", lengths_mode="padded"))
    drawn = lengths.draw("uniform:3-5", 6, 5, seed=0)
    assert step.tokens == int(drawn.sum()) and step.padding_fraction == pytest.approx(1 - drawn.sum().item() / 30)
    step.setup()
    step.run()
    grads = {n: p.grad.clone() for n, p in step.model.canonical().items()}
    # the same gradients as the loss over each sequence's own steps, computed by hand
    model = registry.create("fused-lstm", 4, 4, seed=0)
    x = torch.randn(5, 6, 4, generator=torch.Generator().manual_seed(1)) * lengths.mask(drawn, 5)
    y, _ = model(x)
    (y * lengths.mask(drawn, 5)).sum().backward()
    assert all(torch.allclose(grads[n], p.grad) for n, p in model.canonical().items())


def test_dropout_steps_train_and_forward_steps_do_not():
    assert timing.build_step(case(layers=2, dropout=0.5)).model.training
    assert not timing.build_step(case(layers=2, phase="forward")).model.training


@pytest.mark.parametrize("shape", [Shape(1), Shape(4), Shape(2, True)], ids=str)
@pytest.mark.parametrize("name", ["fused-lstm", "torch-lstm", "onednn-lstm"])
def test_preflight_estimate_covers_layers_and_directions(name, shape):
    """The estimate bounds the measured peak from above, and not by more than 4x."""
    T, B, H = 30, 8, 32
    model = registry.create(name, H, H, shape=shape)
    x = torch.randn(T, B, H)
    measured = memory.peak_bytes(lambda: model(x)[0].sum().backward(), "cpu")
    estimate = memory.estimate_bytes("lstm", "float32", B, T, H, H, train=True, shape=shape)
    assert measured <= estimate <= 4 * measured, (measured, estimate)


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_fused_lstm_memory_of_a_stack_matches_analytic_estimate(layers):
    """(8 L + 4) T B H: every layer's activations and output, and the last layer's input projection."""
    T, B, H = 40, 8, 32
    x = torch.randn(T, B, H)
    model = registry.create("fused-lstm", H, H, shape=Shape(layers))
    measured = memory.peak_bytes(lambda: model(x)[0].sum().backward(), "cpu")
    estimate = fused.train_peak_bytes(B, T, H, itemsize=4, layers=layers)
    assert abs(measured - estimate) <= 0.1 * estimate, (measured, estimate)


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stacked")
    (root / "s.toml").write_text(textwrap.dedent(TINY))
    run, rows = sweep.run_sweep(scenario.load(root / "s.toml"), root / "results", quiet=True)
    return root, run, rows


def test_stacked_rows(stacked_run):
    _, run, _ = stacked_run
    rows = read_rows(run.dir / "timings.csv")
    assert len(rows) == 2 * 4 + 2 * 3
    skipped = [(r["impl"], r["lengths_mode"], r["reason"]) for r in rows if r["status"] != "ok"]
    assert skipped == [("torch-lstm", "masked", "torch-lstm has no masked mode for variable lengths; it runs "
                                                "packed, padded")]
    drawn = int(lengths.draw("uniform:3-5", 6, 5, seed=0).sum())
    var = [r for r in rows if r["lengths"] != "fixed" and r["status"] == "ok"]
    assert {(r["seq_len"], r["tokens"]) for r in var} == {("5", str(drawn))}
    assert all(float(r["tokens_per_s"]) == pytest.approx(drawn / float(r["time_median_s"])) for r in var)
    stacked = [r for r in rows if r["layers"] == "2" and r["bidirectional"] == "True" and r["impl"] == "torch-lstm"]
    [r] = stacked
    assert int(r["params"]) == sum(p.numel() for p in torch.nn.LSTM(4, 4, 2, bidirectional=True).parameters())
    assert r["random_outputs"] == "False" and r["lengths_mode"] == ""


def test_stacked_costs_and_figures(stacked_run):
    root, run, _ = stacked_run
    runs = tables.load_runs([run.dir])
    lc = ratios.layer_costs(runs.tables["timings"], runs.tables["rounds"])
    assert sorted(set(zip(lc["impl"], lc["layers"], lc["directions"], strict=True))) == [
        (i, L, d) for i in ("fused-lstm", "torch-lstm") for L in (1, 2) for d in (1, 2)]
    one = lc[(lc["layers"] == 1) & (lc["directions"] == 1)]
    assert (one["ratio"] == 1.0).all()
    vc = ratios.lengths_costs(runs.tables["timings"], runs.tables["rounds"])
    drawn = int(lengths.draw("uniform:3-5", 6, 5, seed=0).sum())
    assert sorted(zip(vc["impl"], vc["lengths_mode"], strict=True)) == [
        ("fused-lstm", "masked"), ("fused-lstm", "packed"), ("fused-lstm", "padded"), ("torch-lstm", "packed"),
        ("torch-lstm", "padded")]
    assert set(vc["spread"]) == {2} and set(vc["fixed_tokens"]) == {24} and set(vc["tokens"]) == {drawn}
    assert (vc["cost_ci_low"] <= vc["cost"]).all() and (vc["cost"] <= vc["cost_ci_high"]).all()
    figs = [figures.layer_cost(lc), figures.lengths_cost(vc)]
    assert [len(f.axes) for f in figs] == [1, 2]                  # one size; one panel per implementation
    for f in figs:
        figures.plt.close(f)
    table = views.summary_view(summary.summary(runs.tables["timings"]))
    assert {"1 layer", "2 layers, bidirectional", "uniform:3-5 packed"} <= set(table["stack"])


def test_claims_compare_one_plain_layer_only():
    t = pd.DataFrame([{"status": "ok", "layers": 1, "bidirectional": "False", "proj_size": 0, "dropout": 0.0,
                       "lengths": "fixed", "lengths_mode": ""},
                      {"status": "ok", "layers": 4, "bidirectional": "True", "proj_size": 0, "dropout": 0.0,
                       "lengths": "uniform:30-100", "lengths_mode": "packed"}])
    t["stack"] = [cases.stack_label(r) for r in t.to_dict("records")]
    assert t["stack"].tolist() == ["", "4 layers, bidirectional, uniform:30-100 packed"]
    assert len(tables.plain(t)) == 1


def test_gradients_and_tasks_take_layers():
    from harness.config.cases import GradientCase, TaskCase
    from harness.measure import gradients, tasks
    g = GradientCase(impl="fused-lstm", device="cpu", dtype="float32", hidden=8, input=8, seq_len=6, batch=2,
                     init="pytorch", forget_bias=0.0, nonlinearity=None, seed=0, seeds=2, threads=1, layers=2)
    curves, decay = gradients.run_case(g, "r")
    assert {r["wrt"] for r in curves} == {"x"}                 # the states of one layer only: x's curve
    assert {r["layers"] for r in curves + decay} == {2} and len(curves) == 2 * 6
    one = gradients.run_case(GradientCase(**{**g.__dict__, "layers": 1}), "r")[0]
    assert [r["grad_norm"] for r in one if r["wrt"] == "x"] != [r["grad_norm"] for r in curves]
    t = TaskCase(task="adding", impl="torch-lstm", device="cpu", dtype="float32", hidden=8, seq_len=10, batch=8,
                 steps=2, lr=1e-2, clip=1.0, forget_bias=0.0, init="pytorch", seed=0, threads=1, eval_every=1,
                 eval_size=16, layers=3)
    rows, _, _ = tasks.run_case(t, "r")
    assert {r["layers"] for r in rows} == {3} and t.slug == "adding_torch-lstm_cpu_t10_h8_l3"
