#!/usr/bin/env bash
# make gpu-check: what a GPU box can tell us, in one call meant to fit a 10-minute device call on one GPU.
#
#   1. the CUDA tests (pytest -m cuda): every implementation against float64 nn.LSTM on CUDA,
#      TF32 off, cudnn-lstm included, at a batch large enough for bptt-lstm's transposed layout
#   2. fastrnns' cases on cuda        python -m harness run fastrnns --device cuda
#   3. quick's cases on cuda          python -m harness run quick --device cuda
#   4. DeepBench's two anchors        python -m harness run deepbench-short
#   5. the compilers on cuda          python -m harness run compilers --device cuda (compiled cells, the
#                                     CUDA graph, cuDNN with TF32 off and on, bfloat16 and float16 autocast)
#   6. one report over those runs     python -m harness report ID,ID,ID,ID
#
# It leaves the four run directories in results/ and the report in reports/, and, where $OUT
# is set (the device tool's output folder), copies both there. Exit status: the first step
# that failed, 0 when every step passed; 2 (one line) on a machine without CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
STEP_LIMIT_S=420                  # no one step may take the whole call

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu-check: no CUDA device here ($PY: torch.cuda.is_available() is False); it needs one GPU" >&2
    exit 2
fi
"$PY" -c 'import torch; print("gpu-check:", torch.cuda.get_device_name(0), "torch", torch.__version__,
                              "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'

status=0
step() {   # step NAME COMMAND...: run it under the step limit, note a failure, keep going
    local name="$1"; shift
    local t0=$SECONDS
    echo "== gpu-check: $name: $*"
    timeout "$STEP_LIMIT_S" "$@"
    local rc=$?
    echo "== gpu-check: $name: exit $rc in $((SECONDS - t0)) s"
    if ((rc != 0 && status == 0)); then status=$rc; fi
    return $rc
}
latest() { basename "$(readlink -f results/latest)"; }

step "CUDA tests" "$PY" -m pytest -m cuda -q -p no:cacheprovider tests
runs=()
for sc in "fastrnns --device cuda" "quick --device cuda" "deepbench-short" "compilers --device cuda"; do
    # shellcheck disable=SC2086 -- the scenario and its flags are words
    step "run $sc" "$PY" -m harness run $sc --quiet && runs+=("$(latest)")
done
if ((${#runs[@]})); then
    ids="$(IFS=,; echo "${runs[*]}")"
    step "report" "$PY" -m harness report "$ids" | tee /tmp/gpu-check-report.txt
    page="$(sed -n 's/^report: //p' /tmp/gpu-check-report.txt | tail -n1)"
    if [[ -n "${OUT:-}" ]]; then
        mkdir -p "$OUT/results" "$OUT/reports"
        for r in "${runs[@]}"; do cp -r "results/$r" "$OUT/results/"; done
        [[ -n "$page" ]] && cp -r "$(dirname "$page")" "$OUT/reports/"
    fi
fi
echo "gpu-check: runs ${runs[*]:-none}; exit $status"
exit $status
