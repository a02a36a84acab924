#!/usr/bin/env bash
# Build Bay's runtime images from a Debian root filesystem (debootstrap, no registry).
#   images/build.sh --ship-bin target/release/ship        (ship:latest, lite:latest)
#   images/build.sh --gull-bin target/release/gull --agent-browser-bin PATH   (gull:latest)
# Both can be given at once; --ship-bin may be left out when building only gull.
# Idempotent: every stage is keyed by a content hash and skipped when up to date.
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib/common.sh"

SHIP_BIN=""
GULL_BIN=""
AGENT_BROWSER_BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ship-bin) SHIP_BIN="$2"; shift 2 ;;
    --gull-bin) GULL_BIN="$2"; shift 2 ;;
    --agent-browser-bin) AGENT_BROWSER_BIN="$2"; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
BUILD_GULL=""
if [ -n "$GULL_BIN" ] || [ -n "$AGENT_BROWSER_BIN" ]; then
  [ -n "$GULL_BIN" ] && [ -x "$GULL_BIN" ] || die "--gull-bin must point to a built gull binary"
  [ -n "$AGENT_BROWSER_BIN" ] && [ -x "$AGENT_BROWSER_BIN" ] \
    || die "--agent-browser-bin must point to an agent-browser 0.19 binary (cargo install agent-browser)"
  BUILD_GULL=1
fi
if [ -n "$SHIP_BIN" ] || [ -z "$BUILD_GULL" ]; then
  [ -n "$SHIP_BIN" ] && [ -x "$SHIP_BIN" ] || die "--ship-bin must point to a built ship binary"
fi
[ "$(id -u)" = 0 ] || die "building root filesystems needs root (debootstrap, chroot)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"

files=$(mktemp -d); trap 'rm -rf "$files"' EXIT

# --- ship ---------------------------------------------------------------------
if [ -n "$SHIP_BIN" ]; then
rootfs_tag="bay-rootfs/ship:$(content_hash "$ROOTFS_RECIPE" "$here/ship/packages.txt" "$here/ship/setup.sh")"
step "ship image"
build_rootfs_image "$rootfs_tag" "$here/ship/packages.txt" "$here/ship/setup.sh"
mkdir -p "$files/ship/usr/local/bin" "$files/ship/opt/ship"
# Debug symbols are of no use inside the image.
strip -o "$files/ship/usr/local/bin/ship" "$SHIP_BIN" 2>/dev/null || cp "$SHIP_BIN" "$files/ship/usr/local/bin/ship"
cp -r "$here/ship/skills" "$files/ship/opt/ship/skills"
hash=$(content_hash "$rootfs_tag" "$here/ship/image.changes" "$files/ship/usr/local/bin/ship" $(find "$files/ship/opt/ship/skills" -type f | sort))
build_final_image ship:latest "$rootfs_tag" "$files/ship" "$here/ship/image.changes" "$hash"

# The plugin tutorial's example runtime (runtimes/lite): one Python file on
# the same root filesystem.
mkdir -p "$files/lite/opt/lite"
cp "$here/../runtimes/lite/lite.py" "$files/lite/opt/lite/lite.py"
hash=$(content_hash "$rootfs_tag" "$here/lite/image.changes" "$files/lite/opt/lite/lite.py")
build_final_image lite:latest "$rootfs_tag" "$files/lite" "$here/lite/image.changes" "$hash"
fi

# --- gull ---------------------------------------------------------------------
# Headless Chromium (Debian's) driven by the agent-browser CLI/daemon, which is
# a Rust binary built outside this script (`cargo install agent-browser`).
if [ -n "$BUILD_GULL" ]; then
rootfs_tag="bay-rootfs/gull:$(content_hash "$ROOTFS_RECIPE" "$here/gull/packages.txt" "$here/gull/setup.sh")"
step "gull image"
build_rootfs_image "$rootfs_tag" "$here/gull/packages.txt" "$here/gull/setup.sh"
mkdir -p "$files/gull/usr/local/bin" "$files/gull/opt/gull"
strip -o "$files/gull/usr/local/bin/gull" "$GULL_BIN" 2>/dev/null || cp "$GULL_BIN" "$files/gull/usr/local/bin/gull"
strip -o "$files/gull/usr/local/bin/agent-browser" "$AGENT_BROWSER_BIN" 2>/dev/null \
  || cp "$AGENT_BROWSER_BIN" "$files/gull/usr/local/bin/agent-browser"
cp -r "$here/gull/skills" "$files/gull/opt/gull/skills"
hash=$(content_hash "$rootfs_tag" "$here/gull/image.changes" "$files/gull/usr/local/bin/gull" \
  "$files/gull/usr/local/bin/agent-browser" $(find "$files/gull/opt/gull/skills" -type f | sort))
build_final_image gull:latest "$rootfs_tag" "$files/gull" "$here/gull/image.changes" "$hash"
fi
