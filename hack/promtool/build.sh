#!/usr/bin/env bash
# Build (or reuse) promtool from the Prometheus Go module pinned in go.mod beside this script; the tests use it
# to check and unit-test config/prometheus/. The binary lands in a cache directory outside the repository,
# keyed by the pinned version, the go.sum hash, this script and the Go version, and is reused.
# Built with the `remove_all_sd` tag: promtool's rule checks and tests need no cloud service discovery, and
# leaving those SDKs out trims the cold build (about two minutes on 2 cores; see docs/operations.md).
#
# Prints the path of the promtool binary on stdout (the last line); progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
command -v go >/dev/null || { echo "build.sh: Go is required to build promtool" >&2; exit 1; }

module=github.com/prometheus/prometheus
version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned Prometheus version" >&2; exit 1; }
go_version=$(go env GOVERSION)
key=$(cat "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
dir="$cache_root/promtool/${version}_${go_version}_${key}"
mkdir -p "$dir"

if [ ! -x "$dir/promtool" ]; then
  echo "[promtool] building promtool $version (cold: minutes on 2 cores; cached afterwards)" >&2
  start=$SECONDS
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$version"
  (cd "$here" && go build -trimpath -tags remove_all_sd -ldflags "$ldflags" -o "$dir/promtool.tmp" \
      "$module/cmd/promtool")
  mv "$dir/promtool.tmp" "$dir/promtool"
  echo "[promtool] built in $((SECONDS - start)) s" >&2
fi

echo "$dir/promtool"
