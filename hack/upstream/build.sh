#!/usr/bin/env bash
# Build (or reuse) the upstream Go provider, sigs.k8s.io/cluster-api-ipam-provider-in-cluster, at the version
# pinned by the `tool` line in go.mod beside this script, for the benchmark (bench/claims.py). Also extracts
# upstream's own pool CRDs (config/crd/bases/*.yaml) from the module. Nothing of upstream lands in the repo:
# everything goes to a cache directory keyed by the version, the Go version and a hash of go.sum and this
# script, and is reused.
#
# Prints the cache directory on stdout (the last line); progress goes to stderr.
# Layout of the cache directory:
#   bin/cluster-api-ipam-provider-in-cluster
#   crds/*.yaml          (inclusterippools, globalinclusterippools, inclusterprefixpools, globalinclusterprefixpools)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=sigs.k8s.io/cluster-api-ipam-provider-in-cluster
binary=cluster-api-ipam-provider-in-cluster

# The machine's Go only (no toolchain download): upstream's go.mod says `go 1.26.2`.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build the upstream provider" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned upstream version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/upstream/${version}_${go_version}_${key}"
mkdir -p "$dir/bin"

log() { echo "[upstream] $*" >&2; }

if [ ! -x "$dir/bin/$binary" ]; then
  log "building $module $version with $go_version (cold: a few minutes on 2 cores; cached afterwards)"
  start=$SECONDS
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$dir/bin/$binary.tmp" "$module")
  mv "$dir/bin/$binary.tmp" "$dir/bin/$binary"
  log "built in $((SECONDS - start)) s"
fi

if [ ! -f "$dir/crds/.complete" ]; then
  log "extracting upstream's CRDs from the module"
  mod_dir=$(cd "$here" && go mod download -json "$module@$version" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  mkdir -p "$dir/crds"
  found=0
  for src in "$mod_dir"/config/crd/bases/*.yaml; do
    [ -f "$src" ] || continue
    cp "$src" "$dir/crds/"
    chmod u+w "$dir/crds/$(basename "$src")"
    found=$((found + 1))
  done
  [ "$found" -gt 0 ] || { echo "build.sh: no CRDs under config/crd/bases in $module@$version" >&2; exit 1; }
  touch "$dir/crds/.complete"
fi

echo "$dir"
