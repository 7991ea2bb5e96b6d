#!/usr/bin/env bash
# Build (or reuse) kubectl from the pinned k8s.io/kubectl module beside this script: the plugin's
# integration tests run `kubectl ipam ...` through a real kubectl, as a user would. Cached outside the
# repository, keyed by the kubectl version, go.sum, this script and the Go version.
#
# Prints the path of the kubectl binary on stdout (the last line); progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "kubectl/build.sh: Go is required to build kubectl" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubectl)  # v0.37.2 is kubectl 1.37.2
kube_version="v1.${version#v0.}"
key=$(cat "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/kubectl/kubectl-${kube_version}_$(go env GOVERSION)_${key}"

if [ ! -x "$dir/kubectl" ]; then
  mkdir -p "$dir"
  minor=$(echo "$kube_version" | cut -d. -f2)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1"
  ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
  echo "[kubectl] building kubectl $kube_version (cold: a few minutes on 2 cores; cached afterwards)" >&2
  start=$SECONDS
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$dir/kubectl.tmp" .)
  mv "$dir/kubectl.tmp" "$dir/kubectl"
  echo "[kubectl] built in $((SECONDS - start)) s" >&2
fi
echo "$dir/kubectl"
