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


def fake_python(tmp_path, probe: str | None) -> Path:
    """python3, except for what its torch answers setup-venv.sh's probe (None: no torch at all)."""
    answer = f'echo "{probe}"; exit 0' if probe else "exit 1"
    p = tmp_path / "python3"
    p.write_text(f'#!/bin/sh\ncase "$*" in *torch.cuda.is_available*) {answer};; esac\nexec python3 "$@"\n')
    p.chmod(0o755)
    return p


def dry_run(tmp_path, probe):
    out = subprocess.run(["scripts/setup-venv.sh", "--dry-run", str(tmp_path / "v")], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "BASE_PYTHON": str(fake_python(tmp_path, probe))}).stdout
    return out.splitlines()


def test_a_python_with_cuda_torch_keeps_it_and_takes_the_gpu_constraints(tmp_path):
    lines = dry_run(tmp_path, "2.11.0+cu128 True 2")
    base, venv = tmp_path / "python3", tmp_path / "v"
    assert lines[0] == (f"setup: {base} has torch 2.11.0+cu128 with CUDA (2 GPU(s)): {venv} shares it "
                        "(--system-site-packages); the rest from constraints-gpu.txt")
    assert lines[1] == f"+ {base} -m venv --system-site-packages {venv}"
    install = lines[2].split()
    assert install[:6] == ["+", f"{venv}/bin/python", "-m", "pip", "install", "--quiet"]
    assert install[6:8] == ["-c", "constraints-gpu.txt"]
    names = [d.split(">=")[0] for d in install[8:]]
    assert "torch" not in names and {"torch-tb-profiler", "pydantic", "submitit", "pytest-benchmark"} <= set(names)
    assert lines[3] == f"+ echo {REPO} > {venv}/lib/python3.X/site-packages/lstm_bench.pth"
    assert lines[4].endswith("-c constraints-gpu.txt ruff import-linter hypothesis")


@pytest.mark.parametrize(("probe", "has"), [(None, "no torch"),
                                           ("2.13.0+cpu False 0", "torch 2.13.0+cpu without CUDA")])
def test_a_python_without_cuda_gets_the_pinned_cpu_torch(tmp_path, probe, has):
    lines = dry_run(tmp_path, probe)
    base, venv = tmp_path / "python3", tmp_path / "v"
    assert lines == [f"setup: {base} has {has}: {venv} gets torch 2.13.0 (CPU build) and the rest from constraints.txt",
                     f"+ {base} -m venv {venv}",
                     f"+ {venv}/bin/python -m pip install --quiet -c constraints.txt -e .[dev]"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu-check would run")
def test_gpu_check_without_cuda_is_one_line_and_exit_2():
    p = subprocess.run(["scripts/gpu-check.sh"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "PYTHON": str(Path(sys.executable))})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (f"gpu-check: no CUDA device here ({sys.executable}: torch.cuda.is_available() is "
                        "False); it needs one GPU\n")
