#!/usr/bin/env bash
# The device benchmark in one command: naive research loop vs ripbench's harness.
#   GPU: full-size SD-2 inpainting architecture (random weights, nothing downloaded), batch 1/8/16,
#        eager and compiled; writes results/benchmarks/<card>.json. About 5-8 minutes on an H100/H200.
#   no GPU: a small CPU variant (tiny random pipeline) printing the same table in a few minutes.
# Extra arguments go to benchmarks/bench_device.py (e.g. --steps 20 --budget-s 300).
# Wheels carried in .whl/ (see README, "Performance") are installed into /tmp/ripbench-site first when
# the interpreter lacks diffusers, lpips or pydantic;
# set PYTHON to choose the interpreter (default: python3). When $OUT is set, the JSON is copied there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c "import diffusers, lpips, pydantic" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/ripbench-site .whl/*.whl
    export PYTHONPATH="/tmp/ripbench-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
"$PY" benchmarks/bench_device.py "$@" || status=$?
if [ -n "${OUT:-}" ] && compgen -G "results/benchmarks/*.json" >/dev/null; then
    mkdir -p "$OUT" && cp results/benchmarks/*.json "$OUT"/
fi
exit $status
