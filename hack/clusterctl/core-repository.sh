#!/usr/bin/env bash
# Lay out (or reuse) a clusterctl local repository with Cluster API's own providers, built from the
# sigs.k8s.io/cluster-api module pinned in go.mod beside this script (no release download), for
# `clusterctl init` on a control plane without nodes (tests/e2e/test_clusterctl_move.py):
#
#   cluster-api/<version>/core-components.yaml                 Namespace capi-system + core/config/crd/bases
#   bootstrap-kubeadm/<version>/bootstrap-components.yaml      Namespace + bootstrap/kubeadm CRDs
#   control-plane-kubeadm/<version>/control-plane-components.yaml   Namespace + controlplane/kubeadm CRDs
#   each beside the module's metadata.yaml
#
# Only the CRDs and namespaces: the controllers' Deployments would never run without a node, and clusterctl
# move needs the CRDs, the provider inventory and the objects, not the controllers.
# Prints the repository directory on stdout (the last line); progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "core-repository.sh: Go is required" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api)
key=$(cat "$here/go.sum" "$here/core-repository.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/clusterctl-repository/${version}_${key}"

if [ ! -f "$dir/.complete" ]; then
  echo "[clusterctl] laying out Cluster API $version's providers as a local repository" >&2
  mod_dir=$(cd "$here" && go mod download -json "sigs.k8s.io/cluster-api@$version" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  tmp=$(mktemp -d "$cache_root/.clusterctl-repository.XXXXXX")
  provider() {  # provider dir, components file, namespace, CRD dir
    local target="$tmp/$1/$version"
    mkdir -p "$target"
    {
      printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$3"
      for crd in "$mod_dir/$4"/*.yaml; do
        printf -- '---\n'
        cat "$crd"
      done
    } >"$target/$2"
    cp "$mod_dir/metadata.yaml" "$target/metadata.yaml"
    chmod -R u+w "$target"
  }
  provider cluster-api core-components.yaml capi-system core/config/crd/bases
  provider bootstrap-kubeadm bootstrap-components.yaml capi-kubeadm-bootstrap-system \
    bootstrap/kubeadm/config/crd/bases
  provider control-plane-kubeadm control-plane-components.yaml capi-kubeadm-control-plane-system \
    controlplane/kubeadm/config/crd/bases
  touch "$tmp/.complete"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  mv "$tmp" "$dir"
fi

echo "$dir"
