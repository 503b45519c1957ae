"""Cases: one measurement's whole configuration, as a frozen, hashable value.

scenario.expand() turns a scenario's grid into these; the sweep runs them. Every
field is a column of the case's rows, and `case_id(case)`, a hash of all of
them, is the `case_id` column by which --resume tells finished cases from
missing ones.

- ThroughputCase: one [[throughput]] case, timed (harness/timing.py).
- GradientCase:   one [[gradients]] configuration, all of its seeds (harness/gradients.py).
- TaskCase:       one [[task]] training run (harness/tasks.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields

from harness import registry

KEY_COLUMNS = ["impl", "device", "dtype", "batch", "seq_len", "hidden", "input", "phase", "layers"]
# what identifies a throughput measurement across runs (not rounds, warm-up, seed or threads): compare's key


@dataclass(frozen=True)
class ThroughputCase:
    """One timed case: a frozen, hashable value; every field is a column."""

    impl: str
    device: str
    dtype: str
    hidden: int
    input: int
    seq_len: int
    batch: int
    phase: str
    seed: int
    threads: int          # 0: all physical cores (resolved when the case runs)
    rounds: int
    warmup: int
    memory: bool
    profile: bool = False
    layers: int = 1
    section: str = "throughput"

    @property
    def cell(self) -> str:
        return registry.get(self.impl).cell

    @property
    def slug(self) -> str:
        """impl_device_bBATCH_tT_hH_phase (plus dtype and input where they differ from the usual)."""
        s = f"{self.impl}_{self.device.replace(':', '')}_b{self.batch}_t{self.seq_len}_h{self.hidden}"
        if self.input != self.hidden:
            s += f"_i{self.input}"
        if self.dtype != "float32":
            s += f"_{self.dtype}"
        return f"{s}_{self.phase}"

    def key(self) -> tuple:
        """What identifies the measurement across runs: the KEY_COLUMNS."""
        return tuple(getattr(self, k) for k in KEY_COLUMNS)

    def as_row(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class GradientCase:
    """One [[gradients]] configuration, all of its seeds."""

    impl: str
    device: str
    dtype: str
    hidden: int
    input: int
    seq_len: int
    batch: int
    init: str
    forget_bias: float | None      # None where it does not apply (RNN)
    nonlinearity: str | None       # None where it does not apply (LSTM, GRU)
    seed: int                      # the first seed
    seeds: int
    threads: int
    section: str = "gradients"

    @property
    def slug(self) -> str:
        s = f"grad_{self.impl}_{self.device.replace(':', '')}_b{self.batch}_t{self.seq_len}_h{self.hidden}_{self.init}"
        if self.forget_bias:
            s += f"_fb{self.forget_bias:g}"
        if self.nonlinearity and self.nonlinearity != "tanh":
            s += f"_{self.nonlinearity}"
        return s if self.dtype == "float32" else f"{s}_{self.dtype}"


@dataclass(frozen=True)
class TaskCase:
    """One [[task]] training run."""

    task: str
    impl: str
    device: str
    dtype: str
    hidden: int
    seq_len: int
    batch: int
    steps: int
    lr: float
    clip: float
    forget_bias: float | None      # None where it does not apply (RNN)
    init: str
    seed: int
    threads: int
    eval_every: int
    eval_size: int
    section: str = "task"

    @property
    def slug(self) -> str:
        s = f"{self.task}_{self.impl}_{self.device.replace(':', '')}_t{self.seq_len}_h{self.hidden}"
        return s + (f"_fb{self.forget_bias:g}" if self.forget_bias else "")


CASES = {"throughput": ThroughputCase, "gradients": GradientCase, "task": TaskCase}


def case_id(case) -> str:
    """A short, stable id of a case's configuration: the `case_id` column of every table,
    by which --resume tells finished cases from missing ones."""
    blob = json.dumps({f.name: getattr(case, f.name) for f in fields(case)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
