#!/usr/bin/env bash
# Build (or reuse) the test control plane: kube-apiserver, kube-controller-manager and etcd (and the real
# node's kubelet, kube-scheduler and kube-proxy) from the pinned Go modules beside this script, plus the Cluster API CRDs from the sigs.k8s.io/cluster-api module.
# Everything lands in a cache directory outside the repository, keyed by versions, go.sum hashes and the Go
# version, and is reused.
#
# Prints the cache directory on stdout (the last line); progress goes to stderr.
# Layout of the cache directory:
#   bin/kube-apiserver, bin/kube-controller-manager, bin/kube-scheduler, bin/kube-proxy, bin/kubelet, bin/etcd
#   crds/capi-<version>/*.yaml       (clusters, ipaddressclaims, ipaddresses)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Cluster API versions whose CRDs we install: the current contract (IPAM v1beta2) and an older one
# (IPAM v1beta1 only) for contract tests. Override with CAPI_VERSIONS="v1.14.2 ...".
capi_versions=${CAPI_VERSIONS:-"v1.14.2 v1.10.4"}

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane" >&2; exit 1; }

# The pinned versions, as `go mod tidy` left them in the require blocks.
module_version() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }
kube_version=$(module_version kube k8s.io/kubernetes)
etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] || { echo "build.sh: cannot read pinned versions" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/kube/go.sum" "$here/etcd/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/controlplane/kube-${kube_version}_etcd-${etcd_version}_${go_version}_${key}"
mkdir -p "$dir/bin"

log() { echo "[controlplane] $*" >&2; }

minor=$(echo "$kube_version" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

# kube-apiserver first (cold: 10-25 min on 2 cores); the rest share most packages with it and the build
# cache, so each takes about a minute more (measured in docs/design.md). kube-controller-manager serves the
# garbage collector; kubelet, kube-scheduler and kube-proxy make the real node (devcluster.node).
for binary in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet; do
  [ -x "$dir/bin/$binary" ] && continue
  log "building $binary $kube_version"
  start=$SECONDS
  (cd "$here/kube" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$dir/bin/$binary.tmp" \
      "k8s.io/kubernetes/cmd/$binary")
  mv "$dir/bin/$binary.tmp" "$dir/bin/$binary"
  log "$binary built in $((SECONDS - start)) s"
done

if [ ! -x "$dir/bin/etcd" ]; then
  log "building etcd $etcd_version"
  start=$SECONDS
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$dir/bin/etcd.tmp" "$dir/bin/etcd"
  log "etcd built in $((SECONDS - start)) s"
fi

for v in $capi_versions; do
  crd_dir="$dir/crds/capi-$v"
  [ -f "$crd_dir/.complete" ] && continue
  log "fetching Cluster API $v CRDs from the Go module"
  tmp=$(mktemp -d)
  mod_dir=$(cd "$tmp" && go mod download -json "sigs.k8s.io/cluster-api@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$tmp"
  mkdir -p "$crd_dir"
  for name in cluster.x-k8s.io_clusters ipam.cluster.x-k8s.io_ipaddressclaims ipam.cluster.x-k8s.io_ipaddresses; do
    src=$(find "$mod_dir" -path '*crd/bases/*' -name "$name.yaml" | head -n 1)
    [ -n "$src" ] || { echo "build.sh: $name.yaml not found in sigs.k8s.io/cluster-api@$v" >&2; exit 1; }
    cp "$src" "$crd_dir/$name.yaml"
    chmod u+w "$crd_dir/$name.yaml"
  done
  touch "$crd_dir/.complete"
done

echo "$dir"
