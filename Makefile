# lstm-bench: thin wrappers over `python -m harness` (see README.md).
# Every target builds .venv on first use, and rebuilds it when pyproject.toml or
# constraints.txt change. PYTHON=python3 (or any interpreter) uses that
# environment instead and installs nothing.

VENV        ?= .venv
PYTHON      ?= $(VENV)/bin/python
SCENARIO    ?= quick        # a name in scenarios/ or a path: smoke, quick, full, fastrnns, deepbench
RUN         ?= latest       # a run id in results/, or latest
BASE        ?=              # run id to compare against (bench-compare)
THRESHOLD   ?= 10           # percent slower than BASE that fails bench-compare (if the rank test agrees)
ALPHA       ?= 0.01         # bench-compare's Mann-Whitney U significance level
PORT        ?= 6006         # TensorBoard's port (make tensorboard)
SAMPLE      ?=              # make mutation: N more random not-yet-run mutants per module (empty: the whole scope)
PYTEST_ARGS ?=

ifeq ($(PYTHON),$(VENV)/bin/python)
SETUP := $(VENV)/.installed
else
SETUP :=
endif

.DEFAULT_GOAL := help
.PHONY: help setup bench bench-compare report profile tensorboard test test-slurm gpu-check lint mutation clean

help:  ## list the targets
	@echo "lstm-bench -- make TARGET [VAR=value ...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "variables: SCENARIO=$(strip $(SCENARIO)) RUN=$(strip $(RUN)) PORT=$(strip $(PORT)) PYTHON=$(PYTHON)"

# scripts/setup-venv.sh says in one line which path it takes: torch 2.13.0 (CPU) from constraints.txt,
# or, where python3 already has a CUDA build of torch, a venv that keeps it (constraints-gpu.txt).
$(VENV)/.installed: pyproject.toml constraints.txt constraints-gpu.txt scripts/setup-venv.sh scripts/missing-deps.py
	scripts/setup-venv.sh $(VENV)

setup: $(SETUP)  ## build .venv (every other target does this itself)

bench: $(SETUP)  ## run a scenario, then render its report: make bench [SCENARIO=quick]
	@status=0; $(PYTHON) -m harness run $(strip $(SCENARIO)) || status=$$?; \
	if [ $$status -le 1 ]; then $(PYTHON) -m harness report latest || exit 1; fi; exit $$status

bench-compare: $(SETUP)  ## fail if RUN is slower than BASE: make bench-compare BASE=<run_id> [RUN=latest THRESHOLD=10 ALPHA=0.01]
	$(PYTHON) -m harness compare $(strip $(BASE)) $(strip $(RUN)) --threshold $(strip $(THRESHOLD)) --alpha $(strip $(ALPHA))

report: $(SETUP)  ## render plots and an HTML report: make report [RUN=latest]
	$(PYTHON) -m harness report $(strip $(RUN))

profile: $(SETUP)  ## profile every case of a scenario: make profile [SCENARIO=quick]
	$(PYTHON) -m harness profile $(strip $(SCENARIO))

tensorboard: $(SETUP)  ## open a run's profiles: make tensorboard [RUN=latest PORT=6006]
	$(PYTHON) -m harness tensorboard $(strip $(RUN)) --port $(strip $(PORT))

test: $(SETUP)  ## run the test suite
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-slurm: $(SETUP)  ## start a one-node Slurm cluster here (root, apt), run the Slurm tests, stop it
	@if reason=$$(scripts/slurm-local.sh start 2>&1); then echo "$$reason"; \
	  trap 'scripts/slurm-local.sh stop' EXIT; $(PYTHON) -m pytest -m slurm tests/test_slurm.py $(PYTEST_ARGS); \
	else echo "$$reason" | tail -n1; echo "Slurm tests skipped: no cluster could be started here"; \
	  LSTM_BENCH_SLURM_SKIP="$$(echo "$$reason" | tail -n1)" $(PYTHON) -m pytest -m slurm tests/test_slurm.py $(PYTEST_ARGS); fi

gpu-check: $(SETUP)  ## on one GPU, one call: CUDA tests, fastrnns, quick, DeepBench's anchors and the compilers on cuda, a report
	PYTHON=$(PYTHON) scripts/gpu-check.sh

# SAMPLE=N: only N more not-yet-run mutants per module, at random (the score is then an estimate with its
# interval); the first call makes the mutants and mutmut's test stats by running a pattern that matches none.
mutation: $(SETUP)  ## mutmut over the pure logic, then the score per module (hours on 2 cores; SAMPLE=40: a sample)
	$(PYTHON) -m pip install -q -c constraints.txt mutmut
	$(if $(strip $(SAMPLE)),test -f mutants/mutmut-stats.json || $(PYTHON) -m mutmut run harness.none)
	$(PYTHON) -m mutmut run --max-children $$(nproc) \
	    $$($(PYTHON) scripts/mutation-score.py $(if $(strip $(SAMPLE)),--sample $(strip $(SAMPLE)),--scope))
	$(PYTHON) scripts/mutation-score.py

lint: $(SETUP)  ## ruff over the code, and the import-layer contract (pyproject.toml [tool.importlinter])
	$(PYTHON) -m ruff check harness tests
	$(PYTHON) -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' 

clean:  ## remove .venv and caches (results/ and reports/ are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .benchmarks build *.egg-info mutants
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
