#!/usr/bin/env bash
# Package static binaries as a minimal OCI image without a daemon: `buildah from scratch`, the binaries under
# /, an /etc/passwd naming the non-root user 65532 (as distroless images do), the entrypoint, then an OCI
# archive for `ctr images import`. Used for the node's sandbox image and for the images of the components
# built from Go modules (cert-manager, Cluster API); the callers cache the archive by their own key.
#
#   hack/image/static.sh IMAGE ARCHIVE ENTRYPOINT BINARY [BINARY...]
# IMAGE is the full reference the manifests name (for example quay.io/jetstack/cert-manager-controller:v1.21.2),
# ENTRYPOINT the path of the command inside the image (for example /app/cmd/controller), each BINARY
# SRC:DEST (DEST an absolute path inside the image). Progress goes to stderr; nothing on stdout.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: static.sh IMAGE ARCHIVE ENTRYPOINT SRC:DEST..." >&2; exit 2; }
image=$1 archive=$2 entrypoint=$3
shift 3
command -v buildah >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >&2; }
}
cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
store="$cache_root/static-images"
mkdir -p "$store" "$(dirname "$archive")"
buildah=(buildah --storage-driver vfs --root "$store/storage" --runroot "$store/run")

etc=$(mktemp -d)
trap 'rm -rf "$etc"' EXIT
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  >"$etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$etc/group"
mkdir -p "$etc/tmp" && chmod 1777 "$etc/tmp"

container=$("${buildah[@]}" from scratch)
cleanup() { "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true; rm -rf "$etc"; }
trap cleanup EXIT
"${buildah[@]}" copy --quiet "$container" "$etc/passwd" /etc/passwd >&2
"${buildah[@]}" copy --quiet "$container" "$etc/group" /etc/group >&2
"${buildah[@]}" copy --quiet "$container" "$etc/tmp" /tmp >&2
for pair in "$@"; do
  src=${pair%%:*} dest=${pair#*:}
  [ -f "$src" ] || { echo "static.sh: $src is not a file" >&2; exit 1; }
  "${buildah[@]}" copy --quiet --chmod 0755 "$container" "$src" "$dest" >&2
done
"${buildah[@]}" config --user 65532:65532 --entrypoint "[\"$entrypoint\"]" --cmd '' \
  --env PATH=/usr/local/bin:/usr/bin:/bin "$container" >&2
"${buildah[@]}" commit --quiet "$container" "$image" >/dev/null
"${buildah[@]}" push --quiet "$image" "oci-archive:$archive.tmp:$image" >&2
"${buildah[@]}" rmi --force "$image" >/dev/null 2>&1 || true
mv "$archive.tmp" "$archive"
echo "[image] $image: $(du -k "$archive" | cut -f1) KiB archive" >&2
