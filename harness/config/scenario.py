"""Scenario files (scenarios/*.toml): loading, one-line errors and grid expansion (the keys: harness/config/schema.py).

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
import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path

from pydantic import ValidationError

from harness.config.cases import CASES, ThroughputCase
from harness.config.schema import DEFAULTS, SECTIONS, Scenario, Settings, from_resolved
from harness.core.env import SCENARIOS
from harness.core.errors import UsageError
from harness.implementations import lengths as varlen
from harness.implementations import registry
from harness.implementations.params import FORGET_CELLS, NO_RECURRENT

__all__ = ["DEFAULTS", "MAX_CASES", "SECTIONS", "Scenario", "Settings", "TooLarge", "expand", "from_resolved",
           "grid_size", "load", "profiled", "resolve", "resolved", "shipped"]


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


def _where(path: Path, loc: tuple) -> str:
    """'file: [[throughput]] #2, key 'batch'' from a pydantic error location (never empty: every field of a
    Scenario is a key, and it has no model-wide validator)."""
    if loc[0] in SECTIONS and len(loc) > 1 and isinstance(loc[1], int):
        where, rest = f"[[{loc[0]}]] #{loc[1] + 1}", loc[2:]
    elif loc[0] == "defaults":
        where, rest = "[defaults]", loc[1:]
    else:
        where, rest = "top level", loc
    key = next((str(x) for x in rest if isinstance(x, str)), None)
    return f"{path}: {where}" + (f", key {key!r}" if key else "")


def _allowed_keys(section: str | None) -> list[str]:
    """The keys a [[section]], [defaults] or (None) the top level may hold, in the schema's order."""
    if section in SECTIONS:
        own = [k for k in SECTIONS[section].model_fields if k not in Settings.model_fields]
        return own + list(Settings.model_fields)
    if section == "defaults":
        return list(Settings.model_fields)
    return [k for k in Scenario.model_fields if k != "path"]


def _one_line(path: Path, exc: ValidationError) -> str:
    # an unknown key first: a misspelt key also makes the real one "missing"
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(err["loc"])
    where = _where(path, loc)
    if err["type"] == "extra_forbidden":            # in a section or [defaults]: load() checks the top level
        key = str(loc[-1])
        allowed = _allowed_keys(str(loc[0]))
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key{hint} allowed: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{where}: missing (required)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "bool_type":
        msg += " (true or false)"
    if err["type"] in ("literal_error", "bool_type"):
        msg = f"{msg}, not {err['input']!r}"
    return f"{where}: {msg}"


MAX_CASES = 100_000        # a grid larger than this is refused before anything starts, unless run --yes
SECONDS_PER_CASE = 0.27    # a floor for the time estimate: quick ran 391 cases in 106 s on 2 cores, its smallest


def grid_size(sc: Scenario) -> int:
    """How many cases the grids make, counted without making them (before keys that do not apply collapse)."""
    return sum(math.prod(len(v) for v in _grid(sc, name, n, sec).values())
               for name in SECTIONS for n, sec in enumerate(getattr(sc, name), start=1))


class TooLarge(UsageError):
    """A grid of more than MAX_CASES cases: refused unless confirmed (run --yes)."""

    def __init__(self, path, size: int):
        self.size = size
        hours = size * SECONDS_PER_CASE / 3600
        super().__init__(f"{path}: {size:,} cases, more than {MAX_CASES:,}: at least {hours:,.1f} h at "
                         f"{SECONDS_PER_CASE} s a case; run it with --yes to start it anyway, or make the grid smaller")


def load(name_or_path: str | Path, max_cases: int | None = MAX_CASES) -> Scenario:
    """The scenario in a file (or shipped, by name), validated and its grid checked; UsageError in one line.
    A grid of more than max_cases cases raises TooLarge before it is expanded (None: no limit)."""
    path = resolve(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    unknown = [k for k in data if k not in Scenario.model_fields or k == "path"]
    for key in unknown:
        allowed = _allowed_keys(None)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"{path}: top level, key {key!r}: unknown key or section{hint} allowed: {', '.join(allowed)}")
    try:
        sc = Scenario(**data, path=str(path))
    except ValidationError as exc:
        raise UsageError(_one_line(path, exc)) from None
    if not (sc.throughput or sc.gradients or sc.task):
        raise UsageError(f"{path}: no sections: add at least one of {', '.join(f'[[{s}]]' for s in SECTIONS)}")
    if max_cases is not None and (size := grid_size(sc)) > max_cases:
        raise TooLarge(path, size)
    expand(sc)  # empty grids and duplicates are errors too
    return sc


def _setting(section: Settings, defaults: Settings, key: str):
    for source in (section, defaults, DEFAULTS):
        v = getattr(source, key)
        if v is not None:
            return v
    raise AssertionError(key)


def _normalise(case):
    """Axes that do not apply to a case become None or their no-op value (so they do not multiply it):
    forget_bias off the cells with no forget gate, nonlinearity off RNNs; lengths_mode for fixed lengths; dropout in
    the forward phase or with one layer (it acts between layers, in training); gemm off the library kernels. A
    variable-length case's seq_len is HI."""
    cell = registry.get(case.impl).cell
    changes = {}
    if hasattr(case, "forget_bias") and cell not in FORGET_CELLS:
        changes["forget_bias"] = None
    if hasattr(case, "nonlinearity") and cell != "rnn":
        changes["nonlinearity"] = None
    if isinstance(case, ThroughputCase):
        bounds = varlen.parse(case.lengths)
        if bounds is None:
            changes["lengths_mode"] = None
        else:
            changes["seq_len"] = bounds[1]
        if case.dropout and (case.phase != "train" or case.layers == 1):
            changes["dropout"] = 0.0
        if registry.get(case.impl).compiler != "inductor":
            changes["compile_mode"] = None
        if not registry.get(case.impl).gemms:
            changes["gemm"] = None            # a library kernel: its backend picks its GEMMs
        if not case.device.startswith("cuda"):
            changes["tf32"] = None
    return replace(case, **changes) if changes else case


def _check_init(case, where: str) -> None:
    """identity is an RNN's init (W_hh = I): one line for any other cell."""
    if getattr(case, "init", None) == "identity" and registry.get(case.impl).cell != "rnn":
        raise UsageError(f"{where}, key 'init': 'identity' applies to RNN implementations only, not {case.impl} "
                         f"(put it in a section of its own)")


def _check_stack(case, where: str) -> None:
    """What nn.LSTM would refuse of a whole case (proj_size against hidden and the cell), as one line."""
    proj = getattr(case, "proj_size", 0)
    if not proj:
        return
    if registry.get(case.impl).cell not in ("lstm", *NO_RECURRENT):   # a min cell's: a skipped row, with why
        raise UsageError(f"{where}, key 'proj_size': applies to LSTM implementations only, not {case.impl} "
                         f"(put it in a section of its own)")
    if proj >= case.hidden:
        raise UsageError(f"{where}, key 'proj_size': must be < hidden (0: none), not {proj} with hidden {case.hidden}")


def _check_precision(case, where: str) -> None:
    """What autocast, tf32 and a compiler cannot take, as one line: float16 autocast or tf32 on a CPU case,
    autocast over parameters that are not float32, and a compiled case with no warm-up (its first call
    compiles, and is timed apart: timing.compile_columns)."""
    kind = registry.device_type(case.device)
    if case.autocast not in registry.AUTOCASTS[kind]:
        raise UsageError(f"{where}, key 'autocast': {case.autocast!r} does not run on {kind}; allowed there: "
                         f"{', '.join(registry.AUTOCASTS[kind])}")
    if case.autocast != registry.NO_AUTOCAST and case.dtype != "float32":
        raise UsageError(f"{where}, key 'autocast': applies to float32 parameters, not {case.dtype} "
                         f"(dtype {case.dtype} alone computes in {case.dtype})")
    if not isinstance(case, ThroughputCase):
        return
    if case.tf32 and kind != "cuda":
        raise UsageError(f"{where}, key 'tf32': applies to CUDA cases only, not {case.device} (allowed: false)")
    if registry.get(case.impl).compiler and case.warmup < 1:
        raise UsageError(f"{where}, key 'warmup': {case.impl} compiles on its first call, which is timed "
                         f"apart: warmup must be >= 1, not {case.warmup}")


def _identity(case) -> tuple:
    """What makes two cases the same measurement."""
    if isinstance(case, ThroughputCase):
        return (case.section, case.key(), case.seed, case.threads)
    return (case.section,) + tuple(getattr(case, f.name) for f in fields(case) if f.name not in ("threads",))


def _grid(sc: Scenario, name: str, n: int, sec) -> dict[str, list]:
    """Section n of kind `name`: each case field's values, in the case's declaration order."""
    model, grid, where = SECTIONS[name], {}, f"{sc.path}: [[{name}]] #{n}"
    for f in fields(CASES[name]):
        if f.name == "section_index":
            grid[f.name] = [n]
            continue
        if f.name not in model.model_fields:
            continue                      # fixed by the case type (section)
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
        grid[f.name] = v
    return grid


def expand(sc: Scenario) -> list:
    """Every case of the scenario: throughput, then gradients, then task sections, in
    file order. Within a section the grid is the product of the case's fields in
    declaration order (the last varies fastest). Duplicates are an error."""
    cases: list = []
    seen: dict[tuple, str] = {}
    for name in SECTIONS:
        case_cls = CASES[name]
        for n, sec in enumerate(getattr(sc, name), start=1):
            where = f"{sc.path}: [[{name}]] #{n}"
            grid = _grid(sc, name, n, sec)
            section_cases, in_section = [], set()
            for combo in itertools.product(*grid.values()):
                values = dict(zip(grid, combo, strict=True))
                if values.get("input", 0) is None:
                    values["input"] = values["hidden"]
                case = case_cls(**values)
                _check_precision(case, where)
                case = _normalise(case)
                _check_stack(case, where)
                _check_init(case, where)
                if case not in in_section:           # keys that do not apply collapse to one case
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


def on_device(sc: Scenario, device: str) -> Scenario:
    """Only the cases of `sc` on `device` (run --device cuda): each section's device list is cut to
    it, and a section without it is dropped. The run is named NAME-DEVICE (quick-cuda)."""
    try:
        registry.device_type(device)
    except ValueError as exc:
        raise UsageError(f"run --device: {exc}") from None
    kept = {}
    for kind in SECTIONS:
        sections = []
        for sec in getattr(sc, kind):
            if device in _setting(sec, sc.defaults, "device"):
                sections.append(sec.model_copy(update={"device": [device]}))
        kept[kind] = sections
    if not any(kept.values()):
        raise UsageError(f"{sc.path or sc.name}: no case of scenario {sc.name} runs on {device} "
                         f"(--device keeps only those)")
    return sc.model_copy(update={**kept, "name": f"{sc.name}-{device.replace(':', '')}"})


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

