#!/usr/bin/env bash
# Lay out (or reuse) a clusterctl local repository with the full components of the three providers
# `clusterctl init` installs by default (core cluster-api, bootstrap-kubeadm, control-plane-kubeadm), plus
# their managers' images, all built from the sigs.k8s.io/cluster-api module pinned in go.mod beside this
# script (no release download, no registry), for a cluster with a node:
#
#   cluster-api/<version>/core-components.yaml                      kustomize core/config/default
#   bootstrap-kubeadm/<version>/bootstrap-components.yaml           kustomize bootstrap/kubeadm/config/default
#   control-plane-kubeadm/<version>/control-plane-components.yaml   kustomize controlplane/kubeadm/config/default
#   each beside the module's metadata.yaml
#   images/<name>.oci.tar     the manager of each, an OCI archive for `ctr images import`
#
# The components are made as the release makes them (the module's Makefile, release-manifests): the image
# patch set to registry.k8s.io/cluster-api/<name>:<version>, the pull policy patch set to IfNotPresent, then
# `kustomize build` (the one built into our kubectl); clusterctl's ${VAR:=default} variables stay as they are.
# The managers are built as upstream's Dockerfile builds them (static, -trimpath, the fieldsv1string tag,
# version ldflags) and packaged by hack/image/static.sh with the binary at /manager, the Deployments'
# `command`. The CRD-only repository for control planes without nodes stays hack/clusterctl/core-repository.sh.
#
# Cold: three large Go builds, one after another (minutes each on 2 cores; docs/operations.md has the
# measured figures). Cached under ~/.cache/incluster-ipam, keyed by go.sum, this script, hack/image/static.sh,
# kubectl's go.sum and the Go version. Prints the repository directory on stdout (the last line); progress
# goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hack=$(dirname "$here")
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "node-repository.sh: Go is required" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api)
[ -n "$version" ] || { echo "node-repository.sh: cannot read the pinned Cluster API version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.sum" "$here/node-repository.sh" "$hack/image/static.sh" "$hack/kubectl/go.sum" |
  sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/clusterctl-node-repository/${version}_${go_version}_${key}"
registry=registry.k8s.io/cluster-api

if [ ! -f "$dir/.complete" ]; then
  echo "[clusterctl] building Cluster API $version's providers and images (cold: minutes; cached afterwards)" >&2
  start=$SECONDS
  kubectl=$(bash "$hack/kubectl/build.sh" | tail -1)
  mod_json=$(cd "$here" && go mod download -json "sigs.k8s.io/cluster-api@$version")
  mod_dir=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("Dir") or sys.exit(d.get("Error")))' \
    "$mod_json")
  # The release's build date is not in the module; the proxy's timestamp of the version stands in for it.
  build_date=$(python3 -c 'import json,sys; print(json.load(open(json.loads(sys.argv[1])["Info"]))["Time"])' \
    "$mod_json")
  major=${version#v} major=${major%%.*}
  minor=${version#v*.} minor=${minor%%.*}
  ldflags="-s -w"
  for pair in "gitVersion=$version" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean" \
    "buildDate=$build_date"; do
    ldflags="$ldflags -X sigs.k8s.io/cluster-api/version.$pair"
  done

  mkdir -p "$cache_root"
  tmp=$(mktemp -d "$cache_root/.clusterctl-node-repository.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # provider dir, components file, module config dir (holds default/), main package, image name
  provider() {
    local target="$tmp/$1/$version" src="$tmp/src/$3" image="$registry/$5:$version" t0=$SECONDS
    mkdir -p "$target" "$src" "$tmp/images" "$tmp/bin"
    cp -r "$mod_dir/$3/." "$src/"
    chmod -R u+w "$src"
    sed -i -e "s@image: .*@image: $image@" "$src/default/manager_image_patch.yaml"
    sed -i -e 's@imagePullPolicy: .*@imagePullPolicy: IfNotPresent@' "$src/default/manager_pull_policy.yaml"
    "$kubectl" kustomize "$src/default" >"$target/$2"
    cp "$mod_dir/metadata.yaml" "$target/metadata.yaml"
    chmod u+w "$target/metadata.yaml"
    echo "[clusterctl] building $5 from sigs.k8s.io/cluster-api/$4" >&2
    (cd "$here" && go build -tags=fieldsv1string -trimpath -ldflags "$ldflags" -o "$tmp/bin/$5" \
      "sigs.k8s.io/cluster-api/$4")
    echo "[clusterctl] $5: built in $((SECONDS - t0)) s, $(du -k "$tmp/bin/$5" | cut -f1) KiB binary" >&2
    bash "$hack/image/static.sh" "$image" "$tmp/images/$5.oci.tar" /manager "$tmp/bin/$5:/manager"
    rm -f "$tmp/bin/$5"
  }
  provider cluster-api core-components.yaml core/config core cluster-api-controller
  provider bootstrap-kubeadm bootstrap-components.yaml bootstrap/kubeadm/config bootstrap/kubeadm \
    kubeadm-bootstrap-controller
  provider control-plane-kubeadm control-plane-components.yaml controlplane/kubeadm/config \
    controlplane/kubeadm kubeadm-control-plane-controller
  rm -rf "$tmp/src" "$tmp/bin"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  mv "$tmp" "$dir"
  trap - EXIT
  echo "[clusterctl] node repository laid out in $((SECONDS - start)) s" >&2
fi

echo "$dir"
