"""The FLOP model against FlopCounterMode, and the memory figure against an analytic estimate."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.implementations import fused, registry
from harness.implementations.models import ONE_LAYER, Shape
from harness.measure import flops, memory


def counted(model, x, state, train):
    with FlopCounterMode(display=False) as counter:
        y, final = model(x, state)
        if train:
            y.sum().backward()
    return counter.get_total_flops()


def counted_case(name, T, B, I, H, shape=ONE_LAYER, lengths=None):
    """(forward, train) FLOPs FlopCounterMode counts, with x and the initial state needing gradients."""
    model = registry.create(name, I, H, dtype="float64", shape=shape, lengths_mode="packed" if lengths is not None
                            else None)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(s.shape, dtype=torch.float64, requires_grad=True) for s in model.zero_state(B))
    out = []
    for train in (False, True):
        with FlopCounterMode(display=False) as counter:
            y, _ = model(x, state, lengths)
            if train:
                y.sum().backward()
        out.append(counter.get_total_flops())
    return out


@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "scratch-rnn"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 5), (7, 4, 6, 9), (12, 3, 16, 8)])
def test_flop_model_matches_flop_counter(name, T, B, I, H):
    cell = registry.get(name).cell
    assert counted_case(name, T, B, I, H) == [flops.flops(cell, B, T, H, I, p) for p in ("forward", "train")]


STACKS = [Shape(2), Shape(1, True), Shape(3, True), Shape(2, False, 3), Shape(2, True, 3)]


@pytest.mark.parametrize("shape", STACKS, ids=str)
@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "scratch-rnn", "mingru-scan", "minlstm-loop"])
def test_flop_model_covers_layers_directions_and_projection(name, shape):
    if shape.proj_size and name != "scratch-lstm" and name != "fused-lstm":
        pytest.skip("proj_size is an LSTM's only")
    cell = registry.get(name).cell
    assert counted_case(name, 6, 3, 5, 7, shape) == [flops.flops(cell, 3, 6, 7, 5, p, shape) for p in
                                                     ("forward", "train")]


@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "scratch-rnn"])
def test_flop_model_counts_real_tokens_only(name):
    """Packed, the scratch models run the real steps only: the FLOPs of 3 + 8 + 5 tokens, not 3 * 8."""
    cell, shape = registry.get(name).cell, Shape(2, True)
    lengths = torch.tensor([3, 8, 5])
    got = counted_case(name, 8, 3, 4, 6, shape, lengths)
    assert got == [flops.flops(cell, 3, 8, 6, 4, p, shape, tokens=16) for p in ("forward", "train")]


def test_flop_model_stack_literals():
    # layer 0: 4*8*(5+8) = 416 per direction; layer 1 takes 2*8 = 16 wide: 4*8*(16+8) = 768; per token 2*(416+768)
    assert flops.flops("lstm", 2, 3, 8, 5, "forward", Shape(2, True)) == 2 * 6 * 2 * (416 + 768) == 28416
    # proj 3: layer 0 4*8*(5+3) + 3*8 = 280; layer 1 (input 3) 4*8*(3+3) + 24 = 216
    assert flops.flops("lstm", 1, 1, 8, 5, "forward", Shape(2, False, 3)) == 2 * (280 + 216) == 992


def test_flop_model_literals():
    assert flops.flops("lstm", 32, 100, 256, 256, "forward") == 2 * 32 * 100 * 4 * 256 * 512 == 3355443200
    assert flops.flops("rnn", 32, 100, 256, 256, "train") == 3 * 2 * 32 * 100 * 256 * 512
    assert flops.flops("gru", 1, 1, 2, 3, "forward") == 2 * 3 * 2 * 5


def test_flop_model_is_an_upper_bound_when_timed():
    """As timed, x and the initial state need no gradient: the counted train FLOPs are a little lower."""
    model = registry.create("scratch-lstm", 8, 8, dtype="float64")
    x = torch.randn(10, 2, 8, dtype=torch.float64)
    got = counted(model, x, model.zero_state(2), train=True)
    model_flops = flops.flops("lstm", 2, 10, 8, 8, "train")
    assert flops.flops("lstm", 2, 10, 8, 8, "forward") * 2 < got < model_flops


@pytest.mark.parametrize("T,B,H", [(50, 16, 64), (100, 8, 128), (20, 32, 32)])
def test_fused_lstm_memory_matches_analytic_estimate(T, B, H):
    model = registry.create("fused-lstm", H, H)
    x = torch.randn(T, B, H)

    def step():
        y, _ = model(x)
        y.sum().backward()

    measured = memory.peak_bytes(step, "cpu")
    estimate = fused.train_peak_bytes(B, T, H, itemsize=4)
    assert abs(measured - estimate) <= 0.2 * estimate, (measured, estimate)


def test_memory_scales_with_sequence_length():
    model = registry.create("fused-lstm", 32, 32)

    def peak(T):
        x = torch.randn(T, 4, 32)
        return memory.peak_bytes(lambda: model(x)[0].sum().backward(), "cpu")

    assert 1.8 < peak(80) / peak(40) < 2.2


def test_gemm_peak_from_known_times(monkeypatch):
    """A clock that reads 4, 2, 3, 6 and 5 ms for the five timed matmuls: the best and the median (the third of
    five) rate, to 1e-12."""
    ticks = iter([0.0, 0.004, 1.0, 1.002, 2.0, 2.003, 3.0, 3.006, 4.0, 4.005])
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(ticks))
    peak = flops.gemm_peak("cpu", torch.float32, size=64, reps=5)
    work = 2 * 64 ** 3                                                  # FLOPs of a 64^3 matmul
    assert peak == {"gemm_size": 64, "reps": 5, "gemm_peak_gflops_per_s": pytest.approx(work / 0.002 / 1e9, rel=1e-12),
                    "gemm_median_gflops_per_s": pytest.approx(work / 0.004 / 1e9, rel=1e-12), "library": "aten"}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("shape", [ONE_LAYER, Shape(3, True), Shape(2, False, 5)], ids=["1", "L3-bi", "L2-P5"])
@pytest.mark.parametrize("tokens", [None, 33])
def test_the_gemm_shapes_are_the_flop_model(cell, shape, tokens):
    """The forward's GEMMs, 2 m k n times each's count, sum to the FLOP model's forward: the shapes a case is held to
    are its FLOPs, split by shape (the projection: LSTM only)."""
    if shape.proj_size and cell != "lstm":
        pytest.skip("proj_size is an LSTM's only")
    shapes = flops.gemm_shapes(cell, 4, 10, 8, 6, shape, tokens)
    assert sum(2 * m * k * n * c for m, k, n, c in shapes) == pytest.approx(
        flops.flops(cell, 4, 10, 8, 6, "forward", shape, tokens), rel=1e-12)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    N = 40 if tokens is None else tokens
    assert shapes[:2] == [(N, 6, G * 8, 1.0), (4, shape.proj_size or 8, G * 8, N / 4)]    # layer 0: input, recurrent


def test_gemm_rate_is_work_over_the_best_sample(monkeypatch):
    """One warm-up call (1 ms: one call a sample), then five samples of 3, 2, 4, 2.5 and 5 ms: the best is 2 ms."""
    ticks = iter([0.0, 0.001, 1.0, 1.003, 2.0, 2.002, 3.0, 3.004, 4.0, 4.0025, 5.0, 5.005])
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(ticks))
    assert flops.gemm_rate("cpu", torch.float32, 8, 16, 32) == pytest.approx(2 * 8 * 16 * 32 / 0.002 / 1e9, rel=1e-12)
    monkeypatch.undo()
    assert flops.gemm_rate("cpu", torch.float32, 64, 64, 64, "onednn") > 0         # through oneDNN, measured
