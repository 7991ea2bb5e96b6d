#!/usr/bin/env bash
# Build (or reuse) our small vCenter simulator (main.go beside this script, over govmomi's simulator at the
# version pinned in go.mod) for the vSphere e2e tests. The binary lands in a cache directory outside the
# repository, keyed by the govmomi version, the Go version and a hash of go.mod, go.sum, main.go and this
# script, and is reused.
#
# Prints the path of the vcsim binary on stdout (the last line); progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build vcsim" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' github.com/vmware/govmomi)
[ -n "$version" ] || { echo "build.sh: cannot read the pinned govmomi version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/vcsim/${version}_${go_version}_${key}"
mkdir -p "$dir"

if [ ! -x "$dir/vcsim" ]; then
  echo "[vcsim] building the simulator over govmomi $version (cold: a minute or two on 2 cores)" >&2
  start=$SECONDS
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$dir/vcsim.tmp" .)
  mv "$dir/vcsim.tmp" "$dir/vcsim"
  echo "[vcsim] built in $((SECONDS - start)) s" >&2
fi

echo "$dir/vcsim"
