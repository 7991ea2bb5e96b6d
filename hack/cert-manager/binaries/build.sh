#!/usr/bin/env bash
# Build (or reuse) cert-manager's three images from Go modules alone: our own main packages beside this
# script (controller/, webhook/, cainjector/), compiled against the pinned root module
# github.com/cert-manager/cert-manager (cert-manager's cmd/ modules are not on the Go module proxy), then
# packaged by hack/image/static.sh under the names the release manifest uses
# (quay.io/jetstack/cert-manager-{controller,webhook,cainjector}:<version>) with upstream's entrypoints
# (/app/cmd/<name>/<name>). Cached outside the repository, keyed by go.mod, go.sum, the mains, this script
# and the Go version.
#
# Prints the cache directory on stdout (the last line): bin/<name> and images/cert-manager-<name>.oci.tar.
# Progress goes to stderr. Cold: the controller pulls in every issuer's dependencies (cloud DNS SDKs, Vault,
# Venafi); see docs/operations.md for the time on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "cert-manager/binaries/build.sh: Go is required" >&2; exit 1; }

names=(controller webhook cainjector)
version=$(cd "$here" && go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)
key=$(cd "$here" && cat go.mod go.sum build.sh ./*/*.go | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/cert-manager-images/${version}_$(go env GOVERSION)_${key}"

if [ ! -f "$dir/.complete" ]; then
  mkdir -p "$dir/bin" "$dir/images"
  if [ ! -x "$dir/bin/cainjector" ]; then
    echo "[cert-manager] building ${names[*]} $version (cold: several minutes on 2 cores; cached afterwards)" >&2
    start=$SECONDS
    tmp=$(mktemp -d "$dir/bin.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$version"
    (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" ./controller ./webhook ./cainjector)
    for name in "${names[@]}"; do mv "$tmp/$name" "$dir/bin/$name"; done
    echo "[cert-manager] built in $((SECONDS - start)) s" >&2
  fi
  for name in "${names[@]}"; do
    bash "$root/hack/image/static.sh" "quay.io/jetstack/cert-manager-$name:$version" \
      "$dir/images/cert-manager-$name.oci.tar" "/app/cmd/$name/$name" "$dir/bin/$name:/app/cmd/$name/$name"
  done
  touch "$dir/.complete"
fi
echo "$dir"
