"""The registry of implementations, their backend contexts, and skips.

    model = create("fused-lstm", input_size=256, hidden_size=256,
                   device="cpu", dtype="float32", seed=0)
    y, (h, c) = model(x)            # x: (T, B, I), time-major

Backends are contexts around one builder, not copies of the model: the
torch-lstm, onednn-lstm and cudnn-lstm entries all build `TorchRecurrent`, and
differ only in the context their forward runs in (oneDNN or cuDNN on or off).
harness/measure/profiling.py's `backend_ran()` proves from profiler op names which
backend actually ran.

A device or dtype an implementation does not support, or a device this machine
lacks, raises errors.Skip with a reason; the sweep turns it into a skipped row.
Names that do not exist at all raise `ValueError` listing the allowed values.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass

import torch

from harness.core.errors import Skip
from harness.implementations import gemm
from harness.implementations import lengths as varlen
from harness.implementations.bptt import BPTTLSTM
from harness.implementations.compiled import COMPILE_MODES, CompiledLoopLSTM, CompiledLSTM, CudaGraphLSTM, ScriptedLSTM
from harness.implementations.fused import FusedLSTM
from harness.implementations.minrnn import MinLoop, MinScan
from harness.implementations.models import (
    NONLINEARITIES,
    ONE_LAYER,
    DummyLSTM,
    Recurrent,
    ScratchLSTM,
    ScratchRNN,
    Shape,
    TorchRecurrent,
    canonical_params,
)
from harness.implementations.params import CELL_NAMES, FORGET_CELLS, NO_RECURRENT, rescale_recurrent, stack_problem

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda")
NO_AUTOCAST = "none"
AUTOCASTS = {"cpu": ("none", "bfloat16"), "cuda": ("none", "bfloat16", "float16")}   # the autocast axis, by device
# type: float16 on CPU is refused (CPUs without AVX512-FP16 emulate it; bfloat16 is the CPU's mixed precision)
BACKENDS = ("native", "onednn", "cudnn", "inductor", "torchscript", "cudagraph")
# native: PyTorch's own ATen kernels (a Python loop of them, for the scratch models)
# onednn: oneDNN's fused RNN primitive, aten::mkldnn_rnn_layer (CPU)
# cudnn:  cuDNN's fused RNN, aten::_cudnn_rnn (CUDA)
# inductor, torchscript, cudagraph: the compiled implementations' compilers (harness/implementations/compiled.py)


# -- backend contexts -----------------------------------------------------------
@contextlib.contextmanager
def _enabled(flags_module, value: bool) -> Iterator[None]:
    # Sets torch.backends.{mkldnn,cudnn}.enabled and restores it. (The library's
    # own flags() context also resets TF32 settings and warns about them.)
    old = flags_module.enabled
    flags_module.enabled = value
    try:
        yield
    finally:
        flags_module.enabled = old


def native_kernels(device_type: str) -> ContextManager:
    """The vendor library off: oneDNN off on CPU, cuDNN off on CUDA."""
    return _enabled(torch.backends.mkldnn if device_type == "cpu" else torch.backends.cudnn, False)


def vendor_kernels(device_type: str) -> ContextManager:
    """The vendor library on: oneDNN on CPU, cuDNN on CUDA."""
    return _enabled(torch.backends.mkldnn if device_type == "cpu" else torch.backends.cudnn, True)


def default_kernels(device_type: str) -> ContextManager:
    """Whatever PyTorch picks by default on this device."""
    return contextlib.nullcontext()


# -- the registry -------------------------------------------------------------------------------
STACK = Shape._fields                    # layers, bidirectional, proj_size, dropout: what a stack can have
NN_MODES = ("packed", "padded")          # nn.* take a PackedSequence; a mask is no input they have
COMPILED_LACKS = ("compiled: one plain layer, and variable lengths run padded only: a packed batch changes the "
                  "cell's rows every step, a recompile or a new graph each time")
MIN_LACKS = ("no recurrent matrix, so no projection of h into one; variable lengths run masked or padded: a packed "
             "batch shrinks step by step, which a scan over every step at once has no use for")
ONEDNN_LACKS = ("oneDNN's LSTM takes no PackedSequence and no projection: for those PyTorch runs its native "
                "kernels (torch-lstm) instead")


@dataclass(frozen=True)
class Impl:
    name: str
    cell: str                                  # lstm | rnn | gru | mingru | minlstm (params.GATES)
    devices: tuple[str, ...]                   # device types it runs on
    dtypes: tuple[str, ...]                    # dtypes it runs in
    builder: Callable[..., Recurrent]          # (input_size, hidden_size, shape) -> model
    context: Callable[[str], ContextManager]   # device_type -> backend context
    description: str
    stack: tuple[str, ...] = STACK             # which of the stack's features (STACK) it takes
    lengths_modes: tuple[str, ...] = varlen.MODES    # how it runs a variable-length batch (lengths.MODES)
    lacks: str = "one layer, one direction"    # what a skip for a missing feature says of it
    nonlinearities: tuple[str, ...] = ("tanh", "relu")   # RNN cells: the h-nonlinearities it has
    compiler: str = ""                         # inductor | torchscript | cudagraph (compiled.py); "": eager
    stand_in: bool = False                     # not a recurrent network: it tests the harness (the findings pass it by)
    gemms: tuple[str, ...] = ()                # the GEMM libraries its own products can go through (gemm.py);
    # (): a library kernel, whose backend picks them (the row records which: BACKEND_GEMM)


ALL_DTYPES = tuple(DTYPES)
OWN_GEMMS = gemm.LIBRARIES     # the eager scratch models call their GEMMs themselves: through either library
COMPILED_GEMMS = ("aten",)     # a compiled model's GEMMs are its compiler's: the library it calls in eager code only
BACKEND_GEMM = {"onednn": "onednn", "cudnn": "cudnn"}   # the GEMM library a backend ran on; every other: aten
_lstm = functools.partial(TorchRecurrent, cell="lstm")
MIN_STACK = ("layers", "bidirectional", "dropout")   # a min cell has no h to project: no proj_size
MIN_MODES = ("masked", "padded")
MIN_KINDS = {"scan": (MinScan, "(Feng et al. 2024): one GEMM for every step's gates, then a log-space parallel scan"),
             "loop": (MinLoop, "token by token, as inference runs: a GEMM per step, a Python loop")}


def _min_impl(cell: str, mode: str) -> Impl:
    """mingru-scan, mingru-loop, minlstm-scan, minlstm-loop: one builder per mode (minrnn.py), the cell its argument."""
    builder, what = MIN_KINDS[mode]
    return Impl(f"{cell}-{mode}", cell, DEVICES, ALL_DTYPES, functools.partial(builder, cell=cell), default_kernels,
                f"{CELL_NAMES[cell]} {what}", stack=MIN_STACK, lengths_modes=MIN_MODES, lacks=MIN_LACKS,
                gemms=OWN_GEMMS)

IMPLS: dict[str, Impl] = {i.name: i for i in [
    Impl("scratch-lstm", "lstm", DEVICES, ALL_DTYPES, ScratchLSTM, default_kernels,
         "the tutorial's LSTM: 8 torch.mm per step, a Python loop", gemms=OWN_GEMMS),
    Impl("fused-lstm", "lstm", DEVICES, ALL_DTYPES, FusedLSTM, default_kernels,
         "scratch, optimised: one input GEMM, one (H,4H) GEMM per step", gemms=OWN_GEMMS),
    Impl("bptt-lstm", "lstm", DEVICES, ALL_DTYPES, BPTTLSTM, default_kernels,
         "scratch, with its own backward: one GEMM per step back, weight grads in one GEMM", gemms=OWN_GEMMS),
    Impl("torch-lstm", "lstm", DEVICES, ALL_DTYPES, _lstm, native_kernels,
         "nn.LSTM on native ATen kernels (oneDNN / cuDNN off)", lengths_modes=NN_MODES),
    Impl("onednn-lstm", "lstm", ("cpu",), ("float32", "bfloat16"), _lstm, vendor_kernels,
         "nn.LSTM through oneDNN, PyTorch's default CPU path", stack=("layers", "bidirectional", "dropout"),
         lengths_modes=("padded",), lacks=ONEDNN_LACKS),
    Impl("cudnn-lstm", "lstm", ("cuda",), ALL_DTYPES, _lstm, vendor_kernels,
         "nn.LSTM through cuDNN", lengths_modes=NN_MODES),
    Impl("scratch-rnn", "rnn", DEVICES, ALL_DTYPES, ScratchRNN, default_kernels,
         "tanh (or relu, or linear) RNN from scratch, a Python loop", nonlinearities=NONLINEARITIES, gemms=OWN_GEMMS),
    Impl("torch-rnn", "rnn", DEVICES, ALL_DTYPES, functools.partial(TorchRecurrent, cell="rnn"), default_kernels,
         "nn.RNN (tanh) on the device's default backend", lengths_modes=NN_MODES),
    Impl("torch-gru", "gru", DEVICES, ALL_DTYPES, functools.partial(TorchRecurrent, cell="gru"), default_kernels,
         "nn.GRU on the device's default backend (extra)", lengths_modes=NN_MODES),
    Impl("compiled-lstm", "lstm", DEVICES, ALL_DTYPES, CompiledLSTM, default_kernels,
         "fused-lstm's cell under torch.compile, the loop over T in Python", stack=(), lengths_modes=("padded",),
         lacks=COMPILED_LACKS, compiler=CompiledLSTM.compiler, gemms=COMPILED_GEMMS),
    Impl("compiled-loop-lstm", "lstm", DEVICES, ALL_DTYPES, CompiledLoopLSTM, default_kernels,
         "fused-lstm's whole forward under torch.compile, unrolled over T", stack=(), lengths_modes=("padded",),
         lacks=COMPILED_LACKS, compiler=CompiledLoopLSTM.compiler, gemms=COMPILED_GEMMS),
    Impl("scripted-lstm", "lstm", DEVICES, ALL_DTYPES, ScriptedLSTM, default_kernels,
         "fused-lstm's cell under TorchScript (fastrnns' jit_premul)", stack=(), lengths_modes=("padded",),
         lacks=COMPILED_LACKS, compiler=ScriptedLSTM.compiler, gemms=COMPILED_GEMMS),
    Impl("cudagraph-lstm", "lstm", ("cuda",), ALL_DTYPES, CudaGraphLSTM, default_kernels,
         "fused-lstm's forward and backward captured in a CUDA graph per shape, replayed", stack=(),
         lengths_modes=("padded",), lacks=COMPILED_LACKS, compiler=CudaGraphLSTM.compiler, gemms=COMPILED_GEMMS),
    *(_min_impl(cell, mode) for cell in NO_RECURRENT for mode in MIN_KINDS),
    Impl("dummy", "lstm", DEVICES, ALL_DTYPES, DummyLSTM, default_kernels,
         "not an LSTM: a one-GEMM stand-in for testing the harness", stack=(), lengths_modes=("padded",),
         lacks="a one-layer, one-direction stand-in", stand_in=True, gemms=("aten",)),
]}


def get(name: str) -> Impl:
    if name not in IMPLS:
        raise ValueError(f"unknown implementation {name!r}; allowed: {', '.join(IMPLS)}")
    return IMPLS[name]


def device_type(device: str) -> str:
    kind = device.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)} (or cuda:N)")
    return kind


def device_missing(device: str) -> str | None:
    """Why this machine cannot run on `device`, or None if it can."""
    if device_type(device) == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            return f"{device} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def available_devices() -> list[str]:
    return [d for d in DEVICES if device_missing(d) is None]


def skip_reason(name: str, device: str = "cpu", dtype: str = "float32", shape: Shape = ONE_LAYER,
                lengths_mode: str | None = None) -> str | None:
    """Why `name` cannot run on `device` in `dtype`, with this stack and variable-length mode
    (None: fixed lengths), here; or None if it can."""
    impl = get(name)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    kind = device_type(device)
    if kind not in impl.devices:
        return f"{name} runs on {', '.join(impl.devices)} only, not {kind}"
    if dtype not in impl.dtypes:
        return f"{name} supports {', '.join(impl.dtypes)} only, not {dtype}"
    wanted = [k for k, v in zip(STACK, Shape(*shape), strict=True) if v != getattr(ONE_LAYER, k)]
    if lacking := [k for k in wanted if k not in impl.stack]:
        return f"{name} has no {', '.join(lacking)} ({impl.lacks})"
    if lengths_mode is not None and lengths_mode not in impl.lengths_modes:
        why = f" ({impl.lacks})" if impl.lacks != Impl.lacks else ""
        return (f"{name} has no {lengths_mode} mode for variable lengths; it runs "
                f"{', '.join(impl.lengths_modes)}{why}")
    return device_missing(device)


def check_shape(cell: str, hidden_size: int, shape: Shape) -> None:
    """ValueError, naming the allowed values, for a stack nn.LSTM would refuse."""
    for key in ("layers", "dropout"):
        if problem := stack_problem(key, getattr(shape, key)):
            raise ValueError(f"{key} {problem}")
    if shape.proj_size and cell not in ("lstm", *NO_RECURRENT):    # a min cell's is a skip (skip_reason)
        raise ValueError(f"proj_size applies to LSTM cells only, not {cell.upper()}")
    if not 0 <= shape.proj_size < hidden_size:
        raise ValueError(f"proj_size must be in [0, hidden) = [0, {hidden_size}) (0: none), not {shape.proj_size}")


VENDOR_GEMM = {"cpu": "onednn", "cuda": "cudnn"}   # the library of vendor_kernels, by device type


def gemm_libraries(impl: Impl) -> str:
    """The GEMM libraries `impl` runs on, in a word: the ones it can call itself (the gemm axis, 'aten | onednn'),
    its vendor's, aten for native kernels, or "backend's" where PyTorch's default backend picks."""
    if impl.gemms:
        return " | ".join(impl.gemms)
    if impl.context is vendor_kernels:
        return " | ".join(VENDOR_GEMM[d] for d in impl.devices)
    return "aten" if impl.context is native_kernels else "backend's"


def gemm_of(impl: Impl, wanted: str | None, device: str, dtype: str) -> gemm.Gemm | None:
    """The GEMM library `impl` calls on `device` in `dtype` (None: its default, aten where it calls its own);
    None for a library kernel, whose backend picks its GEMMs. ValueError for a name that does not exist or
    a library kernel given one; errors.Skip where the library cannot run here."""
    if wanted is not None and wanted not in gemm.LIBRARIES:
        raise ValueError(f"unknown gemm {wanted!r}; allowed: {', '.join(gemm.LIBRARIES)}")
    if not impl.gemms:
        if wanted is not None:
            raise ValueError(f"gemm applies to the models that call their own GEMMs, not {impl.name} (its backend "
                             "picks them)")
        return None
    wanted = wanted or gemm.DEFAULT
    if wanted not in impl.gemms:
        own = ", ".join(n for n, i in IMPLS.items() if wanted in i.gemms)
        raise Skip(f"{impl.name}'s GEMMs are its compiler's: gemm {wanted} is for the eager models that call their "
                   f"own ({own})")
    if reason := gemm.missing(wanted, device, DTYPES[dtype]):
        raise Skip(reason)
    return gemm.library(wanted)


def create(name: str, input_size: int, hidden_size: int, device: str = "cpu", dtype: str = "float32",
           seed: int = 0, init: str = "pytorch", forget_bias: float = 0.0, nonlinearity: str = "tanh",
           shape: Shape = ONE_LAYER, lengths_mode: str | None = None,
           spectral_radius: float | None = None, compile_mode: str | None = None, gemm: str | None = None
           ) -> Recurrent:
    """Build `name` with the canonical parameters drawn from `seed` (see models.canonical_params).

    forget_bias (LSTM and minLSTM only) is added to the forget gate's total bias of every layer and
    direction. nn.LSTM has two biases, bias_ih and bias_hh, whose sum is the gate's bias:
    the value is added to bias_ih's f block (rows H:2H) and bias_hh is left as drawn. minLSTM has
    bias_ih alone, its f block the same rows (gates i, f, h~). A min cell (no recurrent matrix) takes
    neither spectral_radius nor init 'orthogonal': a Skip, as is proj_size.
    nonlinearity (RNN only): tanh, relu, or linear (scratch-rnn only; nn.RNN has none: a Skip).
    spectral_radius: each recurrent gate block rescaled to it (params.rescale_recurrent).
    compile_mode: torch.compile's mode (compiled.COMPILE_MODES) for the inductor implementations;
    None: "default" there, and the only value the others take. gemm: the library of the model's own
    GEMMs (gemm.LIBRARIES; None: aten), for the models that call their own (Impl.gemms).
    shape: layers, bidirectional, proj_size (LSTM only, < hidden), dropout between layers in
    [0, 1) (models.Shape). lengths_mode: how forward(x, lengths=...) runs a variable-length
    batch (lengths.MODES); None: packed where the implementation has it.
    """
    shape = Shape(*shape)
    impl = get(name)
    check_shape(impl.cell, hidden_size, shape)
    if lengths_mode is not None and lengths_mode not in varlen.MODES:
        raise ValueError(f"unknown lengths_mode {lengths_mode!r}; allowed: {', '.join(varlen.MODES)}")
    reason = skip_reason(name, device, dtype, shape, lengths_mode)
    if reason:
        raise Skip(reason)
    library = gemm_of(impl, gemm, device, dtype)
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; allowed: {', '.join(NONLINEARITIES)}")
    if nonlinearity != "tanh" and impl.cell != "rnn":
        raise ValueError(f"nonlinearity applies to RNN cells only, not {name}")
    if impl.cell == "rnn" and nonlinearity not in impl.nonlinearities:
        raise Skip(f"{name} has no {nonlinearity} nonlinearity (it has {', '.join(impl.nonlinearities)}); "
                   f"scratch-rnn has")
    if forget_bias and impl.cell not in FORGET_CELLS:
        raise ValueError(f"forget_bias applies to LSTM and minLSTM cells only, not {name}")
    if impl.cell in NO_RECURRENT and (spectral_radius is not None or init == "orthogonal"):
        what = "spectral_radius" if spectral_radius is not None else "init 'orthogonal'"
        raise Skip(f"{name} has no recurrent matrix: {what} has nothing to act on (its gates read x_t only)")
    extra = {"nonlinearity": nonlinearity} if impl.cell == "rnn" else {}
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile_mode {compile_mode!r}; allowed: {', '.join(COMPILE_MODES)}")
    if impl.compiler == "inductor":
        extra["mode"] = compile_mode or "default"
    elif compile_mode is not None:
        raise ValueError(f"compile_mode applies to torch.compile's implementations only, not {name}")
    model = impl.builder(input_size, hidden_size, shape, **extra).to(device=device, dtype=DTYPES[dtype])
    params = canonical_params(impl.cell, input_size, hidden_size, seed, init, shape)
    if spectral_radius is not None:
        rescale_recurrent(params, impl.cell, spectral_radius)
    if forget_bias:
        for name_, p in params.items():
            if name_.startswith("bias_ih"):
                p[hidden_size:2 * hidden_size] += forget_bias
    model.load_canonical(params)
    if library is not None:
        model.gemm = library
    model.backend = functools.partial(impl.context, device_type(device))
    model.lengths_mode = lengths_mode or ("packed" if "packed" in impl.lengths_modes else None)
    return model
