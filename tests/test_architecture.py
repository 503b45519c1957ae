"""The one-way architecture: packages in layers, kept by import-linter's contracts, which break on a module put
outside its package's layer, on run importing analysis, on a circle; files stay small; every package says what
its modules are."""
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "harness"
MAX_LINES = 400          # "no module over about 400 lines"
LINT_IMPORTS = [sys.executable, "-c",
                "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
                "--no-cache"]
CONTRACTS = {c["id"]: c["name"] for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
             ["contracts"]}

needs_linter = pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                                  reason="import-linter is not installed (make setup installs it)")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT_IMPORTS, cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def broken(out: subprocess.CompletedProcess) -> set[str]:
    """The ids of the contracts lint-imports reports broken (it wraps long names, so spaces are left out)."""
    text = re.sub(r"\s", "", out.stdout)
    found = {cid for cid, name in CONTRACTS.items() if re.sub(r"\s", "", name) + "BROKEN" in text}
    kept = {cid for cid, name in CONTRACTS.items() if re.sub(r"\s", "", name) + "KEPT" in text}
    assert found | kept == set(CONTRACTS), out.stdout + out.stderr     # every contract was checked
    return found


def copy_of_harness(tmp_path: Path) -> Path:
    shutil.copytree(HARNESS, tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.subprocess
@needs_linter
def test_the_contracts_are_kept():
    out = lint_imports(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out.stdout
    assert set(CONTRACTS) == {"layers", "run-analysis", "reads-tables", "base", "no-circle"}


@needs_linter
@pytest.mark.parametrize("module,line,contracts", [
    # upwards, so a circle, and through cli (or the sweep) analysis reaches run and measure: every path counts
    ("implementations/models.py", "from harness import cli", {"layers", "no-circle", "run-analysis", "reads-tables"}),
    ("store/runs.py", "def _later():\n    from harness.run import sweep\n",       # one hidden inside a function
     {"layers", "no-circle", "run-analysis", "reads-tables"}),
    ("measure/flops.py", "from harness.store import columns", {"layers"}),     # two packages of one layer
    ("report/views.py", "from harness.run import console", {"layers"}),       # report and run: one layer, apart
    ("run/console.py", "from harness.analysis import tables", {"run-analysis"}),   # run imports analysis
    ("analysis/claims.py", "from harness.measure import gradients", {"reads-tables"}),   # analysis measures
    ("report/figures/speed.py", "from harness.measure.memory import estimate_bytes", {"reads-tables"}),
    ("core/units.py", "from harness.core import intervals", {"base"}),       # the base imports the harness
    ("config/cases.py", "from harness.config import scenario", {"no-circle"}),   # a circle inside a package
])
@pytest.mark.subprocess
def test_a_contract_breaks_on_an_import_out_of_place(tmp_path, module, line, contracts):
    root = copy_of_harness(tmp_path)
    with open(root / "harness" / module, "a") as f:
        f.write("\n" + line + "\n")
    out = lint_imports(root)
    assert out.returncode == 1, out.stdout + out.stderr
    assert broken(out) == contracts
    assert f"Contracts: {len(CONTRACTS) - len(contracts)} kept, {len(contracts)} broken." in out.stdout


@pytest.mark.subprocess
@needs_linter
def test_a_new_module_takes_its_packages_place_without_an_edit(tmp_path):
    root = copy_of_harness(tmp_path)
    newcomer = root / "harness" / "analysis" / "newcomer.py"
    newcomer.write_text('"""A new analysis."""\nfrom harness.store import columns\n')
    out = lint_imports(root)
    assert out.returncode == 0 and broken(out) == set(), out.stdout + out.stderr
    newcomer.write_text('"""Measures."""\nfrom harness.measure import flops\n')
    assert broken(lint_imports(root)) == {"reads-tables"}


@pytest.mark.subprocess
@needs_linter
def test_a_new_top_level_module_must_be_placed_in_the_contract(tmp_path):
    root = copy_of_harness(tmp_path)
    (root / "harness" / "stray.py").write_text('"""Not placed in any layer."""\n')
    out = lint_imports(root)
    assert out.returncode == 1 and "harness.stray" in out.stdout, out.stdout + out.stderr


@pytest.mark.source
def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(HARNESS)): len(p.read_text().splitlines()) for p in HARNESS.rglob("*.py")}
    assert len(sizes) >= 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_only_the_cli_catches_usage_errors():
    catching = sorted(str(p.relative_to(HARNESS)) for p in HARNESS.rglob("*.py")
                      if "except UsageError" in p.read_text())
    assert catching == ["cli.py"]


def test_every_module_and_package_is_named_in_its_package_docstring():
    packages = [HARNESS] + sorted(p.parent for p in HARNESS.rglob("*/__init__.py"))
    assert len(packages) == 10
    for pkg in packages:
        name = ".".join(pkg.relative_to(REPO).parts)
        doc = importlib.import_module(name).__doc__
        documented = {line.split()[0] for line in doc.splitlines() if re.match(r"    \w", line)}
        members = {p.stem for p in pkg.glob("*.py") if not p.stem.startswith("__")}
        members |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
        assert documented == members, name


def test_the_readme_map_names_every_package():
    readme = (REPO / "README.md").read_text()
    packages = {p.parent.name for p in HARNESS.glob("*/__init__.py")}
    assert {p for p in packages if f"`harness/{p}/`" not in readme} == set()


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
