#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (venv, Python deps, control plane, the
# end-to-end components), runs the static checks, then every unit, property, integration and end-to-end test
# against real processes.
#   hack/test.sh [PYTEST ARGS]   everything (e.g. `hack/test.sh tests/unit -x` narrows it)
#   hack/test.sh --e2e [ARGS]    the end-to-end tests alone (tests/e2e), no static checks (`make e2e`)
# pytest runs on two workers (pytest-xdist, one test file per worker at a time): most integration and e2e
# time is spent waiting on real processes, so two files at once fit on the 2 cores; each worker starts its
# own control plane. INCLUSTER_IPAM_TEST_WORKERS=0 runs everything in one process.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

e2e_only=false
if [ "${1:-}" = "--e2e" ]; then
  e2e_only=true
  shift
fi

cache_dir=$(bash hack/bootstrap.sh | tail -n 1)
export INCLUSTER_IPAM_CONTROLPLANE=$cache_dir
echo "[test] control plane cache: $cache_dir"
bash hack/e2e/install.sh

workers=${INCLUSTER_IPAM_TEST_WORKERS:-2}
parallel=()
[ "$workers" != 0 ] && parallel=(-n "$workers" --dist loadfile)

if $e2e_only; then
  echo "[test] pytest tests/e2e"
  exec .venv/bin/pytest "${parallel[@]}" tests/e2e "$@"
fi

echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy --strict"
.venv/bin/mypy
echo "[test] import layering"
.venv/bin/lint-imports
echo "[test] pytest (${workers} workers)"
.venv/bin/pytest "${parallel[@]}" "$@"
