#!/usr/bin/env bash
# Podman as a second engine for Bay's test suite, through Podman's
# Docker-compatible API service (rootful; the docker-api driver plugin talks to
# it like to Docker). Used by `./dev test` (podman_pass) and by hand:
#
#   tests/podman.sh setup             install podman and what it needs (apt), write
#                                     /etc/containers/containers.conf if absent
#   tests/podman.sh load IMAGE...     copy images from Docker into Podman (only those
#                                     whose image ID Podman lacks), under the same name
#   tests/podman.sh start DIR         start the API service on DIR/podman.sock (pid in
#                                     DIR/podman.pid, log in DIR/podman.log); prints the socket
#   tests/podman.sh stop DIR          stop that service
#   tests/podman.sh leftovers KEY     print the containers, volumes and networks carrying
#                                     the label KEY (nothing when there are none)
#
# Podman runs as root (sudo when not root); when not root, the socket is handed
# to the calling user. How Podman's API differs from Docker's, and what the
# driver does about it: docs/plugins.md#podman.
set -euo pipefail

API=v1.41
CONF=/etc/containers/containers.conf
# netavark + aardvark-dns: the network stack for `podman network create` (bridge
# networks, DNS on them); uidmap, slirp4netns, fuse-overlayfs, catatonit: what
# Debian's podman recommends for containers (catatonit is its --init).
PACKAGES=(podman netavark aardvark-dns uidmap slirp4netns fuse-overlayfs catatonit)

say() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }
# The podman CLI, as root.
pm() { as_root podman "$@"; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

setup() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
  # Without this, runc cannot start any container on this kind of machine
  # ("error setting rlimit type 7: operation not permitted"): Podman would set
  # RLIMIT_NOFILE/NPROC above what the machine allows.
  if [ ! -e "$CONF" ]; then
    say "write $CONF (default_ulimits = [])"
    printf '[containers]\n# Keep the ulimits the service inherits (raising them fails here).\ndefault_ulimits = []\n' |
      as_root tee "$CONF" >/dev/null
  elif ! grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONF"; then
    say "warning: $CONF exists but does not set default_ulimits (containers may fail to start with" \
      "\"error setting rlimit type 7\"); add default_ulimits = [] under [containers]"
  fi
  pm info --format '{{.Host.NetworkBackend}}' >/dev/null || die "podman info failed"
}

# The image ID, without its sha256: prefix, or nothing.
docker_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null | sed 's/^sha256://'; }
podman_id() { pm image inspect -f '{{.Id}}' "$1" 2>/dev/null | sed 's/^sha256://' || true; }

load() {
  [ $# -gt 0 ] || usage
  local img want have
  for img in "$@"; do
    want=$(docker_id "$img") || true
    [ -n "$want" ] || die "Docker has no image $img"
    have=$(podman_id "$img")
    if [ "$have" = "$want" ]; then
      say "$img: Podman has it (${want:0:12})"
      continue
    fi
    # docker-archive keeps the image ID; Podman names the image localhost/NAME:TAG,
    # which its API also finds as NAME:TAG.
    say "$img: docker save | podman load (${want:0:12})"
    docker save "$img" | pm load -q >&2
    [ "$(podman_id "$img")" = "$want" ] || die "$img: Podman's copy has another image ID"
    # The copy it replaces, if now untagged and unused (rmi refuses otherwise).
    if [ -n "$have" ]; then pm rmi "$have" >/dev/null 2>&1 || true; fi
  done
}

ping_ok() { [ "$(curl -sS --max-time 2 --unix-socket "$1" "http://d/$API/_ping" 2>/dev/null)" = OK ]; }

start() {
  [ $# -eq 1 ] || usage
  local dir sock pidf log i
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  sock="$dir/podman.sock" pidf="$dir/podman.pid" log="$dir/podman.log"
  if [ -s "$pidf" ] && as_root kill -0 "$(cat "$pidf")" 2>/dev/null && ping_ok "$sock"; then
    echo "$sock"
    return
  fi
  as_root rm -f "$sock"
  command -v podman >/dev/null || die "podman is not installed (tests/podman.sh setup)"
  # Detached (own session, no stdout) so that $(tests/podman.sh start DIR) returns;
  # the shell writes its own pid and then becomes the service.
  # shellcheck disable=SC2016
  as_root setsid sh -c 'echo $$ >"$1"; exec podman system service --time=0 "unix://$2"' \
    sh "$pidf" "$sock" </dev/null >>"$log" 2>&1 &
  for i in $(seq 1 300); do
    if [ -S "$sock" ]; then
      is_root || sudo chown "$(id -u):$(id -g)" "$sock"
      ping_ok "$sock" && { echo "$sock"; return; }
    fi
    if [ "$i" -gt 5 ] && { [ ! -s "$pidf" ] || ! as_root kill -0 "$(cat "$pidf")" 2>/dev/null; }; then
      tail -20 "$log" >&2
      die "podman system service exited (log: $log)"
    fi
    sleep 0.1
  done
  tail -20 "$log" >&2
  die "podman system service did not answer on $sock within 30s (log: $log)"
}

stop() {
  [ $# -eq 1 ] || usage
  local dir="$1" pid i
  [ -s "$dir/podman.pid" ] || { say "no $dir/podman.pid"; return 0; }
  pid=$(cat "$dir/podman.pid")
  if as_root kill -TERM "$pid" 2>/dev/null; then
    for i in $(seq 1 100); do
      as_root kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if as_root kill -0 "$pid" 2>/dev/null; then as_root kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  as_root rm -f "$dir/podman.pid" "$dir/podman.sock"
}

leftovers() {
  [ $# -eq 1 ] || usage
  local key="$1"
  pm ps -a --filter "label=$key" --format 'container {{.Names}} {{.ID}} {{.Status}}'
  pm volume ls --filter "label=$key" --format 'volume {{.Name}}'
  pm network ls --filter "label=$key" --format 'network {{.Name}} {{.ID}}'
}

case "${1:-}" in
  setup) shift; setup "$@" ;;
  load) shift; load "$@" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  leftovers) shift; leftovers "$@" ;;
  *) usage ;;
esac
