#!/usr/bin/env bash
# Build the virtual environment that every make target uses (the Makefile runs this
# when .venv is missing or pyproject.toml / the constraints files changed).
#
#   scripts/setup-venv.sh [VENV]            default .venv
#   scripts/setup-venv.sh --dry-run [VENV]  say which path it would take, and print its commands
#
# Two paths, chosen by asking $BASE_PYTHON (default python3) whether its torch sees a GPU:
#   CPU (the usual):  a fresh venv; torch 2.13.0 (the CPU build) and every other package at
#                     the versions in constraints.txt.
#   GPU (CUDA torch): a venv with --system-site-packages, so it keeps the image's own CUDA torch
#                     and every package the image already has in range; only what it lacks
#                     (scripts/missing-deps.py) is installed, at the versions in constraints-gpu.txt
#                     (constraints.txt without torch and the packages torch itself depends on).
#                     The project is put on the venv's path with a .pth file (no build step),
#                     and the dev tools (ruff, import-linter, hypothesis) are installed when
#                     they can be.
# Without a package registry, point pip at a wheel folder first, e.g. the one that
# ../shared/wheels/README.md describes:  PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl make bench
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
VENV="${1:-.venv}"
BASE="${BASE_PYTHON:-python3}"

run() { echo "+ $*"; ((DRY)) || "$@"; }

probe="$("$BASE" -c 'import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.device_count())' \
         2>/dev/null || true)"
read -r torch_version cuda gpus <<<"${probe:-none False 0}"

if [[ "$cuda" == "True" ]]; then
    echo "setup: $BASE has torch $torch_version with CUDA ($gpus GPU(s)): $VENV shares it (--system-site-packages); what it lacks from constraints-gpu.txt"
    ((DRY)) || rm -rf "$VENV"
    run "$BASE" -m venv --system-site-packages "$VENV"
    # what the image lacks of pyproject's dependencies (never torch): the rest stays as the image has it
    mapfile -t deps < <("$BASE" scripts/missing-deps.py pyproject.toml | sed '/^$/d')
    mapfile -t dev < <("$BASE" scripts/missing-deps.py pyproject.toml dev | sed '/^$/d')
    if ((${#deps[@]})); then
        run "$VENV/bin/python" -m pip install --quiet -c constraints-gpu.txt "${deps[@]}"
    else
        echo "setup: $BASE already has every dependency"
    fi
    if ((DRY)); then
        echo "+ echo $PWD > $VENV/lib/python3.X/site-packages/lstm_bench.pth"
    else
        site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        echo "$PWD" >"$site/lstm_bench.pth"
    fi
    if ((${#dev[@]})); then
        run "$VENV/bin/python" -m pip install --quiet -c constraints-gpu.txt "${dev[@]}" \
            || echo "setup: the dev tools (${dev[*]}) could not be installed: make bench, make report and make gpu-check work; make test and make lint need them"
    fi
else
    has="no torch"; [[ -n "$probe" ]] && has="torch $torch_version without CUDA"
    echo "setup: $BASE has $has: $VENV gets torch 2.13.0 (CPU build) and the rest from constraints.txt"
    ((DRY)) || rm -rf "$VENV"
    run "$BASE" -m venv "$VENV"
    run "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e '.[dev]'
fi
((DRY)) || touch "$VENV/.installed"
