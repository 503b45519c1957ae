"""The scenario schema: every key a scenario file may set, its type, default and allowed values.

pydantic checks a file against these models; harness/config/scenario.py loads files, turns the
errors into one line each, and expands the grids. Every list is a grid axis; a scalar is
one value. scenarios/README.md documents each key.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from harness.implementations import lengths as varlen
from harness.implementations import registry
from harness.implementations.compiled import COMPILE_MODES
from harness.implementations.params import stack_problem


def _listify(v: Any) -> Any:
    return v if isinstance(v, list) or v is None else [v]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)   # nan and inf are no setting


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
    profile: bool = False                # also run each case under torch.profiler (harness/measure/profiling.py)
    # the stack (nn.LSTM's own arguments; see implementations/models.py) and variable lengths (lengths.py)
    layers: list[int] = [1]              # stacked layers, >= 1
    bidirectional: list[StrictBool] = [False]
    proj_size: list[int] = [0]           # LSTM only: h_t = W_hr (o * tanh(c_t)), 0 <= proj_size < hidden; 0: none
    dropout: list[float] = [0.0]         # between layers, train phase only, in [0, 1)
    lengths: list[str] = ["fixed"]       # "fixed", or "uniform:LO-HI": each sequence's length ~ U{LO..HI}, seq_len HI
    lengths_mode: list[Literal["packed", "masked", "padded"]] = ["packed"]   # how a variable-length batch runs
    # precision and compilers (harness/implementations/compiled.py, timing.autocast_context)
    autocast: list[Literal["none", "bfloat16", "float16"]] = ["none"]
    # torch.autocast(dtype) around the step's forward, with float32 parameters (dtype is theirs): bfloat16 on
    # CPU and CUDA, float16 on CUDA only. A row records what the step computed in (compute_dtype); where an
    # implementation does not compute in the autocast dtype, its row is skipped with the reason
    tf32: list[StrictBool] = [False]     # CUDA only: float32 GEMMs (cuBLAS) and cuDNN's RNN may use TF32
    compile_mode: list[Literal[COMPILE_MODES]] = ["default"]   # torch.compile's mode, for compiled-lstm and
    # compiled-loop-lstm: default | max-autotune-no-cudagraphs | reduce-overhead (the others have none)
    gemm: list[Literal["aten", "onednn"]] = ["aten"]   # the library of the model's own GEMMs (gemm.LIBRARIES): aten
    # (torch.mm: MKL or OpenBLAS on a CPU, cuBLAS on CUDA) or onednn (oneDNN's CPU matmul), for the models that
    # call their own (scratch-lstm, fused-lstm, bptt-lstm, scratch-rnn); a library kernel's is its backend's
    max_compile_s: float = Field(120.0, gt=0)   # preflight: skip a compile that the fit of compile_s against
    # seq_len (harness/run/preflight.py) expects to take longer, seconds
    accuracy: StrictBool = True          # after its timed rounds, one untimed pass of each row against a float64
    # reference (harness/measure/accuracy.py): out_err, grad_err and numerics; false: none (numerics "unchecked")
    max_ref_s: float = Field(30.0, gt=0)   # the error pass's float64 train reference, expected to take longer than
    # this (train FLOPs over the CPU's float64 GEMM peak), is not run: grad_err blank, with the reason; seconds

    _v_grid = field_validator("impl", "hidden", "input", "seq_len", "batch", "phase", "layers", "bidirectional",
                              "proj_size", "dropout", "lengths", "lengths_mode", "autocast", "tf32", "compile_mode",
                              "gemm", mode="before")(_listify)

    @field_validator("layers", "dropout")
    @classmethod
    def _stack(cls, v, info):
        for x in v:
            if problem := stack_problem(info.field_name, x):
                raise ValueError(problem)
        return v

    @field_validator("proj_size")
    @classmethod
    def _proj(cls, v):
        for n in v:
            if n < 0:
                raise ValueError(f"must be an integer >= 0 and < hidden (0: none), not {n}")
        return v

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, v):
        for spec in v:
            varlen.parse(spec)
        return v

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


Init = Literal["pytorch", "seed", "d2l", "orthogonal", "identity"]      # params.INITS
Nonlinearity = Literal["tanh", "relu", "linear"]                        # params.NONLINEARITIES


def _positive(cls, v):
    for x in v or []:
        if not x > 0:
            raise ValueError(f"must be positive, not {x}")
    return v


class Gradients(Settings):
    """[[gradients]]: ||dL/dx_t|| over distance, and its fitted decay (harness/measure/gradients.py)."""

    impl: list[str]
    hidden: list[int]
    input: list[int] | None = None       # default: the same as hidden
    seq_len: list[int]
    batch: list[int] = [1]
    init: list[Init] = ["pytorch"]       # params.INITS; identity: RNN only (W_hh = I, zero biases)
    forget_bias: list[float] = [0.0]     # added to the forget gate's total bias (LSTM only)
    nonlinearity: list[Nonlinearity] = ["tanh"]   # RNN only; linear: scratch-rnn only (nn.RNN has none)
    seeds: int = Field(3, gt=0)          # how many seeds, from `seed` on: the spread and the interval
    layers: list[int] = [1]              # stacked layers: the gradient reaches x through all of them
    spectral_radius: list[float] | None = None   # each recurrent gate block rescaled to this spectral
                                         # radius (params.rescale_recurrent); omit: as drawn
    autocast: list[Literal["none", "bfloat16", "float16"]] = ["none"]   # as in [[throughput]]: torch.autocast
    # around the forward, so the backward's GEMMs run in it too (does bfloat16 move where a gradient vanishes?)

    _v_grid = field_validator("impl", "hidden", "input", "seq_len", "batch", "init", "forget_bias", "nonlinearity",
                              "layers", "spectral_radius", "autocast", mode="before")(_listify)
    _radius = field_validator("spectral_radius")(_positive)
    _layers = field_validator("layers")(Throughput._stack.__func__)
    _impls = field_validator("impl")(Throughput._impls.__func__)
    _sizes = field_validator("hidden", "input", "seq_len", "batch")(Throughput._sizes.__func__)


class Task(Settings):
    """[[task]]: training on a long-range task (harness/measure/tasks.py)."""

    task: list[Literal["adding", "copy"]]
    impl: list[str]
    hidden: list[int]
    seq_len: list[int]
    batch: list[int] = [32]
    steps: list[int] = [1000]            # optimiser steps
    lr: list[float] = [1e-3]             # Adam's learning rate
    clip: list[float] = [1.0]            # gradient-norm clip; 0: none
    forget_bias: list[float] = [0.0]     # LSTM only
    init: list[Init] = ["pytorch"]       # as in [[gradients]]; identity with relu: the IRNN
    eval_every: int = Field(50, gt=0)    # steps between evaluations on the held-out set
    eval_size: int = Field(256, gt=0)    # held-out sequences
    layers: list[int] = [1]              # stacked layers; the head reads the top one
    nonlinearity: list[Nonlinearity] = ["tanh"]   # RNN only
    spectral_radius: list[float] | None = None   # as in [[gradients]]
    autocast: list[Literal["none", "bfloat16", "float16"]] = ["none"]   # as in [[throughput]], around every forward
    # of training and evaluation (the dynamics probe runs without)
    early_stop: int = Field(0, ge=0)     # stop a seed once its held-out loss is below SOLVED (0.1) x the baseline at
    # this many evaluations in a row (the step it stopped at is the last row's); 0 (the default): train every step

    _v_grid = field_validator("task", "impl", "hidden", "seq_len", "batch", "steps", "lr", "clip", "forget_bias",
                              "init", "layers", "nonlinearity", "spectral_radius", "autocast", mode="before")(_listify)
    _radius = field_validator("spectral_radius")(_positive)
    _layers = field_validator("layers")(Throughput._stack.__func__)
    _impls = field_validator("impl")(Throughput._impls.__func__)
    _sizes = field_validator("hidden", "seq_len", "batch", "steps")(Throughput._sizes.__func__)

    _lr = field_validator("lr")(_positive)

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
