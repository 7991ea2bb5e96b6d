#!/usr/bin/env bash
# Install everything the project needs on a fresh machine: the Python virtual environment with the package
# and its dev tools, and (unless --python-only) promtool and the cached control-plane binaries and Cluster
# API CRDs.
# Idempotent and quick when nothing changed. Prints nothing on stdout except, without --python-only, the
# control-plane cache directory on the last line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { echo "[bootstrap] $*" >&2; }

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $python"
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  log "installing Python dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e '.[dev]' >&2
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if [ "${1:-}" != "--python-only" ]; then
  bash hack/promtool/build.sh >/dev/null  # checks and unit-tests config/prometheus (tests/integration/monitoring)
  bash hack/kubectl/build.sh >/dev/null  # a real kubectl, for the `kubectl ipam` integration tests
  cache_dir=$(bash hack/controlplane/build.sh | tail -n 1)
  bash hack/controlplane/machine-crd.sh "$cache_dir"  # for the `kubectl ipam who` tests
  echo "$cache_dir"
fi
