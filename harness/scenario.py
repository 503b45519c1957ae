"""Scenario files (scenarios/*.toml): the schema, validation and grid expansion.

A scenario is data. Every list is a grid axis and the grid is the cartesian
product of the lists; every scalar is fixed. See scenarios/README.md.

    name = "quick"
    description = "..."
    [defaults]                 # apply to every section unless it sets the key itself
    dtype = "float32"
    threads = 2                # omit: all physical cores
    seed = 0
    [[throughput]]
    impl = ["fused-lstm", "torch-lstm"]
    hidden = [64, 256]         # input defaults to hidden
    seq_len = 100
    batch = [8, 32]
    phase = ["forward", "train"]

Mistakes raise errors.UsageError with one line: file, section, key, allowed values.
"""
from __future__ import annotations

import difflib
import itertools
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from harness import registry
from harness.cases import CASES, ThroughputCase
from harness.env import SCENARIOS
from harness.errors import UsageError


def _listify(v: Any) -> Any:
    return v if isinstance(v, list) or v is None else [v]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(_Strict):
    """Keys that [defaults] sets for every section and a section may override."""

    device: list[str] | None = None      # "cpu" | "cuda" | "cuda:N"; default: cpu
    dtype: list[str] | None = None       # float32 | float64 | bfloat16 | float16; default: float32
    threads: list[int] | None = None     # torch intra-op threads; default: all physical cores
    seed: list[int] | None = None        # seeds the canonical parameters and the inputs; default 0
    rounds: Annotated[int, Field(gt=0)] | Literal["auto"] | None = None
    # timed rounds per case (default 10); "auto": until every member's median is known to +-2% (95%
    # interval), or max_time_s
    warmup: int | None = Field(None, ge=0)   # untimed warm-up rounds per case (default 2)
    interleave: StrictBool | None = None  # time a comparison group round-robin, in a seeded random order per
    # round (default true); false: each case's rounds as one block, one case after another
    max_time_s: float | None = Field(None, gt=0)   # rounds = "auto": seconds of rounds per group at most (30)

    _v_lists = field_validator("device", "dtype", "threads", "seed", mode="before")(_listify)

    @field_validator("rounds", mode="before")
    @classmethod
    def _rounds(cls, v):
        if isinstance(v, str) and v != "auto" or isinstance(v, bool | float):
            raise ValueError(f'must be a positive integer or "auto", not {v!r}')
        return v

    @field_validator("device")
    @classmethod
    def _devices(cls, v):
        for d in v or []:
            registry.device_type(d)
        return v

    @field_validator("dtype")
    @classmethod
    def _dtypes(cls, v):
        for d in v or []:
            if d not in registry.DTYPES:
                raise ValueError(f"unknown dtype {d!r}; allowed: {', '.join(registry.DTYPES)}")
        return v

    @field_validator("threads", "seed")
    @classmethod
    def _non_negative(cls, v, info):
        for n in v or []:
            if n < (1 if info.field_name == "threads" else 0):
                raise ValueError(f"must be {'positive' if info.field_name == 'threads' else '>= 0'}, not {n}")
        return v


# The built-in defaults under [defaults]; threads 0 means all physical cores.
DEFAULTS = Settings.model_construct(device=["cpu"], dtype=["float32"], threads=[0], seed=[0], rounds=10, warmup=2,
                                    interleave=True, max_time_s=30.0)


class Throughput(Settings):
    """[[throughput]]: time, throughput and peak memory of each case."""

    impl: list[str]
    hidden: list[int]
    input: list[int] | None = None       # default: the same as hidden
    seq_len: list[int]
    batch: list[int]
    phase: list[Literal["forward", "train"]] = ["forward", "train"]
    # forward: inference, under torch.no_grad()
    # train:   forward + backward of sum(outputs), parameter gradients zeroed before each round
    memory: bool = True                  # measure peak memory in a separate, untimed pass
    profile: bool = False                # also run each case under torch.profiler (harness/profiler.py)

    _v_axes = field_validator("impl", "hidden", "input", "seq_len", "batch", "phase", mode="before")(_listify)

    @field_validator("impl")
    @classmethod
    def _impls(cls, v):
        for name in v:
            registry.get(name)
        return v

    @field_validator("hidden", "input", "seq_len", "batch")
    @classmethod
    def _sizes(cls, v):
        for n in v or []:
            if n <= 0:
                raise ValueError(f"sizes must be positive integers, not {n}")
        return v


class Gradients(Settings):
    """[[gradients]]: ||dL/dx_t|| over distance, and its fitted decay (harness/gradients.py)."""

    impl: list[str]
    hidden: list[int]
    input: list[int] | None = None       # default: the same as hidden
    seq_len: list[int]
    batch: list[int] = [1]
    init: list[Literal["pytorch", "seed", "d2l", "orthogonal"]] = ["pytorch"]
    forget_bias: list[float] = [0.0]     # added to the forget gate's total bias (LSTM only)
    nonlinearity: list[Literal["tanh", "relu"]] = ["tanh"]   # RNN only
    seeds: int = Field(3, gt=0)          # how many seeds, from `seed` on: the spread and the interval

    _v_axes = field_validator("impl", "hidden", "input", "seq_len", "batch", "init", "forget_bias", "nonlinearity",
                              mode="before")(_listify)
    _impls = field_validator("impl")(Throughput._impls.__func__)
    _sizes = field_validator("hidden", "input", "seq_len", "batch")(Throughput._sizes.__func__)


class Task(Settings):
    """[[task]]: training on a long-range task (harness/tasks.py)."""

    task: list[Literal["adding", "copy"]]
    impl: list[str]
    hidden: list[int]
    seq_len: list[int]
    batch: list[int] = [32]
    steps: list[int] = [1000]            # optimiser steps
    lr: list[float] = [1e-3]             # Adam's learning rate
    clip: list[float] = [1.0]            # gradient-norm clip; 0: none
    forget_bias: list[float] = [0.0]     # LSTM only
    init: list[Literal["pytorch", "seed", "d2l", "orthogonal"]] = ["pytorch"]
    eval_every: int = Field(50, gt=0)    # steps between evaluations on the held-out set
    eval_size: int = Field(256, gt=0)    # held-out sequences

    _v_axes = field_validator("task", "impl", "hidden", "seq_len", "batch", "steps", "lr", "clip", "forget_bias",
                              "init", mode="before")(_listify)
    _impls = field_validator("impl")(Throughput._impls.__func__)
    _sizes = field_validator("hidden", "seq_len", "batch", "steps")(Throughput._sizes.__func__)

    @field_validator("lr")
    @classmethod
    def _lr(cls, v):
        for x in v:
            if not x > 0:
                raise ValueError(f"must be positive, not {x}")
        return v

    @field_validator("clip")
    @classmethod
    def _clip(cls, v):
        for x in v:
            if x < 0:
                raise ValueError(f"must be >= 0 (0: no clipping), not {x}")
        return v


class Scenario(_Strict):
    name: str
    description: str = ""
    defaults: Settings = Settings()
    throughput: list[Throughput] = []
    gradients: list[Gradients] = []
    task: list[Task] = []
    path: str = ""


SECTIONS = {"throughput": Throughput, "gradients": Gradients, "task": Task}


def from_resolved(data: dict) -> Scenario:
    """The Scenario that run.json's resolved copy describes (for --resume)."""
    keep = {k: v for k, v in data.items() if k in Scenario.model_fields}
    return Scenario(**keep)


# -- loading ------------------------------------------------------------------------------
def shipped() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A scenario by path, or by short name in scenarios/."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or "/" in name_or_path:
        if not p.is_file():
            raise UsageError(f"{name_or_path}: no such scenario file")
        return p
    candidate = SCENARIOS / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    names = ", ".join(q.stem for q in shipped())
    raise UsageError(f"unknown scenario {name_or_path!r}; shipped: {names} (or give a path to a .toml file)")


def _where(path: Path, loc: tuple, data: dict) -> str:
    """'file: [[throughput]] #2, key 'batch'' from a pydantic error location."""
    parts = [str(path)]
    if not loc:
        return parts[0]
    if loc[0] in SECTIONS and len(loc) > 1 and isinstance(loc[1], int):
        where = f"[[{loc[0]}]] #{loc[1] + 1}"
        rest = loc[2:]
    elif loc[0] == "defaults":
        where, rest = "[defaults]", loc[1:]
    else:
        where, rest = "top level", loc
    key = next((str(x) for x in rest if isinstance(x, str)), None)
    return f"{path}: {where}" + (f", key {key!r}" if key else "")


def _allowed_keys(loc: tuple) -> list[str]:
    if loc and loc[0] in SECTIONS:
        own = [k for k in SECTIONS[loc[0]].model_fields if k not in Settings.model_fields]
        return own + list(Settings.model_fields)
    if loc and loc[0] == "defaults":
        return list(Settings.model_fields)
    return [k for k in Scenario.model_fields if k != "path"]


def _one_line(path: Path, exc: ValidationError, data: dict) -> str:
    # an unknown key first: a misspelt key also makes the real one "missing"
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(err["loc"])
    where = _where(path, loc, data)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1] if loc[0] not in SECTIONS else loc[:2])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key{hint} allowed: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{where}: missing (required)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg = f"{msg}, not {err['input']!r}"
    return f"{where}: {msg}"


def load(name_or_path: str | Path) -> Scenario:
    path = resolve(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    unknown = [k for k in data if k not in Scenario.model_fields or k == "path"]
    for key in unknown:
        allowed = _allowed_keys(())
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"{path}: top level, key {key!r}: unknown key or section{hint} allowed: {', '.join(allowed)}")
    try:
        sc = Scenario(**data, path=str(path))
    except ValidationError as exc:
        raise UsageError(_one_line(path, exc, data)) from None
    if not (sc.throughput or sc.gradients or sc.task):
        raise UsageError(f"{path}: no sections: add at least one of {', '.join(f'[[{s}]]' for s in SECTIONS)}")
    expand(sc)  # empty grids and duplicates are errors too
    return sc


def _setting(section: Settings, defaults: Settings, key: str):
    for source in (section, defaults, DEFAULTS):
        v = getattr(source, key)
        if v is not None:
            return v
    raise AssertionError(key)


def _normalise(case):
    """Axes that do not apply to a case's cell become None (so they do not multiply it)."""
    cell = registry.get(case.impl).cell
    changes = {}
    if hasattr(case, "forget_bias") and cell != "lstm":
        changes["forget_bias"] = None
    if hasattr(case, "nonlinearity") and cell != "rnn":
        changes["nonlinearity"] = None
    return replace(case, **changes) if changes else case


def _identity(case) -> tuple:
    """What makes two cases the same measurement."""
    if isinstance(case, ThroughputCase):
        return (case.section, case.key(), case.seed, case.threads)
    return (case.section,) + tuple(getattr(case, f.name) for f in fields(case) if f.name not in ("threads",))


def expand(sc: Scenario) -> list:
    """Every case of the scenario: throughput, then gradients, then task sections, in
    file order. Within a section the grid is the product of the case's fields in
    declaration order (the last varies fastest). Duplicates are an error."""
    cases: list = []
    seen: dict[tuple, str] = {}
    for name, model in SECTIONS.items():
        case_cls = CASES[name]
        for n, sec in enumerate(getattr(sc, name), start=1):
            where = f"{sc.path}: [[{name}]] #{n}"
            axes = {}
            for f in fields(case_cls):
                if f.name == "section_index":
                    axes[f.name] = [n]
                    continue
                if f.name not in model.model_fields:
                    continue                      # fixed by the case type (section, layers)
                if f.name in Settings.model_fields:
                    v = _setting(sec, sc.defaults, f.name)
                elif f.name == "input" and name != "task":
                    v = sec.input or [None]
                else:
                    v = getattr(sec, f.name, None)
                v = v if isinstance(v, list) else [v]
                if len(set(v)) != len(v):
                    dup = next(x for x in v if v.count(x) > 1)
                    raise UsageError(f"{where}, key {f.name!r}: duplicate value {dup!r}")
                axes[f.name] = v
            section_cases, in_section = [], set()
            for combo in itertools.product(*axes.values()):
                values = dict(zip(axes, combo, strict=True))
                if values.get("input", 0) is None:
                    values["input"] = values["hidden"]
                case = _normalise(case_cls(**values))
                if case not in in_section:           # axes that do not apply collapse to one case
                    in_section.add(case)
                    section_cases.append(case)
            if not section_cases:
                raise UsageError(f"{where}: empty grid (an axis is an empty list)")
            for case in section_cases:
                k = _identity(case)
                if k in seen:
                    raise UsageError(f"{where}: duplicate case {case.slug} (already in {seen[k]})")
                seen[k] = f"[[{name}]] #{n}"
            cases += section_cases
    return cases


def profiled(sc: Scenario) -> Scenario:
    """The scenario's throughput sections with profile = true (and no other section): python -m harness profile."""
    return sc.model_copy(update={"throughput": [t.model_copy(update={"profile": True}) for t in sc.throughput],
                                 "gradients": [], "task": []})


def resolved(sc: Scenario) -> dict:
    """The scenario with every default filled in, for run.json."""
    out = sc.model_dump(exclude={"path"})
    out["path"] = sc.path
    out["cases"] = len(expand(sc))
    return out

