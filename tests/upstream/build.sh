#!/usr/bin/env bash
# Builds bay-e2e-upstream-ship:latest: our Ship image shaped like Shipyard
# Neo's at start, for tests/e2e/upstream.rs. Like theirs, it runs as root, its
# entrypoint chowns the workspace under `set -e` and writes outside it
# (/app), and users' commands may go through `sudo -u shipyard` (Debian's
# sudo, unpacked here: no network inside the build).
set -euo pipefail
IMAGE=bay-e2e-upstream-ship:latest
docker image inspect ship:latest >/dev/null || { echo "error: ship:latest is missing (./dev images)" >&2; exit 1; }
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
# Debian's package lists may be empty on a fresh machine: update once, then retry.
(cd "$ctx" && apt-get download -q sudo >/dev/null 2>&1) \
  || { apt-get update -q >/dev/null 2>&1 && (cd "$ctx" && apt-get download -q sudo >/dev/null 2>&1); } \
  || { echo "error: apt-get download sudo failed" >&2; exit 1; }
dpkg-deb -x "$ctx"/sudo_*.deb "$ctx/deb"
# Only usr/ and etc/: the package's lib/ (systemd units) would replace the
# image's /lib symlink with a directory.
mkdir -p "$ctx/root"
cp -a "$ctx/deb/usr" "$ctx/deb/etc" "$ctx/root/"
mkdir -p "$ctx/root/etc/sudoers.d"
echo 'shipyard ALL=(ALL) NOPASSWD:ALL' > "$ctx/root/etc/sudoers.d/shipyard"
chmod 0440 "$ctx/root/etc/sudoers.d/shipyard"
cat > "$ctx/entrypoint.sh" <<'SH'
#!/bin/sh
# As Shipyard Neo's Ship entrypoint: any failure stops the container.
set -e
chown -R shipyard:shipyard /workspace
mkdir -p /app
date > /app/started
exec /usr/local/bin/ship "$@"
SH
cat > "$ctx/Dockerfile" <<'DF'
FROM ship:latest
USER root
COPY root/ /
COPY entrypoint.sh /entrypoint.sh
RUN ["/usr/bin/chmod", "4755", "/usr/bin/sudo"]
RUN ["/usr/bin/chmod", "0755", "/entrypoint.sh"]
ENTRYPOINT ["/entrypoint.sh"]
DF
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>&1 || DOCKER_BUILDKIT=0 docker build -t "$IMAGE" "$ctx" >&2
echo "$IMAGE"
