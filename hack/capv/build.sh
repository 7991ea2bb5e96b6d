#!/usr/bin/env bash
# Build (or reuse) the Cluster API Provider vSphere (CAPV) manager, at the version pinned in go.mod beside
# this script, for the vSphere e2e tests (tests/e2e/vsphere). Also copies CAPV's own CRDs
# (config/default/crd/bases/*.yaml of the module; not the supervisor CRDs: with both installed the manager
# exits). Nothing of CAPV lands in the repo: everything goes to a cache directory keyed by the version, the
# Go version and a hash of go.mod, go.sum and this script, and is reused. Cold build: minutes on 2 cores
# (docs/operations.md has the measured figure).
#
# Prints the cache directory on stdout (the last line); progress goes to stderr. Layout:
#   bin/manager
#   crds/*.yaml     (vsphereclusters, vspheremachines, vspherevms, ...)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=sigs.k8s.io/cluster-api-provider-vsphere

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build CAPV" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned CAPV version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/capv/${version}_${go_version}_${key}"
mkdir -p "$dir/bin"

log() { echo "[capv] $*" >&2; }

if [ ! -x "$dir/bin/manager" ]; then
  log "building $module $version with $go_version (cold: several minutes on 2 cores; cached afterwards)"
  start=$SECONDS
  ldflags="-s -w -X sigs.k8s.io/cluster-api-provider-vsphere/pkg/version.gitVersion=$version"
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$dir/bin/manager.tmp" "$module")
  mv "$dir/bin/manager.tmp" "$dir/bin/manager"
  log "built in $((SECONDS - start)) s"
fi

if [ ! -f "$dir/crds/.complete" ]; then
  log "copying CAPV's CRDs from the module"
  mod_dir=$(cd "$here" && go mod download -json "$module@$version" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  rm -rf "$dir/crds" && mkdir -p "$dir/crds"
  found=0
  for src in "$mod_dir"/config/default/crd/bases/*.yaml; do
    [ -f "$src" ] || continue
    cp "$src" "$dir/crds/"
    chmod u+w "$dir/crds/$(basename "$src")"
    found=$((found + 1))
  done
  [ "$found" -gt 0 ] || { echo "build.sh: no CRDs under config/default/crd/bases in $module@$version" >&2; exit 1; }
  touch "$dir/crds/.complete"
fi

echo "$dir"
