"""Cases: one measurement's whole configuration, as a frozen, hashable value.

scenario.expand() turns a scenario's grid into these; the sweep runs them. Every
field is a column of the case's rows, and `case_id(case)`, a hash of all of
them, is the `case_id` column by which --resume tells finished cases from
missing ones.

- ThroughputCase: one [[throughput]] case, timed (harness/timing.py) in its
  comparison group: the cases of one section that differ only in impl
  (`group_id`), timed round-robin so that they share the machine's drift.
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
    rounds: int | str     # timed rounds, or "auto": until every median is known to +-AUTO_PRECISION
    warmup: int
    memory: bool
    profile: bool = False
    layers: int = 1
    interleave: bool = True   # time the group round-robin (False: each case's rounds as one block)
    max_time_s: float = 30.0  # rounds = "auto": stop the group's rounds after this many seconds
    section_index: int = 1    # which [[throughput]] section of the file (1-based): groups stay within one
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


GROUP_EXCLUDES = ("impl",)    # a comparison group's members differ in these fields only


def group_key(case: ThroughputCase) -> tuple:
    """What a case shares with the other members of its comparison group: every field but impl."""
    return tuple(getattr(case, f.name) for f in fields(case) if f.name not in GROUP_EXCLUDES)


def group_id(case: ThroughputCase) -> str:
    """A short, stable id of a case's comparison group (the `group_id` column)."""
    blob = json.dumps(group_key(case))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def groups(cases: list) -> list[list]:
    """The throughput cases as comparison groups, in order of each group's first member;
    every other case is a group of its own."""
    out: dict[object, list] = {}
    for n, c in enumerate(cases):
        out.setdefault(group_key(c) if isinstance(c, ThroughputCase) else ("single", n), []).append(c)
    return list(out.values())


CASES = {"throughput": ThroughputCase, "gradients": GradientCase, "task": TaskCase}


def case_id(case) -> str:
    """A short, stable id of a case's configuration: the `case_id` column of every table,
    by which --resume tells finished cases from missing ones."""
    blob = json.dumps({f.name: getattr(case, f.name) for f in fields(case)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
