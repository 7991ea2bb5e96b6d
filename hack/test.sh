#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (venv, Python deps, control plane),
# runs the static checks, then every unit, property and integration test against a real kube-apiserver.
# Extra arguments go to pytest (e.g. `hack/test.sh tests/unit -x`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cache_dir=$(bash hack/bootstrap.sh | tail -n 1)
export INCLUSTER_IPAM_CONTROLPLANE=$cache_dir
echo "[test] control plane cache: $cache_dir"

echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy --strict"
.venv/bin/mypy
echo "[test] import layering"
.venv/bin/lint-imports
echo "[test] pytest"
.venv/bin/pytest "$@"
