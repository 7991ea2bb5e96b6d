#!/usr/bin/env bash
# Re-pin what the image installs: requirements/image.lock, every runtime dependency of pyproject.toml (and
# theirs) at one exact version with the sha256 of each of its files on the index, for pip --require-hashes.
# Run after changing `dependencies` in pyproject.toml; tests/unit/packaging/test_lock.py fails until then.
# pip-tools runs from a throwaway venv outside the repository.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}/pip-tools
python=${PYTHON:-python3.11}
if [ ! -x "$tools/bin/pip-compile" ]; then
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "pip-tools==7.6.2"
fi
cd "$root"
"$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
  --no-emit-find-links --no-header --output-file requirements/image.lock pyproject.toml
{ echo "# What the image installs (pip --require-hashes): written by hack/lock/update.sh from pyproject.toml."
  grep -v '^# What the image installs' requirements/image.lock; } > requirements/image.lock.tmp
mv requirements/image.lock.tmp requirements/image.lock
