#!/usr/bin/env bash
# Build (or reuse) clusterctl from the Cluster API Go module pinned in go.mod beside this script.
# The binary lands in a cache directory outside the repository, keyed by the pinned version, the go.sum
# hash, this script and the Go version, and is reused. Cold build: several minutes on 2 cores (see
# docs/operations.md for the measured figure).
#
# Prints the path of the clusterctl binary on stdout (the last line); progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build clusterctl" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api)
[ -n "$version" ] || { echo "build.sh: cannot read the pinned Cluster API version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/clusterctl/${version}_${go_version}_${key}"
mkdir -p "$dir"

if [ ! -x "$dir/clusterctl" ]; then
  echo "[clusterctl] building clusterctl $version (cold: minutes on 2 cores; cached afterwards)" >&2
  start=$SECONDS
  ldflags="-s -w -X sigs.k8s.io/cluster-api/version.gitVersion=$version"
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$dir/clusterctl.tmp" \
      sigs.k8s.io/cluster-api/cmd/clusterctl)
  mv "$dir/clusterctl.tmp" "$dir/clusterctl"
  echo "[clusterctl] built in $((SECONDS - start)) s" >&2
fi

echo "$dir/clusterctl"
