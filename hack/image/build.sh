#!/usr/bin/env bash
# Build (or reuse) the provider image from the repository's Dockerfile without a container engine daemon:
#   1. a Python 3.11 base made from Debian bookworm's own packages (mmdebstrap; nothing is pulled from a
#      registry), imported into buildah as localhost/incluster-ipam-base:<key>;
#   2. `buildah bud` of the Dockerfile with PYTHON_IMAGE naming that base (the Dockerfile is not copied or
#      rewritten: what ships is what is built here);
#   3. the image saved as an OCI archive (for `ctr images import` on a node, or `skopeo copy` to a registry).
# Both steps are cached outside the repository, keyed by content: the base by its recipe (suite, packages),
# the image by the base and every file of the build context (.dockerignore: pyproject.toml, README.md,
# requirements/image.lock, src/) plus the Dockerfile.
#
#   hack/image/build.sh [IMAGE]     IMAGE defaults to localhost/incluster-ipam:dev
# Prints the OCI archive's path on the last line of stdout; progress goes to stderr.
# Needs root, mmdebstrap and buildah; the end-to-end tests also unpack and run the image with umoci and runc.
# All four are installed from Debian's packages here if missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image=${1:-localhost/incluster-ipam:dev}
log() { echo "[image] $*" >&2; }

missing=()
for tool in mmdebstrap buildah umoci runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
fi

cache_root=${INCLUSTER_IPAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incluster-ipam}
cache="$cache_root/image"
mkdir -p "$cache"
# One buildah store of our own (vfs: works without overlay mounts), not the machine's.
buildah=(buildah --storage-driver vfs --root "$cache/storage" --runroot "$cache/run")

# ---- 1. the base -----------------------------------------------------------------------------------------
packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
excluded=(/usr/share/doc/ /usr/share/man/ /usr/share/locale/ /usr/share/info/)
dpkgopts=()
for path in "${excluded[@]}"; do dpkgopts+=("--dpkgopt=path-exclude=$path*"); done
# Keyed by the recipe alone (suite, variant, packages, exclusions), so edits elsewhere in this script reuse it.
base_key=$(echo "bookworm minbase $packages ${excluded[*]}" | sha256sum | cut -c1-16)
base="localhost/incluster-ipam-base:$base_key"
if ! "${buildah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  log "making the Python base from Debian bookworm's packages ($packages)"
  start=$SECONDS
  tar="$cache/base-$base_key.tar"  # the .tar suffix tells mmdebstrap the output format
  rm -rf "$tar"
  mmdebstrap --quiet --variant=minbase --include="$packages" "${dpkgopts[@]}" \
    bookworm "$tar" http://deb.debian.org/debian >&2
  container=$("${buildah[@]}" from scratch)
  "${buildah[@]}" add "$container" "$tar" / >&2
  "${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' "$container" >&2
  "${buildah[@]}" commit -q "$container" "$base" >&2
  "${buildah[@]}" rm "$container" >&2
  rm -f "$tar"
  log "base built in $((SECONDS - start)) s"
fi

# ---- 2. the image ----------------------------------------------------------------------------------------
cd "$root"
context_files=$(git ls-files -- Dockerfile .dockerignore pyproject.toml README.md requirements/image.lock src \
  | grep -v -E '(__pycache__|\.pyc$)' | LC_ALL=C sort)
image_key=$( { echo "$base"; for f in $context_files; do echo "$f"; sha256sum < "$f"; done; } \
  | sha256sum | cut -c1-16)
archive="$cache/incluster-ipam-$image_key.oci.tar"
if [ ! -f "$archive" ]; then
  log "building $image from the Dockerfile on $base"
  start=$SECONDS
  # The build's pip talks to the package index through this machine's TLS trust store.
  "${buildah[@]}" bud --quiet --isolation chroot --network host --layers=false \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg "PYTHON_IMAGE=$base" --tag "$image" --file Dockerfile . >&2
  "${buildah[@]}" push --quiet "$image" "oci-archive:$archive.tmp:$image" >&2
  mv "$archive.tmp" "$archive"
  log "image built in $((SECONDS - start)) s: $(du -m "$archive" | cut -f1) MB archive"
  # The archive is what is kept: drop the image from buildah's store, and all but the newest three archives
  # and the current base (each build of changed sources would otherwise add ~300 MB to the cache).
  "${buildah[@]}" rmi --force "$image" >/dev/null 2>&1 || true
  "${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
  { "${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '/incluster-ipam-base:' | grep -v ":$base_key\$" \
      | while read -r old; do "${buildah[@]}" rmi --force "$old" >/dev/null 2>&1 || true; done; } || true
  { ls -t "$cache"/incluster-ipam-*.oci.tar | tail -n +4 | while read -r old; do rm -f "$old"; done; } || true
fi
echo "$archive"
