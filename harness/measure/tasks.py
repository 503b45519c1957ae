"""Long-range tasks: can the model learn a dependency T steps back?

adding (Hochreiter & Schmidhuber 1997; Le et al. 2015)
    input (T, B, 2): a value ~ U[0, 1] and a marker; exactly one marker in each
    half of the sequence. Target: the sum of the two marked values, read from a
    linear head on h_T. Loss: MSE. A constant predictor (1, the mean) scores
    Var = 2/12 = 1/6: the baseline. eval_accuracy: the fraction of held-out
    sequences predicted within 0.04 of the target.

copy (Arjovsky et al. 2016, "copy memory")
    input (T+20, B, 10), one-hot: 10 symbols drawn from 8, then T-1 blanks, then
    a delimiter, then 10 blanks. Target at each step: blank, except the last 10
    steps, which must recall the 10 symbols in order. Loss: cross-entropy over
    the 9 output classes (8 symbols and blank), averaged over all T+20 steps.
    The memoryless baseline, blanks everywhere and a uniform guess over the 8
    symbols in the recall steps, scores 10 ln 8 / (T + 20). eval_accuracy: the
    fraction of recall symbols that are right.

Training data is drawn on the fly from a generator seeded by the case's seed;
the held-out set is fixed, drawn once from another seed. The optimiser is Adam
with learning rate `lr`; `clip` > 0 clips the gradient norm. `early_stop` = k > 0
ends a training once its held-out loss has been below SOLVED x the baseline at k
evaluations in a row (the last row's step is then where it stopped). The harness
records what happened; nothing in it presumes who wins.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from harness.core.thresholds import SOLVED
from harness.implementations import registry
from harness.implementations.models import Recurrent
from harness.implementations.params import FORGET_CELLS
from harness.measure import gradients, jacobian
from harness.measure.timing import autocast_context

TASKS = ("adding", "copy")
COPY_SYMBOLS, COPY_LENGTH = 8, 10
BLANK, DELIMITER = 8, 9          # input classes: 0..7 symbols, 8 blank, 9 delimiter


def input_size(task: str) -> int:
    return 2 if task == "adding" else COPY_SYMBOLS + 2


def output_size(task: str) -> int:
    return 1 if task == "adding" else COPY_SYMBOLS + 1


def sequence_length(task: str, seq_len: int) -> int:
    return seq_len if task == "adding" else seq_len + 2 * COPY_LENGTH


def baseline_loss(task: str, seq_len: int) -> float:
    return 1 / 6 if task == "adding" else COPY_LENGTH * math.log(COPY_SYMBOLS) / (seq_len + 2 * COPY_LENGTH)


def make_batch(task: str, seq_len: int, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(x, target): adding x (T, B, 2), target (B,); copy x (T+20, B, 10), target (T+20, B) class ids."""
    if task == "adding":
        values = torch.rand(seq_len, batch, generator=gen)
        half = max(seq_len // 2, 1)
        first = torch.randint(0, half, (batch,), generator=gen)
        second = torch.randint(half, seq_len, (batch,), generator=gen) if seq_len > 1 else first
        markers = torch.zeros(seq_len, batch)
        cols = torch.arange(batch)
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        target = (values * markers).sum(0)
        return torch.stack([values, markers], dim=2), target
    total = seq_len + 2 * COPY_LENGTH
    symbols = torch.randint(0, COPY_SYMBOLS, (COPY_LENGTH, batch), generator=gen)
    inputs = torch.full((total, batch), BLANK, dtype=torch.long)
    inputs[:COPY_LENGTH] = symbols
    inputs[COPY_LENGTH + seq_len - 1] = DELIMITER
    target = torch.full((total, batch), BLANK, dtype=torch.long)
    target[-COPY_LENGTH:] = symbols
    return nn.functional.one_hot(inputs, COPY_SYMBOLS + 2).float(), target


class TaskModel(nn.Module):
    """A recurrent implementation from the registry plus a linear head."""

    def __init__(self, core: Recurrent, task: str):
        super().__init__()
        self.core, self.task = core, task
        p = next(core.parameters())
        self.head = nn.Linear(core.hidden_size, output_size(task)).to(device=p.device, dtype=p.dtype)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.core(x)                                   # (T, B, H)
        if self.task == "adding":
            return self.head(y[-1]).squeeze(-1)               # (B,)
        return self.head(y)                                   # (T, B, 9)


def loss_and_accuracy(model: TaskModel, x: Tensor, target: Tensor) -> tuple[Tensor, float]:
    out = model(x).to(target.dtype if model.task == "adding" else x.dtype)    # the loss in the model's dtype
    if model.task == "adding":
        loss = nn.functional.mse_loss(out, target)
        acc = ((out - target).abs() < 0.04).double().mean().item()
    else:
        loss = nn.functional.cross_entropy(out.flatten(0, 1), target.flatten())
        recall = out[-COPY_LENGTH:].argmax(-1)
        acc = (recall == target[-COPY_LENGTH:]).double().mean().item()
    return loss, acc


def checkpoints(steps: int) -> list[int]:
    """The training steps at which gradient curves are taken: start, middle, end."""
    return sorted({0, steps // 2, steps})


def run_case(case, run_id: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Train one [[task]] case: (training.csv, gradients.csv, dynamics.csv rows). Raises errors.Skip.

    The rows' columns are columns.TRAINING_COLUMNS, GRADIENT_COLUMNS and DYNAMICS_COLUMNS."""
    cell = registry.get(case.impl).cell
    I = input_size(case.task)
    nonlinearity = case.nonlinearity if cell == "rnn" else ""
    core = registry.create(case.impl, I, case.hidden, device=case.device, dtype=case.dtype, seed=case.seed,
                           init=case.init, forget_bias=case.forget_bias or 0.0, shape=case.shape,
                           nonlinearity=nonlinearity or "tanh", spectral_radius=case.spectral_radius)
    radius = "" if case.spectral_radius is None else case.spectral_radius
    torch.manual_seed(case.seed)                              # the head's initialisation
    model = TaskModel(core, case.task)
    dtype, device = registry.DTYPES[case.dtype], case.device
    opt = torch.optim.Adam(model.parameters(), lr=case.lr)
    gen = torch.Generator().manual_seed(case.seed)

    def batch(size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, target = make_batch(case.task, case.seq_len, size, generator)
        return x.to(device, dtype), target.to(device=device, dtype=dtype if case.task == "adding" else torch.long)

    ex, et = batch(case.eval_size, torch.Generator().manual_seed(1_000_000 + case.seed))     # the held-out set
    base = {"run_id": run_id, "task": case.task, "impl": case.impl, "hidden": case.hidden, "seq_len": case.seq_len,
            "forget_bias": case.forget_bias if cell in FORGET_CELLS else "", "baseline_loss": baseline_loss(case.task,
                                                                                                   case.seq_len),
            "cell": cell, "device": device, "dtype": case.dtype, "autocast": case.autocast, "batch": case.batch,
            "lr": case.lr,
            "clip": case.clip, "seed": case.seed, "layers": case.layers, "init": case.init,
            "nonlinearity": nonlinearity, "spectral_radius": radius, "steps": case.steps,
            "early_stop": case.early_stop}
    grad_base = {"run_id": run_id, "impl": case.impl, "cell": cell, "init": case.init,
                 "forget_bias": case.forget_bias if cell in FORGET_CELLS else "", "nonlinearity": nonlinearity,
                 "hidden": case.hidden, "seq_len": sequence_length(case.task, case.seq_len),
                 "dtype": case.dtype, "autocast": case.autocast, "device": device, "input": I, "task": case.task,
                 "layers": case.layers,
                 "spectral_radius": radius}
    dyn_base = {"run_id": run_id, "task": case.task, "impl": case.impl, "cell": cell, "hidden": case.hidden,
                "seq_len": case.seq_len, "init": case.init, "forget_bias": grad_base["forget_bias"],
                "nonlinearity": nonlinearity, "spectral_radius": radius, "seed": case.seed}
    probe_x = ex[:, : min(case.eval_size, 64)]
    grad_base["batch"] = probe_x.shape[1]
    g = gradients.probe_vector(case.hidden, case.seed)
    marks = checkpoints(case.steps)
    train_rows, grad_rows, dyn_rows = [], [], []
    cast = autocast_context(device, case.autocast)   # around every forward but the dynamics probe's (jacobian.py)
    t0 = time.perf_counter()

    solved_in_a_row = 0

    def evaluate(step: int, train_loss: float | None) -> bool:
        """One held-out evaluation, as a row; whether early_stop ends the training here."""
        nonlocal solved_in_a_row
        model.eval()
        with torch.no_grad(), cast():
            loss, acc = loss_and_accuracy(model, ex, et)
        model.train()
        v = loss.item()
        row = {**base, "step": step, "train_loss": "" if train_loss is None else train_loss, "eval_loss": v,
               "eval_accuracy": acc, "wall_s": time.perf_counter() - t0, "status": gradients.flag(v)}
        train_rows.append(row)
        solved_in_a_row = solved_in_a_row + 1 if v < SOLVED * base["baseline_loss"] else 0
        return bool(case.early_stop) and solved_in_a_row >= case.early_stop

    def curve(step: int) -> None:
        norms = gradients.grad_norms(core, probe_x, g, states=False, cast=cast)
        grad_rows.extend(gradients.curve_rows({**grad_base, "train_step": step}, case.seed, norms))
        dyn_rows.extend(jacobian.rows(core, probe_x, nonlinearity, {**dyn_base, "train_step": step}))

    every = max(case.eval_every, 1)
    evaluate(0, None)
    curve(0)
    running = []
    for step in range(1, case.steps + 1):
        x, target = batch(case.batch, gen)
        opt.zero_grad(set_to_none=True)
        with cast():
            loss, _ = loss_and_accuracy(model, x, target)
        loss.backward()
        if case.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), case.clip)
        opt.step()
        running.append(loss.item())
        stop = False
        if step % every == 0 or step == case.steps:
            stop = evaluate(step, sum(running) / len(running))
            running = []
        if step in marks or stop:
            curve(step)                     # early_stop: the final curve is taken where training stopped
        if stop:
            break
    return train_rows, grad_rows, dyn_rows
