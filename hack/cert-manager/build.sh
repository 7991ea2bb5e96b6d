#!/usr/bin/env bash
# Build (or reuse) cert-manager's static release manifest, cert-manager.yaml, at the version pinned in go.mod
# beside this script, for `clusterctl init` on a real node (clusterctl's config points `cert-manager: url:` at
# the file). Rendered the way cert-manager's release does it, without network: Helm, built from its Go module
# (helm/go.mod), packages the chart from cert-manager's module zip with the release version, renders it twice
# (with and without CRDs, both with `creator=static` and no startupapicheck Job), cert-manager's own
# hack/extractcrd cuts the CRDs out of the full render, and the file is the licence header, the namespace,
# the CRDs and the rest, in that order.
#
# The images the manifest names (controller, webhook, cainjector) are built by binaries/build.sh from our own
# mains against the same pinned root module: cert-manager's cmd/ modules are not on the module proxy.
#
# The cache directory is keyed by the version, the Go version and a hash of both go.mod/go.sum pairs and
# this script. Prints it on stdout (the last line); progress goes to stderr. Layout:
#   cert-manager.yaml
#   bin/helm, bin/extractcrd
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=github.com/cert-manager/cert-manager

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build cert-manager's artifacts" >&2; exit 1; }

version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned cert-manager version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/helm/go.mod" "$here/helm/go.sum" "$here/build.sh" |
  sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/cert-manager/${version}_${go_version}_${key}"
mkdir -p "$dir/bin"

log() { echo "[cert-manager] $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$dir/bin/helm" ] || [ ! -x "$dir/bin/extractcrd" ]; then
  log "building helm and cert-manager's extractcrd with $go_version (cold: a minute or two; cached afterwards)"
  start=$SECONDS
  (cd "$here/helm" && go build -trimpath -ldflags "-s -w" -o "$dir/bin/helm.tmp" helm.sh/helm/v3/cmd/helm)
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$dir/bin/extractcrd.tmp" "$module/hack/extractcrd")
  mv "$dir/bin/helm.tmp" "$dir/bin/helm"
  mv "$dir/bin/extractcrd.tmp" "$dir/bin/extractcrd"
  log "tools built in $((SECONDS - start)) s"
fi

if [ ! -f "$dir/cert-manager.yaml" ]; then
  log "rendering cert-manager.yaml for $version"
  mod_dir=$(cd "$here" && go mod download -json "$module@$version" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  src="$mod_dir/deploy/charts/cert-manager"
  chart="$tmp/chart/cert-manager"
  # The files the release copies into its chart, nothing else (the chart's tests/ stay out).
  mkdir -p "$chart/templates"
  cp "$src/Chart.yaml" "$src/values.yaml" "$src/values.schema.json" "$src/.helmignore" "$chart/"
  cp "$src"/templates/*.yaml "$src/templates/_helpers.tpl" "$src/templates/NOTES.txt" "$chart/templates/"
  sed -e "s:{{RELEASE_VERSION}}:$version:g" "$src/README.template.md" >"$chart/README.md"
  chmod -R u+w "$tmp/chart"
  # Helm keeps its state under these; none of it may land in $HOME or reach a network.
  export HELM_CACHE_HOME="$tmp/helm/cache" HELM_CONFIG_HOME="$tmp/helm/config" HELM_DATA_HOME="$tmp/helm/data"
  helm="$dir/bin/helm"
  "$helm" package --app-version="$version" --version="$version" --destination "$tmp" "$chart" >&2
  tgz="$tmp/cert-manager-$version.tgz"
  render=("$helm" template --kube-version=1.29.0 --api-versions="" --namespace=cert-manager
    --set=creator=static --set=startupapicheck.enabled=false cert-manager "$tgz")
  "${render[@]}" | sed -e '1{/^---$/d;}' >"$tmp/noncrd.yaml"
  "${render[@]}" --set=crds.enabled=true | sed -e '1{/^---$/d;}' >"$tmp/all.yaml"
  "$dir/bin/extractcrd" "$tmp/all.yaml" >"$tmp/crds.yaml"
  {
    sed -e 's/YEAR/2022/g' "$mod_dir/hack/boilerplate-yaml.txt"
    cat "$mod_dir/deploy/manifests/namespace.yaml"
    printf '\n---\n'
    cat "$tmp/crds.yaml"
    printf '\n---\n'
    cat "$tmp/noncrd.yaml"
  } >"$dir/cert-manager.yaml.tmp"
  mv "$dir/cert-manager.yaml.tmp" "$dir/cert-manager.yaml"
  log "cert-manager.yaml: $(grep -c '^kind: CustomResourceDefinition' "$dir/cert-manager.yaml") CRDs," \
    "$(du -k "$dir/cert-manager.yaml" | cut -f1) KiB"
fi

echo "$dir"
