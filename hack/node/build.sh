#!/usr/bin/env bash
# Install (or reuse) what the real node (devcluster.node, tests/e2e/node) runs besides the binaries of
# hack/controlplane/build.sh: containerd, runc, the CNI plugins and iptables from Debian's packages, and the
# pod sandbox image containerd asks for (registry.k8s.io/pause:3.6), built from pause/main.go beside this
# script since nothing can be pulled. The image is cached outside the repository, keyed by its source.
#
# Prints the cache directory on stdout (the last line): pause.oci.tar. Progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "[node] $*" >&2; }

packages=()
command -v containerd >/dev/null || packages+=(containerd)
command -v runc >/dev/null || packages+=(runc)
[ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
command -v iptables >/dev/null || packages+=(iptables)
command -v buildah >/dev/null || packages+=(buildah)
if [ ${#packages[@]} -gt 0 ]; then
  log "installing ${packages[*]} from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >&2; }
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
go_version=$(go env GOVERSION)
key=$(cat "$here/pause/main.go" "$here/pause/go.mod" "$here/build.sh" "$here/../image/static.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/node/${go_version}_${key}"
if [ ! -f "$dir/pause.oci.tar" ]; then
  log "building the sandbox image registry.k8s.io/pause:3.6 from pause/main.go"
  start=$SECONDS
  mkdir -p "$dir"
  (cd "$here/pause" && go build -trimpath -ldflags "-s -w" -o "$dir/pause" .)
  bash "$here/../image/static.sh" registry.k8s.io/pause:3.6 "$dir/pause.oci.tar" /pause "$dir/pause:/pause"
  rm -f "$dir/pause"
  log "sandbox image built in $((SECONDS - start)) s"
fi
echo "$dir"
