"""Cases: one measurement's whole configuration, as a frozen, hashable value.

scenario.expand() turns a scenario's grid into these; the sweep runs them. Every
field is a column of the case's rows, and `case_id(case)`, a hash of all of
them, is the `case_id` column by which --resume tells finished cases from
missing ones.

- ThroughputCase: one [[throughput]] case, timed (harness/measure/timing.py) in its
  comparison group: the cases of one section that differ only in impl
  (`group_id`), timed round-robin so that they share the machine's drift.
- GradientCase:   one [[gradients]] configuration, all of its seeds (harness/measure/gradients.py).
- TaskCase:       one [[task]] training run (harness/measure/tasks.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields

from harness.implementations import lengths as varlen
from harness.implementations import registry
from harness.implementations.models import Shape

# A field added after runs were stored: at its default, or None where it does not apply, it is left
# out of case_id, so the ids of those runs' cases (and --resume of them) are unchanged.
LATER = {"later": True}

KEY_COLUMNS = ["impl", "device", "dtype", "batch", "seq_len", "hidden", "input", "phase", "layers", "bidirectional",
               "proj_size", "dropout", "lengths", "lengths_mode", "autocast", "tf32", "compile_mode", "gemm"]
# what identifies a throughput measurement across runs (not rounds, warm-up, seed or threads): compare's key
KEY_DEFAULTS = {"layers": "1", "bidirectional": "False", "proj_size": "0", "dropout": "0.0", "lengths": "fixed",
                "lengths_mode": "", "autocast": "none", "tf32": "", "compile_mode": "", "gemm": "aten"}
# the key columns' values, as timings.csv writes them, for rows of runs made before the column existed (gemm:
# row_gemm, from the backend that ran)


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
    bidirectional: bool = False
    proj_size: int = 0            # LSTM only; 0: no projection
    dropout: float = 0.0          # between layers, train phase only (0 where it cannot act)
    lengths: str = varlen.FIXED   # "fixed" or "uniform:LO-HI" (harness/implementations/lengths.py); seq_len is HI
    lengths_mode: str | None = None   # packed | masked | padded; None for fixed lengths
    autocast: str = field(default="none", metadata=LATER)   # none | bfloat16 | float16: torch.autocast's dtype
    tf32: bool | None = field(default=None, metadata=LATER)  # CUDA: TF32 for float32 GEMMs and cuDNN; None on CPU
    compile_mode: str | None = field(default=None, metadata=LATER)   # torch.compile's mode; None: not compiled
    gemm: str | None = field(default="aten", metadata=LATER)   # the library of a model's own GEMMs (gemm.py); None
    # for a library kernel, whose backend picks them (its row records which: row_gemm)
    max_compile_s: float = field(default=120.0, metadata=LATER)      # preflight skips a longer expected compile
    accuracy: bool = field(default=True, metadata=LATER)     # the error pass against float64 (measure/accuracy.py)
    max_ref_s: float = field(default=30.0, metadata=LATER)   # ... whose train reference may take this long, seconds
    interleave: bool = True   # time the group round-robin (False: each case's rounds as one block)
    max_time_s: float = 30.0  # rounds = "auto": stop the group's rounds after this many seconds
    section_index: int = 1    # which [[throughput]] section of the file (1-based): groups stay within one
    section: str = "throughput"

    @property
    def cell(self) -> str:
        return registry.get(self.impl).cell

    @property
    def shape(self) -> Shape:
        return Shape(self.layers, self.bidirectional, self.proj_size, self.dropout)

    @property
    def slug(self) -> str:
        """impl_device_bBATCH_tT_hH_phase (plus dtype, input and the stack where they differ from the usual)."""
        s = f"{self.impl}_{self.device.replace(':', '')}_{size_label(self.batch, self.seq_len, self.hidden, '_')}"
        if self.input != self.hidden:
            s += f"_i{self.input}"
        if self.dtype != "float32":
            s += f"_{self.dtype}"
        s += f"_ac-{self.autocast}" if self.autocast != "none" else ""
        s += "_tf32" if self.tf32 else ""
        s += f"_{self.compile_mode}" if self.compile_mode not in (None, "default") else ""
        s += f"_{self.gemm}" if self.gemm not in (None, "aten") else ""
        return f"{s}{stack_slug(self.shape, self.lengths, self.lengths_mode)}_{self.phase}"

    def key(self) -> tuple:
        """What identifies the measurement across runs: the KEY_COLUMNS."""
        return tuple(getattr(self, k) for k in KEY_COLUMNS)

    def as_row(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def row_gemm(row) -> str:
    """The GEMM library a timings row ran on: its gemm column; where that is blank (a run made before it, or a
    case not built), the library of the backend that ran (registry.BACKEND_GEMM; aten for native)."""
    if (value := row.get("gemm")) not in (None, "") and value == value:
        return str(value)
    return registry.BACKEND_GEMM.get(str(row.get("backend") or ""), "aten")


def row_key(row) -> tuple:
    """A timings row's KEY_COLUMNS as timings.csv writes them, with the defaults of a run made before a column
    existed filled in (compare's key of a measurement across runs)."""
    return tuple(row_gemm(row) if k == "gemm" else (row.get(k) or KEY_DEFAULTS.get(k, "")) for k in KEY_COLUMNS)


def impl_label(impl: str, gemm) -> str:
    """'fused-lstm[onednn]': an implementation that calls its own GEMMs, named with its library where that is not
    aten; every other, its name (a library kernel's library is its backend's)."""
    own = impl in registry.IMPLS and registry.get(impl).gemms
    return f"{impl}[{gemm}]" if own and gemm not in (None, "", "aten") and gemm == gemm else impl


def size_label(batch, seq_len, hidden, sep: str = " ") -> str:
    """'b32 t100 h256' (without t where seq_len is None): a case's sizes, in this one order everywhere --
    the terminal, the report's sentences, tables and figures, and (sep "_") the slugs."""
    parts = [f"b{int(batch)}"] + ([f"t{int(seq_len)}"] if seq_len is not None else []) + [f"h{int(hidden)}"]
    return sep.join(parts)


def size_of(row) -> str:
    """size_label of a row (a dict, a pandas row, or anything with batch, seq_len and hidden)."""
    return size_label(row["batch"], row["seq_len"], row["hidden"])


def stack_slug(shape: Shape, lengths: str = varlen.FIXED, mode: str | None = None) -> str:
    """'_l4_bi_p128_d0.2_u30-100-packed': the parts of a stack that differ from one plain layer."""
    s = f"_l{shape.layers}" if shape.layers != 1 else ""
    s += "_bi" if shape.bidirectional else ""
    s += f"_p{shape.proj_size}" if shape.proj_size else ""
    s += f"_d{shape.dropout:g}" if shape.dropout else ""
    if lengths != varlen.FIXED:
        s += f"_u{lengths.split(':', 1)[1]}-{mode}"
    return s


def stack_label(row: dict) -> str:
    """'4 layers, bidirectional, proj 128, dropout 0.2, uniform:30-100 packed, autocast bfloat16, tf32'; ""
    for one plain layer of fixed length in the parameters' own precision, compiled (if at all) in torch.compile's
    default mode (the `stack` column: the claims and size figures compare only those)."""
    parts = []
    if int(row.get("layers") or 1) != 1:
        parts.append(f"{int(row['layers'])} layers")
    if str(row.get("bidirectional")) == "True":
        parts.append("bidirectional")
    if float(row.get("proj_size") or 0):
        parts.append(f"proj {int(row['proj_size'])}")
    if float(row.get("dropout") or 0):
        parts.append(f"dropout {float(row['dropout']):g}")
    if (row.get("lengths") or "fixed") != "fixed":
        parts.append(f"{row['lengths']} {row.get('lengths_mode') or ''}".strip())
    if str(row.get("autocast") or "none") not in ("none", "nan"):
        parts.append(f"autocast {row['autocast']}")
    if str(row.get("tf32")) == "True":
        parts.append("tf32")
    if str(row.get("compile_mode") or "default") not in ("default", "nan"):
        parts.append(str(row["compile_mode"]))
    return ", ".join(parts)


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
    layers: int = 1
    spectral_radius: float | None = field(default=None, metadata=LATER)   # None: as drawn
    autocast: str = field(default="none", metadata=LATER)   # torch.autocast's dtype around the forward, or none
    section: str = "gradients"

    @property
    def shape(self) -> Shape:
        return Shape(self.layers)

    @property
    def slug(self) -> str:
        s = (f"grad_{self.impl}_{self.device.replace(':', '')}_{size_label(self.batch, self.seq_len, self.hidden, '_')}"
             f"_{self.init}")
        s += stack_slug(self.shape)
        if self.forget_bias:
            s += f"_fb{self.forget_bias:g}"
        if self.nonlinearity and self.nonlinearity != "tanh":
            s += f"_{self.nonlinearity}"
        if self.spectral_radius is not None:
            s += f"_rho{self.spectral_radius:g}"
        s += f"_ac-{self.autocast}" if self.autocast != "none" else ""
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
    layers: int = 1
    nonlinearity: str | None = field(default="tanh", metadata=LATER)    # RNN only; None where it does not apply
    spectral_radius: float | None = field(default=None, metadata=LATER)   # None: as drawn
    autocast: str = field(default="none", metadata=LATER)   # torch.autocast's dtype around the forwards, or none
    early_stop: int = field(default=0, metadata=LATER)      # stop once solved at this many evaluations in a row; 0: off
    section: str = "task"

    @property
    def shape(self) -> Shape:
        return Shape(self.layers)

    @property
    def slug(self) -> str:
        s = f"{self.task}_{self.impl}_{self.device.replace(':', '')}_t{self.seq_len}_h{self.hidden}"
        s += stack_slug(self.shape)
        s += f"_fb{self.forget_bias:g}" if self.forget_bias else ""
        s += f"_{self.init}" if self.init != "pytorch" else ""
        s += f"_{self.nonlinearity}" if self.nonlinearity and self.nonlinearity != "tanh" else ""
        s += f"_rho{self.spectral_radius:g}" if self.spectral_radius is not None else ""
        s += f"_ac-{self.autocast}" if self.autocast != "none" else ""
        return s + (f"_s{self.seed}" if self.seed else "")


GROUP_EXCLUDES = ("impl", "compile_mode", "gemm")   # a comparison group's members differ in these fields only: a
# compiled member in each mode, and a model on each GEMM library, is timed beside the others


def group_key(case: ThroughputCase) -> tuple:
    """What a case shares with the other members of its comparison group: every field but GROUP_EXCLUDES."""
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


CANARY = "canary"     # rounds.csv's impl of a group's canary (measure/canary.py): timed with the group, no case


def canary_id(gid: str) -> str:
    """The case_id column of a group's canary rounds (it is no case: no row of timings.csv has it)."""
    return f"{CANARY}:{gid}"


REFERENCES = {"lstm": "torch-lstm", "rnn": "torch-rnn", "gru": "torch-gru",   # a group's ratio_ref, by cell
              "mingru": "mingru-loop", "minlstm": "minlstm-loop"}        # a min cell's scan over its own loop


def reference(case: ThroughputCase, ok: list[ThroughputCase]) -> ThroughputCase:
    """What a member's ratio is taken against: its cell's library layer (REFERENCES) where the group
    timed it, else the group's first member of the same cell (which may be the case itself)."""
    same = [c for c in ok if c.cell == case.cell]
    return next((c for c in same if c.impl == REFERENCES.get(case.cell)), same[0])


CASES = {"throughput": ThroughputCase, "gradients": GradientCase, "task": TaskCase}


def case_id(case) -> str:
    """A short, stable id of a case's configuration: the `case_id` column of every table,
    by which --resume tells finished cases from missing ones."""
    blob = json.dumps({f.name: getattr(case, f.name) for f in fields(case)
                       if not (f.metadata.get("later") and getattr(case, f.name) in (f.default, None))}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
