"""The two set-up paths of scripts/setup-venv.sh, which every make target runs first."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
# torch and what torch itself requires: a CUDA image keeps its own versions of these
TORCH_OWN = {"torch", "filelock", "fsspec", "Jinja2", "MarkupSafe", "mpmath", "networkx", "setuptools", "sympy",
             "typing_extensions"}


def pins(name: str) -> dict[str, str]:
    lines = (REPO / name).read_text().splitlines()
    return dict(ln.split("==") for ln in lines if ln and not ln.startswith("#"))


def test_gpu_constraints_are_the_cpu_ones_without_torch_and_its_own_requirements():
    cpu, gpu = pins("constraints.txt"), pins("constraints-gpu.txt")
    assert cpu["torch"] == "2.13.0" and "torch" not in gpu
    assert gpu == {k: v for k, v in cpu.items() if k not in TORCH_OWN}


LACKS = "pydantic>=2.5\nsubmitit>=1.5\ntorch-tb-profiler>=0.4.3"     # what the fake GPU image lacks


def fake_python(tmp_path, probe: str | None) -> Path:
    """python3, except for what its torch answers setup-venv.sh's probe (None: no torch at all), and
    which requirements it lacks: LACKS, and of the dev tools hypothesis."""
    answer = f'echo "{probe}"; exit 0' if probe else "exit 1"
    p = tmp_path / "python3"
    p.write_text(f'#!/bin/sh\ncase "$*" in\n  *torch.cuda.is_available*) {answer};;\n'
                 f'  *"missing-deps.py pyproject.toml dev"*) echo "hypothesis>=6.100"; exit 0;;\n'
                 f'  *missing-deps.py*) printf "{LACKS}\\n"; exit 0;;\nesac\nexec python3 "$@"\n')
    p.chmod(0o755)
    return p


def dry_run(tmp_path, probe):
    out = subprocess.run(["scripts/setup-venv.sh", "--dry-run", str(tmp_path / "v")], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "BASE_PYTHON": str(fake_python(tmp_path, probe))}).stdout
    return out.splitlines()


@pytest.mark.subprocess
def test_a_python_with_cuda_torch_keeps_it_and_takes_the_gpu_constraints(tmp_path):
    lines = dry_run(tmp_path, "2.11.0+cu128 True 2")
    base, venv = tmp_path / "python3", tmp_path / "v"
    assert lines == [
        f"setup: {base} has torch 2.11.0+cu128 with CUDA (2 GPU(s)): {venv} shares it (--system-site-packages); "
        "what it lacks from constraints-gpu.txt",
        f"+ {base} -m venv --system-site-packages {venv}",
        f"+ {venv}/bin/python -m pip install --quiet -c constraints-gpu.txt pydantic>=2.5 submitit>=1.5 "
        "torch-tb-profiler>=0.4.3",                      # only what the image lacks; never torch
        f"+ echo {REPO} > {venv}/lib/python3.X/site-packages/lstm_bench.pth",
        f"+ {venv}/bin/python -m pip install --quiet -c constraints-gpu.txt hypothesis>=6.100"]


@pytest.mark.subprocess
def test_missing_deps_names_what_is_absent_or_out_of_range_and_never_torch(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["torch>=99", "pydantic>=2.5", "numpy>=99", "no-such-pkg-here>=1"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8.0"]\n')
    run = [sys.executable, str(REPO / "scripts" / "missing-deps.py"), str(tmp_path / "pyproject.toml")]
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout == "numpy>=99\nno-such-pkg-here>=1\n"
    assert subprocess.run(run + ["dev"], capture_output=True, text=True, check=True).stdout == "\n"


@pytest.mark.subprocess
@pytest.mark.parametrize(("probe", "has"), [(None, "no torch"),
                                           ("2.13.0+cpu False 0", "torch 2.13.0+cpu without CUDA")])
def test_a_python_without_cuda_gets_the_pinned_cpu_torch(tmp_path, probe, has):
    lines = dry_run(tmp_path, probe)
    base, venv = tmp_path / "python3", tmp_path / "v"
    assert lines == [f"setup: {base} has {has}: {venv} gets torch 2.13.0 (CPU build) and the rest from constraints.txt",
                     f"+ {base} -m venv {venv}",
                     f"+ {venv}/bin/python -m pip install --quiet -c constraints.txt -e .[dev]"]


@pytest.mark.subprocess
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu-check would run")
def test_gpu_check_without_cuda_is_one_line_and_exit_2():
    p = subprocess.run(["scripts/gpu-check.sh"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "PYTHON": str(Path(sys.executable))})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (f"gpu-check: no CUDA device here ({sys.executable}: torch.cuda.is_available() is "
                        "False); it needs one GPU\n")
