"""The canary: a fixed piece of work that measures the machine, timed as one more member of every comparison group.

A case's time moves with the code and with the machine: another process, a neighbour VM, a clock that
changed. Interleaving shares the machine's state among a group's members, but a change that falls on every
member alike (a machine slower for the group's minute, or for the whole run) cannot be told from one in the
code by the members alone. The canary can: the same fp32 work in every group of every run, a CANARY_SIZE^2
GEMM and an elementwise pass over its result, timed in the group's rounds, in the same shuffled order as
the cases, on the group's device and threads. It is not a case: the sweep writes its rounds to rounds.csv
(impl cases.CANARY), and gives each row the group's canary median over the run's first one.

    canary = Canary.make("cpu")            # its inputs drawn once, from a fixed seed
    canary.setup(); canary.timed()         # what time_group calls of every member
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CANARY_SIZE = {"cpu": 512, "cuda": 3072}
# n of the canary's n x n fp32 GEMM, by device type: 2 * 512^3 = 0.27 GFLOP, about 1 ms on 2 CPU threads at
# 250-350 GFLOP/s (plus the elementwise pass); 2 * 3072^3 = 58 GFLOP, about 1 ms at an H100's fp32 rate (not
# measured here). Fixed, not calibrated: the same work in every run is what makes two runs' canaries comparable.
CANARY_SEED = 0


@dataclass
class Canary:
    """The canary's work on one device: y = tanh(a @ b), with the device synchronised after it."""

    device: str
    a: Tensor
    b: Tensor

    @classmethod
    def make(cls, device: str) -> Canary:
        n = CANARY_SIZE[device.split(":")[0]]
        gen = torch.Generator().manual_seed(CANARY_SEED)
        a, b = (torch.randn(n, n, generator=gen).to(device) for _ in range(2))
        return cls(device, a, b)

    def setup(self) -> None:
        self.sync()

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def timed(self) -> None:
        torch.tanh(torch.mm(self.a, self.b))
        self.sync()
