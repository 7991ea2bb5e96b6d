#!/usr/bin/env bash
# The main job, from a fresh machine: installs what it needs, then runs a local control plane with the
# Cluster API CRDs installed and writes its kubeconfig to .dev/kubeconfig. Stays in the foreground until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cache_dir=$(bash hack/bootstrap.sh | tail -n 1)
export INCLUSTER_IPAM_CONTROLPLANE=$cache_dir
exec .venv/bin/incluster-ipam dev-cluster --kubeconfig .dev/kubeconfig --workdir .dev/controlplane "$@"
