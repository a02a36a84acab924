# Runs inside the chroot after the packages are installed.
set -eu
# The unprivileged user every command and the Python kernel run as.
groupadd -g 1000 shipyard
useradd -u 1000 -g 1000 -d /workspace -s /bin/bash -M shipyard
# pip installs for the user (into ~/.local, i.e. the cargo) as in Shipyard
# Neo's image, instead of refusing with "externally-managed-environment".
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
# /workspace belongs to shipyard so a fresh named volume inherits the ownership.
mkdir -p /workspace /opt/ship
chown 1000:1000 /workspace
# Build matplotlib's font cache once, at image build time, instead of on the
# first plot of every sandbox (several seconds).
mkdir -p /opt/ship/mplconfig
MPLCONFIGDIR=/opt/ship/mplconfig python3 -c "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; plt.figure(); plt.plot([1,2]); plt.savefig('/tmp/x.png')"
rm -f /tmp/x.png
chmod -R a+rX /opt/ship
