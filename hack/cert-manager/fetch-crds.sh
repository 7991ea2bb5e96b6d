#!/usr/bin/env bash
# Fetch (or reuse) cert-manager's CRDs from its Go module, for tests that apply the release manifests
# (Issuer and Certificate objects) to the local control plane. No Helm, no release download: the module zip
# from the Go module proxy carries the plain CRD files under deploy/crds/.
#
# Prints the cache directory holding the CRD files on stdout (the last line); progress goes to stderr.
set -euo pipefail

version=${CERT_MANAGER_VERSION:-v1.21.2}
export GOTOOLCHAIN=local GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "fetch-crds.sh: Go is required" >&2; exit 1; }
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/cert-manager/$version/crds"

if [ ! -f "$dir/.complete" ]; then
  echo "[cert-manager] fetching CRDs of github.com/cert-manager/cert-manager@$version" >&2
  start=$SECONDS
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mod_dir=$(cd "$tmp" && go mod download -json "github.com/cert-manager/cert-manager@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$dir"
  found=0
  for src in "$mod_dir"/deploy/crds/*.yaml; do
    [ -e "$src" ] || continue
    cp "$src" "$dir/"
    chmod u+w "$dir/$(basename "$src")"
    found=$((found + 1))
  done
  [ "$found" -gt 0 ] || { echo "fetch-crds.sh: no CRDs under deploy/crds in cert-manager@$version" >&2; exit 1; }
  touch "$dir/.complete"
  echo "[cert-manager] $found CRDs in $((SECONDS - start)) s" >&2
fi

echo "$dir"
