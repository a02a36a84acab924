#!/usr/bin/env bash
# Shipyard Neo SDK compatibility suite: drives the published Python SDK
# (shipyard-neo-sdk, pinned in requirements.txt) against a real Bay on the real
# Docker engine.
#
#   tests/sdk/run.sh <path-to-bay-binary> [pytest args...]
#
# It creates (or reuses) a virtualenv under target/sdk-venv, keyed by the hash
# of requirements.txt; starts two Bays on free loopback ports, each with its own
# temp dir (SQLite database, BAY_DATA_DIR) and config:
#   - "strict": an API key, anonymous access off (production settings) — the
#     one the SDK talks to (BAY_ENDPOINT / BAY_TOKEN);
#   - "anon":   the same key plus anonymous access (owner from X-Owner) — used
#     only for owner-isolation tests (BAY_ANON_ENDPOINT).
# Then it runs pytest and, whatever happens, stops both Bays and removes the
# containers and volumes they labelled (bay.instance_id=bay-sdk / bay-sdk-anon).
# The exit code is pytest's.
#
# Environment: PYTHON (default python3, needs >= 3.10); BAY_SDK_KEEP_LOGS=1
# keeps the temp dirs (Bay's logs and databases) after a passing run too (they
# are always kept after a failing one).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <path-to-bay-binary> [pytest args...]" >&2
  exit 2
fi
BAY_BIN="$1"; shift
[ -x "$BAY_BIN" ] || { echo "error: $BAY_BIN is not an executable" >&2; exit 2; }
BAY_BIN="$(cd "$(dirname "$BAY_BIN")" && pwd)/$(basename "$BAY_BIN")"

SUITE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SUITE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
STRICT_ID=bay-sdk
ANON_ID=bay-sdk-anon
KEY="sk-sdk-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

log() { printf '\033[1;34m[sdk]\033[0m %s\n' "$*" >&2; }

# ---------------------------------------------------------------- virtualenv
VENV="$ROOT/target/sdk-venv"
want="$( (cat "$SUITE/requirements.txt"; "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-64)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
  log "creating $VENV"
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || { echo "error: $PYTHON is older than 3.10" >&2; exit 2; }
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$SUITE/requirements.txt"
  echo "$want" > "$VENV/.requirements.sha256"
fi

# ------------------------------------------------------------------- cleanup
remove_labelled() {
  local id ids vols
  for id in "$STRICT_ID" "$ANON_ID"; do
    ids=$(docker ps -aq --filter "label=bay.instance_id=$id" 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    vols=$(docker volume ls -q --filter "label=bay.instance_id=$id" 2>/dev/null || true)
    [ -z "$vols" ] || docker volume rm -f $vols >/dev/null 2>&1 || true
  done
}

PIDS=()
TMPS=()
stop_bays() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

RC=1
cleanup() {
  trap - EXIT INT TERM
  stop_bays
  remove_labelled
  local t
  for t in "${TMPS[@]}"; do
    if [ "$RC" != 0 ] || [ "${BAY_SDK_KEEP_LOGS:-}" = 1 ]; then
      log "Bay's log and database kept in $t"
    else
      rm -rf "$t"
    fi
  done
  exit "$RC"
}
trap cleanup EXIT
trap 'RC=130; exit 130' INT TERM

remove_labelled

# ---------------------------------------------------------------- start Bays
free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_bay INSTANCE_ID ANONYMOUS → sets BASE (and appends to PIDS/TMPS)
start_bay() {
  local id="$1" anonymous="$2" port tmp
  port="$(free_port)"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/$id-XXXXXX")"
  TMPS+=("$tmp")
  cat > "$tmp/config.yaml" <<EOF
server: { host: 127.0.0.1, port: $port }
database: { url: "sqlite://$tmp/bay.db" }
driver: { docker: { connect_mode: host_port, host_address: 127.0.0.1 } }
security: { api_key: "$KEY", allow_anonymous: $anonymous }
# The periodic GC stays out of the way of the TTL tests (a sandbox that has
# just expired must still be there for extend_ttl to answer sandbox_expired).
gc: { instance_id: $id, interval_seconds: 3600 }
# The repository's profiles, plus one without python for capability checks.
profiles_dir: "$ROOT/profiles"
profiles:
  - id: sdk-no-python
    description: "SDK suite: shell and files only"
    image: "ship:latest"
    runtime_type: ship
    runtime_port: 8123
    resources: { cpus: 0.5, memory: 512m }
    capabilities: [filesystem, shell]
plugins: { dir: "$ROOT/target/plugins", cache_dir: "$ROOT/target/sdk-component-cache" }
EOF
  # Only this config counts: no BAY_* variable of the caller leaks in.
  local unset_args=() v
  for v in $(env | grep -o '^BAY_[A-Za-z0-9_]*' || true); do unset_args+=(-u "$v"); done
  (cd "$tmp" && exec env "${unset_args[@]}" BAY_DATA_DIR="$tmp" RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
     "$BAY_BIN" serve --config "$tmp/config.yaml" >"$tmp/bay.log" 2>&1) &
  PIDS+=("$!")
  BASE="http://127.0.0.1:$port"
}

wait_healthy() {
  local base="$1" pid="$2" tmp="$3" i
  for i in $(seq 1 600); do
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
         "$base/health" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Bay exited before answering /health:"; tail -n 40 "$tmp/bay.log" >&2; return 1
    fi
    sleep 0.2
  done
  log "Bay did not answer $base/health within 120 s"; return 1
}

start_bay "$STRICT_ID" false; STRICT_BASE="$BASE"
start_bay "$ANON_ID" true; ANON_BASE="$BASE"
wait_healthy "$STRICT_BASE" "${PIDS[0]}" "${TMPS[0]}"
wait_healthy "$ANON_BASE" "${PIDS[1]}" "${TMPS[1]}"
log "Bay (strict) on $STRICT_BASE, Bay (anonymous) on $ANON_BASE"

# --------------------------------------------------------------------- pytest
set +e
(cd "$SUITE" && env BAY_ENDPOINT="$STRICT_BASE" BAY_TOKEN="$KEY" BAY_ANON_ENDPOINT="$ANON_BASE" \
   PYTHONDONTWRITEBYTECODE=1 \
   "$VENV/bin/python" -m pytest -c "$SUITE/pytest.ini" -o cache_dir="$ROOT/target/sdk-pytest-cache" "$@")
RC=$?
set -e
exit "$RC"
