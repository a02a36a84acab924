#!/usr/bin/env bash
# Build Bay's runtime images from a Debian root filesystem (debootstrap, no registry).
#   images/build.sh --ship-bin target/release/ship
# Idempotent: every stage is keyed by a content hash and skipped when up to date.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib/common.sh"

SHIP_BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ship-bin) SHIP_BIN="$2"; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ -n "$SHIP_BIN" ] && [ -x "$SHIP_BIN" ] || die "--ship-bin must point to a built ship binary"
[ "$(id -u)" = 0 ] || die "building root filesystems needs root (debootstrap, chroot)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"

# --- ship ---------------------------------------------------------------------
rootfs_tag="bay-rootfs/ship:$(content_hash "$ROOTFS_RECIPE" "$here/ship/packages.txt" "$here/ship/setup.sh")"
step "ship image"
build_rootfs_image "$rootfs_tag" "$here/ship/packages.txt" "$here/ship/setup.sh"
files=$(mktemp -d); trap 'rm -rf "$files"' EXIT
mkdir -p "$files/usr/local/bin" "$files/opt/ship"
# Debug symbols are of no use inside the image.
strip -o "$files/usr/local/bin/ship" "$SHIP_BIN" 2>/dev/null || cp "$SHIP_BIN" "$files/usr/local/bin/ship"
cp -r "$here/ship/skills" "$files/opt/ship/skills"
hash=$(content_hash "$rootfs_tag" "$here/ship/image.changes" "$files/usr/local/bin/ship" $(find "$files/opt/ship/skills" -type f | sort))
build_final_image ship:latest "$rootfs_tag" "$files" "$here/ship/image.changes" "$hash"
