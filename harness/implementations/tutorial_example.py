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

The scratch version is `ScratchLSTM` (models.py) plus the W_hq, b_q head; both
versions can be loaded with the same weights and then agree. The tutorial's
claims, in its own words, are analysis/quotes.py's.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.implementations.models import ScratchLSTM, canonical_params

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
