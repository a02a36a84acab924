# Shared helpers for the image builders. Sourced, not executed.
# Images are built from a Debian root filesystem made with debootstrap from the
# mirror apt is already configured with (no registry is ever contacted).

set -euo pipefail

# Bump when build_rootfs_image changes in a way that alters the result.
ROOTFS_RECIPE="rootfs-recipe-1"

BAY_IMAGE_CACHE="${BAY_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bay/images}"
mkdir -p "$BAY_IMAGE_CACHE"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Run a noisy command, showing its latest line in place and its full log on failure.
run_logged() {
  local log="$1"; shift
  local start=$SECONDS
  if [ -t 1 ]; then
    ( "$@" 2>&1 ) > >(tee "$log" | while IFS= read -r line; do printf '\r\033[K    %s' "${line:0:100}"; done) || {
      printf '\n'; tail -n 40 "$log" >&2; die "failed: $* (log: $log)"; }
    wait
    printf '\r\033[K'
  else
    ( "$@" ) >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "failed: $* (log: $log)"; }
  fi
  info "done in $((SECONDS - start))s"
}

# Print "URI SUITE" of the primary Debian archive apt uses on this machine, and
# export DEBIAN_SECURITY_URI when a security archive is configured. Reads both the
# deb822 (*.sources) and the one-line (sources.list) formats; never guesses a host.
detect_mirror() {
  python3 - <<'PY'
import glob, os, re
entries = []
def add(uri, suites):
    for s in suites:
        entries.append((uri.rstrip('/'), s))
for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
    for stanza in re.split(r'\n\s*\n', open(path).read()):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith('#') or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += ' ' + line.strip(); continue
            key, _, val = line.partition(':'); key = key.strip().lower(); fields[key] = val.strip()
        if 'deb' not in fields.get('types', '').split() or fields.get('enabled', 'yes') == 'no':
            continue
        for uri in fields.get('uris', '').split():
            add(uri, fields.get('suites', '').split())
for path in ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')):
    if not os.path.exists(path):
        continue
    for line in open(path):
        parts = re.sub(r'\[[^\]]*\]', '', line.split('#')[0]).split()
        if len(parts) >= 3 and parts[0] == 'deb':
            add(parts[1], [parts[2]])
codename = ''
for line in open('/etc/os-release'):
    if line.startswith('VERSION_CODENAME='):
        codename = line.split('=', 1)[1].strip().strip('"')
main = [e for e in entries if e[1] == codename and 'security' not in e[0]] or \
       [e for e in entries if '-' not in e[1] and 'security' not in e[0] and 'debian' in e[0]]
sec = [e for e in entries if e[1] == codename + '-security']
if not main:
    raise SystemExit('no Debian archive found in the apt sources')
print(main[0][0], main[0][1], sec[0][0] if sec else '')
PY
}

# A content hash of files and strings, for idempotent rebuilds.
content_hash() {
  { for a in "$@"; do if [ -f "$a" ]; then sha256sum "$a" | cut -d' ' -f1; else printf '%s\n' "$a"; fi; done; } \
    | sha256sum | cut -c1-16
}

image_label() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# build_rootfs_image TAG PACKAGE_FILE SETUP_SCRIPT
# Makes a minbase debootstrap (cached as a tarball), installs the packages with apt
# inside a chroot, runs SETUP_SCRIPT inside it, and imports the result as TAG.
build_rootfs_image() {
  local tag="$1" pkgfile="$2" setup="$3"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    info "root filesystem $tag is up to date"; return
  fi
  read -r MIRROR SUITE SECURITY <<<"$(detect_mirror)"
  info "Debian mirror: $MIRROR ($SUITE)"
  local base="$BAY_IMAGE_CACHE/debootstrap-$SUITE-minbase.tar"
  if [ ! -f "$base" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    step "debootstrap $SUITE (minbase) from $MIRROR"
    local tmp; tmp=$(mktemp -d "$BAY_IMAGE_CACHE/deboot.XXXX")
    run_logged "$BAY_IMAGE_CACHE/debootstrap.log" debootstrap --variant=minbase "$SUITE" "$tmp/root" "$MIRROR"
    tar -C "$tmp/root" -cf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf "$tmp"
  fi
  local work; work=$(mktemp -d "$BAY_IMAGE_CACHE/rootfs.XXXX")
  local root="$work/root"
  mkdir -p "$root"
  # shellcheck disable=SC2064
  trap "umount -l '$root/proc' 2>/dev/null || true; umount -l '$root/dev/pts' 2>/dev/null || true; rm -rf '$work'" RETURN
  tar -C "$root" -xf "$base"
  {
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -n "$SECURITY" ] && echo "deb $SECURITY $SUITE-security main"
  } > "$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # Keep images lean: no docs, man pages or translations.
  cat > "$root/etc/dpkg/dpkg.cfg.d/01-bay-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
CFG
  mount -t proc proc "$root/proc"
  local pkgs; pkgs=$(grep -v '^\s*#' "$pkgfile" | xargs)
  step "apt-get install ($(echo "$pkgs" | wc -w) packages) into $tag"
  run_logged "$BAY_IMAGE_CACHE/apt.log" chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $pkgs && apt-get clean"
  step "configure $tag"
  cp "$setup" "$root/tmp/setup.sh"
  run_logged "$BAY_IMAGE_CACHE/setup.log" chroot "$root" env LC_ALL=C sh /tmp/setup.sh
  rm -f "$root/tmp/setup.sh"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/etc/resolv.conf"
  umount -l "$root/proc"
  step "docker import $tag ($(du -sh "$root" | cut -f1))"
  run_logged "$BAY_IMAGE_CACHE/import.log" sh -c "tar -C '$root' -c . | docker import - '$tag'"
  # Older root filesystems of the same flavour are no longer referenced.
  docker images --format '{{.Repository}}:{{.Tag}}' "${tag%%:*}" | grep -vx "$tag" | xargs -r docker rmi >/dev/null 2>&1 || true
}

# build_final_image TAG ROOTFS_TAG FILES_DIR CHANGES_FILE HASH
# Copies FILES_DIR onto ROOTFS_TAG and commits it as TAG with the Dockerfile
# instructions (ENV, USER, ENTRYPOINT, ...) of CHANGES_FILE, unless TAG already
# carries HASH. One container create + one commit: much faster than a legacy
# `docker build` on fuse-overlayfs, which runs a container per instruction.
build_final_image() {
  local tag="$1" rootfs="$2" files="$3" changes="$4" hash="$5"
  if [ "$(image_label "$tag" bay.build-hash)" = "$hash" ]; then
    info "$tag is up to date ($hash)"; return
  fi
  step "assemble $tag"
  local start=$SECONDS cid args=()
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    args+=(--change "$line")
  done < "$changes"
  args+=(--change "LABEL bay.build-hash=$hash")
  cid=$(docker create "$rootfs" /bin/true)
  # shellcheck disable=SC2064
  trap "docker rm -f '$cid' >/dev/null 2>&1 || true" RETURN
  docker cp "$files/." "$cid:/" >/dev/null
  docker commit "${args[@]}" "$cid" "$tag" >/dev/null
  # Earlier builds of this image are now untagged; drop those no container uses.
  docker image prune -f --filter "label=bay.build-hash" >/dev/null 2>&1 || true
  info "done in $((SECONDS - start))s"
}
