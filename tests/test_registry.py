"""The registry: names, skips with reasons, parameter counts, backends, threads."""
import pytest
import torch

from harness.core import env, errors
from harness.implementations import registry
from harness.implementations.models import canonical_params, param_count
from harness.implementations.params import NO_RECURRENT
from harness.implementations.tutorial_example import EXAMPLE, TutorialNNLSTM, TutorialScratchLSTM
from harness.measure.profiling import backend_from_ops, backend_ran, op_names

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")


def test_registered_names():
    assert list(registry.IMPLS) == ["scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm", "onednn-lstm",
                                    "cudnn-lstm", "scratch-rnn", "torch-rnn", "torch-gru", "compiled-lstm",
                                    "compiled-loop-lstm", "scripted-lstm", "cudagraph-lstm", "mingru-scan",
                                    "mingru-loop", "minlstm-scan", "minlstm-loop", "dummy"]


@pytest.mark.parametrize("name", [n for n in registry.IMPLS if registry.get(n).compiler != "inductor"])
def test_one_interface(name):
    """Same constructor arguments, time-major input, (T, B, H) output and nn.LSTM's (L*D, B, H) states
    (torch.compile's implementations: tests/test_compilers.py, which compiles each once)."""
    device = registry.get(name).devices[0]
    if reason := registry.skip_reason(name, device):
        pytest.skip(reason)
    model = registry.create(name, input_size=3, hidden_size=5, device=device, dtype="float32", seed=0)
    y, state = model(torch.randn(4, 2, 3, device=device))
    assert y.shape == (4, 2, 5)
    assert [tuple(s.shape) for s in state] == [(1, 2, 5)] * (2 if registry.get(name).cell == "lstm" else 1)
    recurrent = [] if registry.get(name).cell in NO_RECURRENT else ["bias_hh_l0", "weight_hh_l0"]
    assert sorted(model.canonical()) == sorted(["bias_ih_l0", "weight_ih_l0", *recurrent])


@pytest.mark.parametrize("name,device,dtype,reason", [
    ("cudnn-lstm", "cpu", "float32", "cudnn-lstm runs on cuda only, not cpu"),
    ("onednn-lstm", "cuda", "float32", "onednn-lstm runs on cpu only, not cuda"),
    ("onednn-lstm", "cpu", "float64", "onednn-lstm supports float32, bfloat16 only, not float64"),
])
def test_unsupported_combinations_skip_with_reason(name, device, dtype, reason):
    assert registry.skip_reason(name, device, dtype) == reason
    with pytest.raises(errors.Skip, match=reason):
        registry.create(name, 3, 4, device=device, dtype=dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["scratch-lstm", "fused-lstm", "torch-lstm", "cudnn-lstm", "scratch-rnn"])
def test_missing_cuda_is_a_skip(name):
    assert registry.skip_reason(name, "cuda") == "CUDA is not available on this machine"
    assert registry.available_devices() == ["cpu"]


@pytest.mark.parametrize("args,message", [
    (("lstm", "cpu", "float32"), "unknown implementation 'lstm'; allowed: scratch-lstm, fused-lstm"),
    (("torch-lstm", "tpu", "float32"), "unknown device 'tpu'; allowed: cpu, cuda"),
    (("torch-lstm", "cpu", "float8"), "unknown dtype 'float8'; allowed: float32, float64, bfloat16, float16"),
])
def test_unknown_names_list_allowed_values(args, message):
    with pytest.raises(ValueError, match=message):
        registry.skip_reason(*args)


@pytest.mark.parametrize("I,H,lstm,rnn", [(10, 20, 2560, 640), (1, 1, 16, 4), (256, 256, 526336, 131584)])
def test_lstm_has_exactly_four_times_the_rnn_parameters(I, H, lstm, rnn):
    # per gate block: H*I + H*H + 2H (nn.LSTM keeps two biases; so do all implementations)
    counts = {n: param_count(registry.create(n, I, H)) for n in ["scratch-lstm", "fused-lstm", "bptt-lstm",
                                                                  "torch-lstm", "scratch-rnn", "torch-rnn"]}
    assert counts == {"scratch-lstm": lstm, "fused-lstm": lstm, "bptt-lstm": lstm, "torch-lstm": lstm,
                      "scratch-rnn": rnn, "torch-rnn": rnn}
    assert lstm == 4 * rnn
    assert param_count(registry.create("torch-gru", I, H)) == 3 * rnn


def test_backends_are_contexts_around_one_builder():
    a, b = registry.get("torch-lstm"), registry.get("onednn-lstm")
    assert a.builder is b.builder and a.context is not b.context


def test_profiler_proves_the_backend_that_ran():
    x = torch.randn(5, 3, 8)
    ops = {n: op_names(registry.create(n, 8, 16), x) for n in ("onednn-lstm", "torch-lstm", "fused-lstm")}
    assert "aten::mkldnn_rnn_layer" in ops["onednn-lstm"]
    assert "aten::mkldnn_rnn_layer" not in ops["torch-lstm"]
    assert "aten::lstm" in ops["torch-lstm"]
    assert "aten::lstm" not in ops["fused-lstm"]
    assert backend_ran(registry.create("onednn-lstm", 8, 16), batch=3) == "onednn"
    assert backend_ran(registry.create("torch-lstm", 8, 16), batch=3) == "native"
    assert backend_ran(registry.create("scratch-lstm", 8, 16), batch=3) == "native"


def test_backend_context_restores_the_flag():
    before = torch.backends.mkldnn.enabled
    model = registry.create("torch-lstm", 4, 4)
    model(torch.randn(2, 1, 4))
    assert torch.backends.mkldnn.enabled == before


def test_backend_from_ops():
    assert backend_from_ops({"aten::lstm", "aten::mkldnn_rnn_layer"}) == "onednn"
    assert backend_from_ops({"aten::lstm", "aten::_cudnn_rnn"}) == "cudnn"
    assert backend_from_ops({"aten::lstm", "aten::addmm"}) == "native"


@CUDA
@pytest.mark.cuda
def test_cuda_backends():
    assert backend_ran(registry.create("cudnn-lstm", 8, 16, device="cuda"), batch=3) == "cudnn"
    assert backend_ran(registry.create("torch-lstm", 8, 16, device="cuda"), batch=3) == "native"


def test_threads_are_set_and_recorded():
    before = torch.get_num_threads()
    try:
        assert env.set_threads(1) == 1 and torch.get_num_threads() == 1
        assert env.environment()["threads"] == 1
        assert env.set_threads(None) == env.physical_cores()
    finally:
        torch.set_num_threads(before)


def test_canonical_params_depend_on_seed_only():
    a, b = canonical_params("lstm", 3, 4, seed=5), canonical_params("lstm", 3, 4, seed=5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["weight_ih_l0"].shape == (16, 3) and a["weight_hh_l0"].shape == (16, 4) and a["bias_ih_l0"].shape == (16,)
    seed_init = canonical_params("lstm", 3, 4, seed=5, init="seed")
    assert seed_init["bias_ih_l0"].abs().sum() == 0 and 0.05 < seed_init["weight_hh_l0"].std() < 0.2
    q = canonical_params("rnn", 3, 6, seed=5, init="orthogonal")["weight_hh_l0"]
    assert torch.allclose(q @ q.t(), torch.eye(6, dtype=torch.float64), atol=1e-12)


# -- the tutorial's example ------------------------------------------------------------
def test_tutorial_example_shapes_and_agreement():
    I, H, Q, B, T = (EXAMPLE[k] for k in ("input_size", "hidden_size", "output_size", "batch_size", "seq_len"))
    assert (I, H, Q, B, T) == (10, 20, 10, 1, 5)
    scratch = TutorialScratchLSTM(input_size=I, output_size=Q, hidden_size=H)
    named = scratch.lstm.tutorial_params()
    assert named["W_xi"].shape == (10, 20) and named["W_hi"].shape == (20, 20) and named["b_i"].shape == (20,)
    assert scratch.W_hq.shape == (20, 10) and scratch.b_q.shape == (10,)

    x = torch.randn(B, T, I)                                   # batch-first, input_size features
    h0, c0 = torch.zeros(1, B, H), torch.randn(1, B, H)
    model = TutorialNNLSTM(input_size=I, output_size=Q, hidden_size=H).load_from(scratch)
    out, (hn, cn) = model(x, (h0, c0))                         # the state as one tuple
    assert out.shape == (1, 5, 10) and hn.shape == (1, 1, 20) and cn.shape == (1, 1, 20)

    Y, (Hs, Cs) = scratch(x.transpose(0, 1), (h0, c0))        # time-major
    assert Y.shape == (5, 1, 10) and Hs.shape == (1, 1, 20) and Cs.shape == (1, 1, 20)
    torch.testing.assert_close(Y.transpose(0, 1), out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(Cs, cn, rtol=1e-5, atol=1e-6)


def test_tutorial_as_printed_fails():
    """The two mistakes the docstring corrects are real: nn.LSTM rejects both."""
    model = TutorialNNLSTM(input_size=10, output_size=10, hidden_size=20)
    h0, c0 = torch.zeros(1, 1, 20), torch.zeros(1, 1, 20)
    with pytest.raises(TypeError):
        model.lstm(torch.randn(1, 5, 10), h0, c0)              # lstm(x, h0, c0)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 5, 20), (h0, c0))                 # x with hidden_size features


# -- the gemm axis ---------------------------------------------------------------------------------
def test_gemm_libraries_and_why_one_cannot_run():
    from harness.implementations import gemm
    assert gemm.LIBRARIES == ("aten", "onednn") and gemm.library("aten") is gemm.ATEN
    assert gemm.missing("aten", "cuda", torch.float64) is None
    assert gemm.missing("onednn", "cuda:0", torch.float32) == (
        "gemm onednn is oneDNN's CPU matmul, not for cuda:0 (cuBLAS is aten there)")
    assert gemm.missing("onednn", "cpu", torch.float64) == "gemm onednn takes float32 or bfloat16, not float64"
    assert gemm.missing("onednn", "cpu", torch.float32) is None
    with pytest.raises(ValueError, match=r"^unknown gemm 'mkl'; allowed: aten, onednn$"):
        gemm.missing("mkl", "cpu", torch.float32)
    assert gemm.blas() == "mkl"                        # the pinned CPU build links MKL


def test_a_onednn_matmul_that_disagrees_or_is_missing_is_a_skip(monkeypatch):
    from harness.implementations import gemm
    gemm._onednn_probe.cache_clear()
    monkeypatch.setattr(gemm, "_linear", lambda x, w, bias=None: 1.01 * torch.mm(x, w.t()))
    try:
        with pytest.raises(errors.Skip, match=r"^oneDNN's matmul disagrees with torch.mm in this build \(relative "
                                              r"error 1\.0e-02\)$"):
            registry.create("fused-lstm", 3, 4, gemm="onednn")
        gemm._onednn_probe.cache_clear()
        monkeypatch.delattr(torch.ops.mkldnn, "_linear_pointwise", raising=False)
        monkeypatch.setattr(gemm.torch.ops, "mkldnn", object())
        assert gemm._onednn_probe() == ("this PyTorch build has no torch.ops.mkldnn._linear_pointwise "
                                        "(oneDNN's matmul)")
    finally:
        gemm._onednn_probe.cache_clear()


def test_gemm_applies_to_the_models_that_call_their_own():
    assert registry.create("bptt-lstm", 3, 4, gemm="onednn").gemm.name == "onednn"
    assert registry.create("scratch-rnn", 3, 4).gemm.name == "aten"
    with pytest.raises(errors.Skip, match=r"^compiled-lstm's GEMMs are its compiler's: gemm onednn is for the eager "
                                          r"models that call their own \(scratch-lstm, fused-lstm, bptt-lstm, "
                                          r"scratch-rnn, mingru-scan, mingru-loop, minlstm-scan, minlstm-loop\)$"):
        registry.create("compiled-lstm", 3, 4, gemm="onednn")
    with pytest.raises(errors.Skip, match="^gemm onednn takes float32 or bfloat16, not float64$"):
        registry.create("fused-lstm", 3, 4, dtype="float64", gemm="onednn")
    with pytest.raises(ValueError, match=r"^gemm applies to the models that call their own GEMMs, not torch-lstm"):
        registry.create("torch-lstm", 3, 4, gemm="aten")
    with pytest.raises(ValueError, match=r"^unknown gemm 'blas'"):
        registry.create("fused-lstm", 3, 4, gemm="blas")
