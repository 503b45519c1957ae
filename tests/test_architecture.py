"""The one-way architecture: the import-layer contract holds, fails on a new circle, and files stay small."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "harness"
MAX_LINES = 400          # "no module over about 400 lines"
LINT_IMPORTS = [sys.executable, "-c",
                "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
                "--no-cache"]

needs_linter = pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                                  reason="import-linter is not installed (make setup installs it)")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT_IMPORTS, cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.mark.subprocess
@needs_linter
def test_the_layer_contract_is_kept():
    out = lint_imports(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 1 kept, 0 broken." in out.stdout


@needs_linter
@pytest.mark.parametrize("module,line", [
    ("models.py", "from harness import cli"),       # an import at the top, upwards
    ("store.py", "def _later():\n    from harness import sweep\n"),   # one hidden inside a function
    ("claims.py", "from harness import plots"),    # two modules of one layer
])
@pytest.mark.subprocess
def test_the_contract_breaks_on_an_upward_import(tmp_path, module, line):
    shutil.copytree(HARNESS, tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "harness" / module, "a") as f:
        f.write("\n" + line + "\n")
    out = lint_imports(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Contracts: 0 kept, 1 broken." in out.stdout


@pytest.mark.subprocess
@needs_linter
def test_a_new_module_must_be_placed_in_the_contract(tmp_path):
    shutil.copytree(HARNESS, tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "harness" / "stray.py").write_text('"""Not placed in any layer."""\n')
    out = lint_imports(tmp_path)
    assert out.returncode == 1 and "harness.stray" in out.stdout, out.stdout + out.stderr


@pytest.mark.source
def test_no_module_is_over_the_size_limit():
    sizes = {p.name: len(p.read_text().splitlines()) for p in HARNESS.glob("*.py")}
    assert len(sizes) >= 20
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_only_the_cli_catches_usage_errors():
    catching = sorted(p.name for p in HARNESS.glob("*.py") if "except UsageError" in p.read_text())
    assert catching == ["cli.py"]


def test_every_module_is_named_in_the_package_docstring():
    import harness

    documented = {line.split()[0] for line in harness.__doc__.splitlines() if line.startswith("    ")}
    modules = {p.stem for p in HARNESS.glob("*.py") if not p.stem.startswith("__")}
    assert documented == modules


@pytest.mark.parametrize(("argv", "marked"), [
    ([sys.executable, "-m", "harness", "run", "smoke"], True),
    (["scripts/gpu-check.sh"], True),
    ([str(Path(sys.executable).parent / "tensorboard"), "--logdir", "x"], True),
    (["git", "rev-parse", "HEAD"], False),
    (["squeue", "--noheader"], False),
    ([sys.executable, "-m", "cpuinfo", "--internal-cpuid"], False),       # pytest-benchmark's machine info
])
def test_a_child_that_runs_python_or_a_script_needs_the_subprocess_mark(argv, marked):
    from conftest import _runs_project_code
    assert _runs_project_code(argv) is marked
