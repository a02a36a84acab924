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
