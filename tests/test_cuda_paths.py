"""CUDA code paths, fixed before a GPU sees them: tested on the CPU through mocks.

Each test replaces the torch.cuda functions a path calls with recorders that
answer as a GPU would, and checks what the harness did with the answers.
"""
import contextlib

import pytest
import torch
from test_sweep import write_tiny  # one tiny scenario for the tests of both

from harness.config import scenario
from harness.core import env
from harness.implementations import bptt, registry
from harness.measure import flops, memory, timing
from harness.run import sweep

GiB = 2**30


@pytest.fixture
def tf32_back():
    before = env.tf32_flags()
    yield before
    env.restore_tf32(before)


def test_free_memory_counts_pytorchs_own_cache(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (asked.append(d), (1 * GiB, 80 * GiB))[1])
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 5 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 2 * GiB)
    assert memory.available_bytes("cuda:1") == 4 * GiB          # 1 free at the driver + 3 cached, unused
    assert asked == [torch.device("cuda:1")]
    assert memory.why_too_large(int(3.5 * GiB), "cuda:1") == (
        "needs about 3.50 GiB by the preflight estimate, but only 4.00 GiB is free on cuda:1 (a case may use 80%)")
    assert memory.why_too_large(3 * GiB, "cuda:1") is None


def test_the_cache_is_emptied_on_the_cases_device(monkeypatch):
    calls = []

    @contextlib.contextmanager
    def on(device):
        calls.append(("device", device))
        yield

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", on)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    memory.release_cache("cpu")
    assert calls == []
    memory.release_cache("cuda:1")
    assert calls == [("device", torch.device("cuda:1")), "empty_cache"]


def test_the_sweep_releases_the_cache_before_every_case(tmp_path, monkeypatch):
    released = []
    monkeypatch.setattr(memory, "release_cache", released.append)
    sc = scenario.load(write_tiny(tmp_path))
    sc = sc.model_copy(update={"throughput": [sc.throughput[0].model_copy(update={"hidden": [4, 5]})]})
    sweep.run_sweep(sc, tmp_path / "r", quiet=True)
    assert released == ["cpu", "cpu"]


def test_gemm_peak_synchronises_the_device_it_measures(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    real_randn = torch.randn
    # the matmuls run on the CPU here; what matters is which device each sync names
    monkeypatch.setattr(torch, "randn", lambda *a, **k: _OnDevice(real_randn(*a, **k)))
    flops.gemm_peak("cuda:1", torch.float32, size=8, reps=2)
    assert synced == ["cuda:1"] * 3                                # the warm-up and each of the 2 reps


class _OnDevice(torch.Tensor):
    """A CPU tensor that accepts .to(device="cuda:N") and stays where it is."""

    @staticmethod
    def __new__(cls, t):
        return t.as_subclass(cls)

    def to(self, *args, device=None, dtype=None, **kw):
        return torch.Tensor.to(self.as_subclass(torch.Tensor), dtype=dtype)


def test_device_name_names_the_device_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: {0: "GPU zero", 1: "GPU one"}[torch.device(d).index])
    assert env.device_name("cuda:1") == "GPU one" and env.device_name("cuda:0") == "GPU zero"
    assert env.device_name("cpu") == env.cpu_model()


def test_bptt_gate_order_is_made_once_per_model(monkeypatch):
    model = registry.create("bptt-lstm", 3, 4, dtype="float64")
    assert model.gate_order.tolist() == [12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "gate_order" not in model.state_dict() and model.gate_order.dtype == torch.int64
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    ref_y, _ = model(x)
    ref_y.sum().backward()
    ref_grad = model.weight_hh_l0.grad.clone()
    model.zero_grad()

    def copied(*a):
        raise AssertionError("_order called inside a forward")

    monkeypatch.setattr(bptt, "_order", copied)
    y, _ = model(x)
    y.sum().backward()
    assert torch.equal(y, ref_y) and torch.equal(model.weight_hh_l0.grad, ref_grad)


def test_tf32_is_set_off_for_cuda_cases_recorded_and_restored(tmp_path, monkeypatch, tf32_back):
    """A cuda case on a machine that only pretends to have CUDA: it fails when built, but the flags it
    ran under are set, recorded in its row and beside its GEMM peak, and the caller's come back."""
    monkeypatch.setattr(registry, "device_missing", lambda device: None)
    seen = {}

    def peak(device, dtype, library="aten"):
        seen["peak"] = env.tf32_flags()
        return {"gemm_size": 8, "gemm_peak_gflops_per_s": 100.0, "gemm_median_gflops_per_s": 90.0, "reps": 1,
                "library": library}

    def build(case):
        seen["case"] = env.tf32_flags()
        return real_build(case)

    real_build = timing.build_step
    monkeypatch.setattr(flops, "gemm_peak", peak)
    monkeypatch.setattr(timing, "build_step", build)
    env.set_tf32(True)
    text = write_tiny(tmp_path).read_text().replace("[defaults]", '[defaults]\ndevice = "cuda"')
    (tmp_path / "cuda.toml").write_text(text)
    run, [row] = sweep.run_sweep(scenario.load(tmp_path / "cuda.toml"), tmp_path / "r", quiet=True)
    assert seen == {"peak": (False, False), "case": (False, False)}    # full float32 for the peak and the case
    assert row["tf32"] is False and row["status"] == "failed"       # this CPU torch has no CUDA to build on
    assert [(p.tf32, p.library, p.blas) for p in run.meta.gemm_peaks] == [(False, "aten", "cublas")]   # no oneDNN
    assert env.tf32_flags() == (True, True)                         # the process's own flags, back


@pytest.mark.parametrize("device,dtype,size", [("cuda:0", torch.float32, 8192), ("cpu", torch.float32, 2048),
                                               ("cpu", torch.float64, 1024)])
def test_gemm_peaks_default_size_and_reps(monkeypatch, device, dtype, size):
    """The default matmul is 8192 square on a GPU, 2048 on a CPU (1024 in float64), timed 5 times after a warm-up;
    the matrices here are 2 x 2 stand-ins, so only the sizes asked for and the calls are checked."""
    asked, mms = [], []
    real_randn, real_mm = torch.randn, torch.mm
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    moved = []

    class Recorded(_OnDevice):
        def to(self, *args, device=None, dtype=None, **kw):
            moved.append((device, dtype))
            return super().to(device=device, dtype=dtype)

    monkeypatch.setattr(torch, "randn", lambda *shape, **k: asked.append(shape) or Recorded(real_randn(2, 2, **k)))
    monkeypatch.setattr(torch, "mm", lambda a, b: mms.append(1) or real_mm(a, b))
    peak = flops.gemm_peak(device, dtype)
    assert asked == [(size, size)] * 2 and len(mms) == 1 + 5
    assert moved == [(device, dtype)] * 2                          # both matrices go to the device, in its dtype
    assert (peak["gemm_size"], peak["reps"]) == (size, 5)


def test_gemm_peak_leaves_the_global_random_stream_alone():
    """Its matrices come from a generator of its own, so measuring the peak does not shift the seeded stream
    of whatever runs next."""
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    flops.gemm_peak("cpu", torch.float32, size=8, reps=1)
    assert torch.equal(torch.rand(3), expected)
