"""The FLOP model against FlopCounterMode, and the memory figure against an analytic estimate."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness import flops, memory, registry


def counted(model, x, state, train):
    with FlopCounterMode(display=False) as counter:
        y, final = model(x, state)
        if train:
            y.sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "scratch-rnn"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 5), (7, 4, 6, 9), (12, 3, 16, 8)])
def test_flop_model_matches_flop_counter(name, T, B, I, H):
    cell = registry.get(name).cell
    model = registry.create(name, I, H, dtype="float64")
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2 if cell == "lstm" else 1))
    assert counted(model, x, state, train=False) == flops.flops(cell, B, T, H, I, "forward")
    assert counted(model, x, state, train=True) == flops.flops(cell, B, T, H, I, "train")


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
    estimate = memory.fused_lstm_estimate(B, T, H, itemsize=4)
    assert abs(measured - estimate) <= 0.2 * estimate, (measured, estimate)


def test_memory_scales_with_sequence_length():
    model = registry.create("fused-lstm", 32, 32)

    def peak(T):
        x = torch.randn(T, 4, 32)
        return memory.peak_bytes(lambda: model(x)[0].sum().backward(), "cpu")

    assert 1.8 < peak(80) / peak(40) < 2.2


def test_gemm_peak_from_known_times(monkeypatch):
    """A clock that reads 4, 2 and 3 ms for the three timed matmuls: the best and the median rate, exactly."""
    ticks = iter([0.0, 0.004, 1.0, 1.002, 2.0, 2.003])
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(ticks))
    peak = flops.gemm_peak("cpu", torch.float32, size=64, reps=3)
    work = 2 * 64 ** 3                                                  # FLOPs of a 64^3 matmul
    assert peak == {"gemm_size": 64, "reps": 3, "gemm_peak_gflops_per_s": pytest.approx(work / 0.002 / 1e9),
                    "gemm_median_gflops_per_s": pytest.approx(work / 0.003 / 1e9)}
