"""The tutorial's own example (../shared/seed/), corrected so that it runs.

The tutorial builds an LSTM twice: from scratch (`params`, `init_state`,
`lstm`) and as `mylstm`, an nn.LSTM(batch_first=True) with an nn.Linear head.
Its example is input_size=10, hidden_size=20, output_size=10, batch_size=1,
seq_len=5, one layer. As printed it does not run; three things are corrected:

1. `mylstm.forward(x, h0, c0)` calls `self.lstm(x, h0, c0)`, but nn.LSTM takes
   the state as one tuple: `self.lstm(x, (h0, c0))`. The example also calls
   `model(x, (h0, c0))`, so `forward` here takes `state=(h0, c0)`.
2. The example builds `x = torch.randn(batch_size, seq_len, hidden_size)`:
   the input has `input_size` features, so x is (batch, seq_len, input_size).
3. The scratch `lstm` returns `torch.cat(outputs, dim=1)`, which flattens the
   per-step outputs into (B, T*Q). The outputs are stacked here instead, into
   (T, B, Q): one output per step, time-major like its input.

The scratch version is `ScratchLSTM` (harness/models.py) plus the W_hq, b_q
head; both versions can be loaded with the same weights and then agree.

STATEMENTS: the tutorial's claims in its own words (verbatim substrings of
its text, whose punctuation the copy in ../shared/seed/ has lost), in English,
and what lstm-bench measures to test each; harness/claims.py judges them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.models import ScratchLSTM, canonical_params

EXAMPLE = dict(input_size=10, hidden_size=20, output_size=10, batch_size=1, seq_len=5, num_layers=1)


class TutorialScratchLSTM(nn.Module):
    """`params` + `lstm` from the tutorial: ScratchLSTM's twelve named
    parameters (as views) and the output head W_hq (H, Q), b_q (Q,).

    x: (T, B, I) time-major  ->  Y: (T, B, Q), (H, C) each (1, B, H), nn.LSTM's shape."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, seed: int = 0):
        super().__init__()
        self.lstm = ScratchLSTM(input_size, hidden_size)
        self.lstm.load_canonical(canonical_params("lstm", input_size, hidden_size, seed, init="seed"))
        gen = torch.Generator().manual_seed(seed + 1)
        self.W_hq = nn.Parameter(torch.randn(hidden_size, output_size, generator=gen) * 0.1)
        self.b_q = nn.Parameter(torch.zeros(output_size))

    def init_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        return self.lstm.zero_state(batch_size)

    def forward(self, X: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hs, (H, C) = self.lstm(X, state)                # (T, B, H)
        Y = torch.matmul(hs, self.W_hq) + self.b_q      # (T, B, Q): Y = H W_hq + b_q per step
        return Y, (H, C)


class TutorialNNLSTM(nn.Module):
    """The tutorial's `mylstm`, corrected: batch-first, state passed as one tuple.

    x: (B, T, I), state: (h0, c0) each (num_layers, B, H)  ->  out (B, T, Q)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, (hn, cn) = self.lstm(x, state)
        return self.fc(out), (hn, cn)

    @torch.no_grad()
    def load_from(self, scratch: TutorialScratchLSTM) -> TutorialNNLSTM:
        """Copy a TutorialScratchLSTM's weights, so both compute the same function."""
        for name, p in scratch.lstm.canonical().items():
            getattr(self.lstm, name).copy_(p)
        self.fc.weight.copy_(scratch.W_hq.t())
        self.fc.bias.copy_(scratch.b_q)
        return self


# -- the tutorial's claims ---------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    """A claim as the tutorial (../shared/seed/) states it, and what is measured to test it."""
    key: str
    claim: str            # the claim in a line, as tested here
    quote_zh: str         # the tutorial's own words (a verbatim substring of its text)
    quote_en: str         # the same, in English
    measured: str         # what lstm-bench measures to test it


STATEMENTS = {s.key: s for s in [
    Statement("a", "(a) An RNN's gradients vanish or explode with distance", "容易造成梯度消失/爆炸",
              "[an RNN] easily causes vanishing/exploding gradients",
              "||dL/dx_t|| against distance for every RNN configuration of the [[gradients]] sections; the fitted "
              "per-step decay factor and its 95% interval over seeds"),
    Statement("b", "(b) The LSTM eases the vanishing gradient better than an RNN",
              "相比于RNN而言LSTM能够更高地捕捉长期依赖而且也更好的缓解了梯度消失问题",
              "compared with an RNN, the LSTM captures long-term dependencies better and also eases the "
              "vanishing-gradient problem better",
              "the decay factor of each LSTM beside RNNs of the same hidden size, sequence length and init; the "
              "distance at which each falls below the vanishing threshold; after training on a task, the gradient "
              "at the far end"),
    Statement("c", "(c) An LSTM learns a long-range dependency that an RNN cannot", "解决长距离依赖问题保留长期信息",
              "[the LSTM] solves the long-distance dependency problem and keeps long-term information",
              "held-out loss after training on the [[task]] sections (adding, copy) against the constant "
              "predictor's"),
    Statement("d", "(d) An LSTM has more parameters than an RNN (4x: three gates and the candidate)",
              "由于LSTM引入了三个门控机制导致参数量比RNN要多",
              "because the LSTM introduces three gates, it has more parameters than an RNN",
              "the parameter counts of an LSTM and an RNN at equal input and hidden sizes"),
    Statement("e", "(e) An LSTM trains more slowly than an RNN (and by how much)", "参数量比RNN要多训练慢",
              "[it has] more parameters than an RNN and trains slowly",
              "train-step time (forward + backward) of an LSTM and an RNN at equal sizes on one backend, timed "
              "round-robin in one comparison group"),
    Statement("f", "(f) nn.LSTM and the vendor kernels are faster than the scratch LSTM (by how much)",
              "在Pytroch中已经内置了lstm函数我们只需要调用就可以实现上述操作",
              "PyTorch has the LSTM built in: we only need to call it to do the above (the tutorial says no more; "
              "that the library is faster is the common claim, tested here)",
              "time of scratch-lstm (the tutorial's loop) over each library kernel at equal sizes, per phase"),
]}
