#!/usr/bin/env bash
# MCP client suite: drives Bay's /mcp endpoint with the official MCP Python SDK
# (PyPI package `mcp`, pinned in requirements.txt) against a real Bay on the
# real Docker engine.
#
#   tests/mcp/run.sh <path-to-bay-binary> [pytest args...]
#
# It creates (or reuses) a virtualenv under target/mcp-venv, keyed by the hash
# of requirements.txt; starts one Bay on a free loopback port with an API key,
# anonymous access off and the repository's profiles (python-default,
# browser-python, …), in a temp dir of its own (SQLite database, BAY_DATA_DIR);
# runs pytest with BAY_ENDPOINT / BAY_TOKEN; and, whatever happens, stops Bay
# and removes the containers and volumes it labelled (bay.instance_id=bay-mcp).
# The exit code is pytest's.
#
# Environment: PYTHON (default python3, needs >= 3.10); BAY_MCP_KEEP_LOGS=1
# keeps the temp dir (Bay's log and database) after a passing run too (it is
# always kept after a failing one).
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
INSTANCE_ID=bay-mcp
KEY="sk-mcp-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

log() { printf '\033[1;34m[mcp]\033[0m %s\n' "$*" >&2; }

# ---------------------------------------------------------------- virtualenv
VENV="$ROOT/target/mcp-venv"
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
  local ids vols
  ids=$(docker ps -aq --filter "label=bay.instance_id=$INSTANCE_ID" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  vols=$(docker volume ls -q --filter "label=bay.instance_id=$INSTANCE_ID" 2>/dev/null || true)
  [ -z "$vols" ] || docker volume rm -f $vols >/dev/null 2>&1 || true
}

PID=""
TMP=""
RC=1
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$PID" ]; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  remove_labelled
  if [ -n "$TMP" ]; then
    if [ "$RC" != 0 ] || [ "${BAY_MCP_KEEP_LOGS:-}" = 1 ]; then log "Bay's log and database kept in $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$RC"
}
trap cleanup EXIT
trap 'RC=130; exit 130' INT TERM

remove_labelled

# ------------------------------------------------------------------ start Bay
PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/$INSTANCE_ID-XXXXXX")"
cat > "$TMP/config.yaml" <<EOF
server: { host: 127.0.0.1, port: $PORT }
database: { url: "sqlite://$TMP/bay.db" }
driver: { docker: { connect_mode: host_port, host_address: 127.0.0.1 } }
security: { api_key: "$KEY", allow_anonymous: false }
gc: { instance_id: $INSTANCE_ID, interval_seconds: 3600 }
profiles_dir: "$ROOT/profiles"
plugins: { dir: "$ROOT/target/plugins", cache_dir: "$ROOT/target/mcp-component-cache" }
EOF
# Only this config counts: no BAY_* variable of the caller leaks in.
unset_args=()
for v in $(env | grep -o '^BAY_[A-Za-z0-9_]*' || true); do unset_args+=(-u "$v"); done
(cd "$TMP" && exec env "${unset_args[@]}" BAY_DATA_DIR="$TMP" RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
   "$BAY_BIN" serve --config "$TMP/config.yaml" >"$TMP/bay.log" 2>&1) &
PID=$!
BASE="http://127.0.0.1:$PORT"
for i in $(seq 1 600); do
  if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$BASE/health" 2>/dev/null; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then log "Bay exited before answering /health:"; tail -n 40 "$TMP/bay.log" >&2; exit 1; fi
  [ "$i" = 600 ] && { log "Bay did not answer $BASE/health within 120 s"; exit 1; }
  sleep 0.2
done
log "Bay on $BASE (MCP endpoint $BASE/mcp)"

# --------------------------------------------------------------------- pytest
set +e
(cd "$SUITE" && env BAY_ENDPOINT="$BASE" BAY_TOKEN="$KEY" PYTHONDONTWRITEBYTECODE=1 \
   "$VENV/bin/python" -m pytest -c "$SUITE/pytest.ini" -o cache_dir="$ROOT/target/mcp-pytest-cache" "$@")
RC=$?
set -e
exit "$RC"
