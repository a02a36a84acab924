# Runs inside the chroot after the packages are installed.
set -eu
# The unprivileged user the server, agent-browser and Chromium run as; the
# same uid as Ship's, so files both write on the shared cargo are owned alike.
groupadd -g 1000 shipyard
useradd -u 1000 -g 1000 -d /workspace -s /bin/bash -M shipyard
# /workspace belongs to shipyard so a fresh named volume inherits the ownership.
mkdir -p /workspace /opt/gull
chown 1000:1000 /workspace
# The system font cache, so no sandbox pays for building one at first launch
# (the root filesystem is read-only at run time anyway).
fc-cache -f >/dev/null
test -x /usr/bin/chromium
# Chromium refuses to open loopback URLs (a managed policy, whatever the
# page or command): in a Gull container loopback holds only Gull's own API
# and every browser's DevTools port, and in shared mode those of the other
# sandboxes' browsers (docs/runtimes.md, "Shared mode"). Sibling services
# are reached by their network name (http://ship:8000).
mkdir -p /etc/chromium/policies/managed
cat > /etc/chromium/policies/managed/bay-loopback.json <<'JSON'
{"URLBlocklist": ["127.0.0.1", "localhost", "*.localhost", "[::1]", "0.0.0.0"]}
JSON
