#!/usr/bin/env bash
# Add Cluster API's Machine CRD to a control-plane cache directory (crds/capi-<version>/), from the same
# sigs.k8s.io/cluster-api module build.sh takes the other CRDs from. Only the `kubectl ipam who` tests
# install it (an owner chain up to a Machine); kept apart from build.sh so that the cache key, and with it
# the kube-apiserver build, stays as it is.
#
# Usage: machine-crd.sh CACHE_DIR (as printed by build.sh). Prints nothing on stdout.
set -euo pipefail

dir=${1:?usage: machine-crd.sh CACHE_DIR}
version=${CAPI_VERSION:-v1.14.2}
target="$dir/crds/capi-$version/cluster.x-k8s.io_machines.yaml"
[ -f "$target" ] && exit 0

export GOTOOLCHAIN=local GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "machine-crd.sh: Go is required" >&2; exit 1; }
echo "[controlplane] fetching the Cluster API $version Machine CRD from the Go module" >&2
tmp=$(mktemp -d)
mod_dir=$(cd "$tmp" && go mod download -json "sigs.k8s.io/cluster-api@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$tmp"
src=$(find "$mod_dir" -path '*crd/bases/*' -name cluster.x-k8s.io_machines.yaml | head -n 1)
[ -n "$src" ] || { echo "machine-crd.sh: no Machine CRD in sigs.k8s.io/cluster-api@$version" >&2; exit 1; }
mkdir -p "$(dirname "$target")"
cp "$src" "$target.tmp"
chmod u+w "$target.tmp"
mv "$target.tmp" "$target"
