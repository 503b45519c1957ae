"""The error pass (harness/measure/accuracy.py): every timed row's error against float64, at its own sizes.

Planted errors are caught at float32's tolerance and not at bfloat16's; the slice of the batch and the whole
batch agree; a dropout row, accuracy = false and a failed pass are "unchecked" with their reason; a bfloat16
row's error lies between float32's tolerance and its own; the train reference is skipped past max_ref_s.
"""
from __future__ import annotations

import functools

import pytest
import torch

from harness import cli
from harness.config.cases import ThroughputCase
from harness.core.thresholds import TOLERANCES
from harness.implementations import registry
from harness.implementations.models import TorchRecurrent
from harness.measure import accuracy, timing

PLANTED = 1e-3          # the planted model's error, relative to its output's largest |value|


class _Perturbed(TorchRecurrent):
    """nn.LSTM whose output is off by PLANTED of its largest |value| at one element: a wrong kernel."""

    def run(self, x, state, lengths):
        y, out = super().run(x, state, lengths)
        bump = torch.zeros_like(y)
        bump[0, 0, 0] = PLANTED * y.detach().abs().max()
        return y + bump, out


@pytest.fixture
def planted(monkeypatch):
    impl = registry.Impl("perturbed-lstm", "lstm", ("cpu",), registry.ALL_DTYPES,
                         functools.partial(_Perturbed, cell="lstm"), registry.default_kernels, "a planted error")
    monkeypatch.setitem(registry.IMPLS, impl.name, impl)
    return impl.name


def _case(impl="fused-lstm", batch=4, phase="train", **kw):
    fields = dict(impl=impl, device="cpu", dtype="float32", hidden=8, input=6, seq_len=7, batch=batch, phase=phase,
                  seed=3, threads=1, rounds=1, warmup=0, memory=False,
                  gemm="aten" if registry.get(impl).gemms else None)     # a library kernel's: its backend's
    return ThroughputCase(**{**fields, **kw})


def _check(case, **kw):
    step = timing.build_step(case)
    return step, accuracy.check(step, case, **kw)


def test_a_float32_row_is_within_its_tolerance_and_names_its_reference():
    _, cols = _check(_case())
    assert cols["numerics"] == "ok" and cols["err_tol"] == 1e-4 and cols["err_reason"] == ""
    assert 0 < cols["out_err"] < 1e-5 and 0 < cols["grad_err"] < 1e-5
    assert cols["err_ref"] == "torch-lstm float64 cpu, the full batch"


def test_a_planted_error_is_off_in_float32_and_within_bfloat16s_tolerance(planted):
    _, cols = _check(_case(planted))
    assert cols["numerics"] == "off" and cols["out_err"] == pytest.approx(PLANTED, rel=0.01)
    _, half = _check(_case(planted, autocast="bfloat16"))
    assert half["numerics"] == "ok" and half["err_tol"] == 5e-2 and PLANTED / 2 < half["out_err"] < 5e-2


def test_a_bfloat16_row_is_above_float32s_tolerance_and_within_its_own():
    step, cols = _check(_case("fused-lstm", autocast="bfloat16"))
    assert step.compute_dtype == "bfloat16"                          # the probe saw its GEMMs in bfloat16
    assert 1e-4 < cols["out_err"] < 5e-2 and 1e-4 < cols["grad_err"] < 5e-2 and cols["numerics"] == "ok"


def test_the_slice_and_the_full_batch_agree_on_a_deterministic_model():
    case = _case("torch-lstm", batch=12, phase="forward", dtype="float64")
    step = timing.build_step(case)
    sliced, whole = accuracy.check(step, case, ref_batch=4), accuracy.check(step, case, ref_batch=12)
    assert sliced["err_ref"] == "torch-lstm float64 cpu, batch 4 of 12"
    assert whole["err_ref"] == "torch-lstm float64 cpu, the full batch"
    assert sliced["out_err"] < 1e-12 and whole["out_err"] < 1e-12
    assert sliced["numerics"] == whole["numerics"] == "ok" and sliced["err_tol"] == 1e-10


def test_a_forward_row_on_a_slice_holds_its_matching_rows(planted):
    """The planted error sits in sequence 0, which the slice holds: the slice sees it."""
    _, cols = _check(_case(planted, batch=20, phase="forward"))
    assert cols["err_ref"] == "torch-lstm float64 cpu, batch 8 of 20" and cols["numerics"] == "off"


def test_a_dropout_row_is_unchecked_with_its_reason():
    _, cols = _check(_case("fused-lstm", layers=2, dropout=0.5))
    assert cols == {"numerics": "unchecked", "out_err": None, "grad_err": None, "err_tol": None, "err_ref": None,
                    "err_reason": "dropout acts in training, so no two steps compute alike: run it with dropout 0 "
                                  "for the check"}


def test_accuracy_false_checks_nothing():
    _, cols = _check(_case(accuracy=False))
    assert (cols["numerics"], cols["out_err"], cols["err_reason"]) == ("unchecked", None, "accuracy = false")


def test_a_train_reference_past_max_ref_s_leaves_grad_err_blank():
    _, cols = _check(_case(), max_ref_s=1e-12)
    assert cols["grad_err"] is None and cols["numerics"] == "ok" and cols["out_err"] < 1e-5
    assert cols["err_reason"].startswith("grad_err blank: a float64 train reference would take about ")
    assert cols["err_reason"].endswith(" s here, above max_ref_s 1e-12 s")
    assert cols["err_ref"] == "torch-lstm float64 cpu, the full batch"    # the forward's: B = 4 <= REF_BATCH


def test_variable_lengths_stacks_and_projections_are_held_to_the_same_architecture():
    varying = [{"lengths": "uniform:3-7", "lengths_mode": mode} for mode in ("packed", "padded", "masked")]
    for kw in varying + [{"layers": 2, "bidirectional": True}, {"proj_size": 4}]:
        for impl in ("fused-lstm", "bptt-lstm"):
            _, cols = _check(_case(impl, **kw))
            assert cols["numerics"] == "ok" and cols["out_err"] < 1e-5 and cols["grad_err"] < 1e-5, (impl, kw)


def test_the_dummy_is_its_own_reference_and_rnn_gru_have_theirs():
    assert accuracy.reference_impl("dummy") == "dummy"
    assert [accuracy.reference_impl(n) for n in ("scratch-rnn", "torch-gru", "onednn-lstm")] == [
        "torch-rnn", "torch-gru", "torch-lstm"]
    _, cols = _check(_case("dummy"))
    assert cols["numerics"] == "ok" and cols["err_ref"] == "dummy float64 cpu, the full batch"


def test_a_failed_pass_is_unchecked_and_says_why(monkeypatch):
    step = timing.build_step(_case())
    monkeypatch.setattr(accuracy.registry, "create", lambda *a, **k: (_ for _ in ()).throw(ValueError("no ref")))
    cols = accuracy.check(step, _case())
    assert (cols["numerics"], cols["err_reason"]) == ("unchecked", "error pass failed: ValueError: no ref")


def test_tolerances_follow_what_the_step_computed_in():
    assert accuracy.tolerance_key("float32", True) == "tf32"
    assert accuracy.tolerance_key("float32", None) == "float32"
    assert accuracy.tolerance_key("bfloat16", True) == "bfloat16"
    assert [TOLERANCES[k] for k in ("float64", "float32", "tf32", "bfloat16", "float16")] == [
        1e-10, 1e-4, 1e-2, 5e-2, 5e-2]


@pytest.mark.parametrize("value", ['"yes"', "1"])
def test_a_non_boolean_accuracy_is_one_line_exit_2(tmp_path, capsys, value):
    path = tmp_path / "s.toml"
    path.write_text(f'name = "x"\n[[throughput]]\nimpl = "dummy"\nhidden = 4\nseq_len = 2\nbatch = 1\n'
                    f"accuracy = {value}\n")
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    shown = "'yes'" if value == '"yes"' else "1"
    assert capsys.readouterr().err == (f"error: {path}: [[throughput]] #1, key 'accuracy': Input should be a valid "
                                       f"boolean (true or false), not {shown}\n")
    assert not (tmp_path / "r").exists()
