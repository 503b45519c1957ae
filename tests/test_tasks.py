"""Long-range tasks: data, baselines, and a short training run's rows."""
import math

import pytest
import torch

from harness.config.cases import TaskCase
from harness.measure import tasks


def test_adding_data():
    x, y = tasks.make_batch("adding", 50, 1000, torch.Generator().manual_seed(0))
    assert x.shape == (50, 1000, 2) and y.shape == (1000,)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((1000,), 2.0))
    assert torch.equal(markers[:25].sum(0), torch.ones(1000))          # one marker in each half
    assert torch.allclose((x[..., 0] * markers).sum(0), y)
    assert 0 <= x[..., 0].min() and x[..., 0].max() <= 1
    # a constant predictor at the mean (1) scores about 1/6
    assert ((y - 1) ** 2).mean().item() == pytest.approx(1 / 6, rel=0.1)


def test_copy_data():
    T = 30
    x, y = tasks.make_batch("copy", T, 64, torch.Generator().manual_seed(0))
    assert x.shape == (T + 20, 64, 10) and y.shape == (T + 20, 64)
    ids = x.argmax(-1)
    assert torch.equal(ids[:10], y[-10:]) and (ids[:10] < 8).all()
    assert (ids[10:10 + T - 1] == tasks.BLANK).all() and (ids[10 + T - 1] == tasks.DELIMITER).all()
    assert (ids[-10:] == tasks.BLANK).all() and (y[:-10] == tasks.BLANK).all()


def test_baselines():
    assert tasks.baseline_loss("adding", 100) == 1 / 6
    assert tasks.baseline_loss("copy", 100) == 10 * math.log(8) / 120


def test_memoryless_copy_baseline_is_what_it_says():
    """Blank everywhere, uniform over the 8 symbols in the recall steps: exactly 10 ln 8 / (T+20)."""
    T = 15
    x, y = tasks.make_batch("copy", T, 32, torch.Generator().manual_seed(1))
    logits = torch.full((T + 20, 32, 9), -1e9)
    logits[:-10, :, tasks.BLANK] = 0.0
    logits[-10:, :, :8] = 0.0
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert loss.item() == pytest.approx(tasks.baseline_loss("copy", T), rel=1e-6)


def case(**kw):
    base = dict(task="adding", impl="torch-lstm", device="cpu", dtype="float32", hidden=8, seq_len=10, batch=16,
                steps=20, lr=1e-2, clip=1.0, forget_bias=1.0, init="pytorch", seed=0, threads=1, eval_every=5,
                eval_size=32)
    return TaskCase(**{**base, **kw})


def test_training_rows_and_checkpoint_curves():
    rows, curves, _ = tasks.run_case(case(), "r")
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]
    assert rows[0]["train_loss"] == "" and all(isinstance(r["train_loss"], float) for r in rows[1:])
    assert {r["baseline_loss"] for r in rows} == {1 / 6}
    assert all(r["status"] == "ok" and 0 <= r["eval_accuracy"] <= 1 for r in rows)
    assert sorted({r["train_step"] for r in curves}) == [0, 10, 20]
    assert {r["task"] for r in curves} == {"adding"} and len(curves) == 3 * 10


def test_training_is_reproducible_and_learns_something():
    a, _, _ = tasks.run_case(case(task="copy", steps=10, seq_len=5), "r")
    b, _, _ = tasks.run_case(case(task="copy", steps=10, seq_len=5), "r")
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b]
    assert a[-1]["eval_loss"] < a[0]["eval_loss"]


def test_early_stop_ends_a_seed_once_solved_k_evaluations_in_a_row(monkeypatch):
    monkeypatch.setattr(tasks, "SOLVED", 100.0)            # every evaluation counts as solved
    rows, curves, _ = tasks.run_case(case(early_stop=3), "r")
    assert [r["step"] for r in rows] == [0, 5, 10]         # solved at 0, 5 and 10: three in a row, stopped at 10
    assert {r["early_stop"] for r in rows} == {3}
    assert sorted({r["train_step"] for r in curves}) == [0, 10]      # the final curve where it stopped
    monkeypatch.setattr(tasks, "SOLVED", 0.0)              # never solved: every step trains
    rows, _, _ = tasks.run_case(case(early_stop=3), "r")
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]


@pytest.mark.parametrize("value,message", [("-1", "Input should be greater than or equal to 0"),
                                           ('"yes"', "Input should be a valid integer, unable to parse string as an "
                                                     "integer")])
def test_a_bad_early_stop_is_one_line_exit_2(tmp_path, capsys, value, message):
    from harness import cli
    path = tmp_path / "s.toml"
    path.write_text(f'name = "x"\n[[task]]\ntask = "adding"\nimpl = "torch-lstm"\nhidden = 4\nseq_len = 5\n'
                    f"early_stop = {value}\n")
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: {path}: [[task]] #1, key 'early_stop': {message}\n"
    assert not (tmp_path / "r").exists()
