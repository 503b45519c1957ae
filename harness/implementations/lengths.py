"""Variable-length batches: how sequence lengths vary within a batch, and how a model runs them.

A scenario's `lengths` key says how lengths vary:

    "fixed"             every sequence has seq_len steps (the default)
    "uniform:LO-HI"     each sequence's length ~ U{LO, ..., HI}, drawn from the case's seed;
                        seq_len is then HI: the batch is (HI, B, I), padded after each sequence's end

and `lengths_mode` how a variable-length batch is run (MODES):

    packed   nn.*: a PackedSequence (pack_padded_sequence, enforce_sorted=False). The scratch models
             sort the batch by length and shrink it as sequences end, as cuDNN's packed kernel does.
    masked   scratch models only: all T steps run on the whole batch, and a mask freezes a finished
             sequence's state, so each final state is that sequence's own.
    padded   every implementation runs all T steps over the padding and only the loss is masked: the
             common shortcut. The final states of the short sequences are wrong (taken at step T).

Under packed and masked the outputs at padded steps are zeros, as pad_packed_sequence gives them.
A reverse direction runs each sequence back from its own last step: its input is reversed within
each sequence's length (`reverse`), run forwards, and its output reversed back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

FIXED = "fixed"
MODES = ("packed", "masked", "padded")
FORM = "'fixed' or 'uniform:LO-HI' (integers, 1 <= LO <= HI)"
_UNIFORM = re.compile(r"uniform:(\d+)-(\d+)")
SEED_OFFSET = 2       # lengths are drawn from case.seed + SEED_OFFSET (the inputs take seed + 1)


def parse(spec: str) -> tuple[int, int] | None:
    """(LO, HI) of "uniform:LO-HI", None for "fixed"; ValueError naming the allowed forms otherwise."""
    if spec == FIXED:
        return None
    m = _UNIFORM.fullmatch(spec)
    if not m:
        raise ValueError(f"unknown lengths {spec!r}; allowed: {FORM}")
    lo, hi = int(m[1]), int(m[2])
    if lo < 1:
        raise ValueError(f"lengths {spec!r}: LO must be >= 1 (every sequence has a step), not {lo}")
    if lo > hi:
        raise ValueError(f"lengths {spec!r}: LO must be <= HI, not {lo} > {hi}")
    return lo, hi


def draw(spec: str, batch: int, seq_len: int, seed: int) -> Tensor | None:
    """Each sequence's length, (B,) int64 on the CPU, or None for fixed lengths (all seq_len)."""
    bounds = parse(spec)
    if bounds is None:
        return None
    gen = torch.Generator().manual_seed(seed + SEED_OFFSET)
    return torch.randint(bounds[0], bounds[1] + 1, (batch,), generator=gen)


def padding_fraction(lengths: Tensor | None, seq_len: int) -> float:
    """The share of a (T, B) batch that is padding."""
    return 0.0 if lengths is None else 1.0 - lengths.sum().item() / (seq_len * len(lengths))


def mask(lengths: Tensor, seq_len: int, device=None) -> Tensor:
    """(T, B, 1) bool: True where step t is one of sequence b's own."""
    steps = torch.arange(seq_len).unsqueeze(1)                               # (T, 1)
    return (steps < lengths.unsqueeze(0)).unsqueeze(2).to(device)            # (T, B, 1)


@dataclass
class Batch:
    """One variable-length batch as the scratch models run it, made once per forward.

    packed: `order` sorts the batch by length, longest first, and `inverse` undoes it;
    batch_sizes[t] is how many sequences are still running at step t (the sorted batch's prefix).
    masked: `step_mask` (T, B, 1) says which steps are real. Both: `index` (T, B) reverses
    every sequence within its own length (padded steps map to themselves)."""

    mode: str
    lengths: Tensor                      # (B,) int64, CPU; sorted when packed
    step_mask: Tensor                    # (T, B, 1) bool, on the model's device
    index: Tensor                        # (T, B) int64, on the model's device
    batch_sizes: list[int] | None = None
    order: Tensor | None = None
    inverse: Tensor | None = None

    @classmethod
    def make(cls, lengths: Tensor, seq_len: int, mode: str, device) -> Batch:
        lengths = lengths.cpu()
        order = inverse = sizes = None
        if mode == "packed":
            lengths, order = torch.sort(lengths, descending=True, stable=True)
            inverse = torch.argsort(order)
            sizes = [int(n) for n in (torch.arange(seq_len).unsqueeze(1) < lengths).sum(1)]
            order, inverse = order.to(device), inverse.to(device)
        steps = torch.arange(seq_len).unsqueeze(1)                           # (T, 1)
        index = torch.where(steps < lengths, lengths - 1 - steps, steps)     # (T, B)
        return cls(mode, lengths, mask(lengths, seq_len, device), index.to(device), sizes, order, inverse)

    def active(self, t: int, batch: int) -> int:
        """How many (leading) rows of the batch step t runs."""
        return self.batch_sizes[t] if self.batch_sizes is not None else batch


def reverse(x: Tensor, vl: Batch | None) -> Tensor:
    """x (T, B, F) with every sequence reversed within its own length (all of T when vl is None)."""
    if vl is None:
        return x.flip(0)
    return x.gather(0, vl.index.unsqueeze(2).expand_as(x))
