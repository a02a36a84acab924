#!/usr/bin/env bash
# Bay's Kubernetes driver against a real cluster: kind on this machine.
#
#   deploy/k8s/e2e-kind.sh            # create/reuse the cluster, test, clean up
#   KEEP_CLUSTER=1 deploy/k8s/e2e-kind.sh   # leave the kind cluster running
#
# NOT run by ./dev test or CI (no cluster there), and not run on the machine
# it was written on (no kind, no cluster): treat a first failure as possibly
# the script's. The driver's unit tests run against kube's mock service layer
# instead. This script is for a developer machine and ASSUMES:
#   - Linux, with Docker, `kind` (>= 0.20), `kubectl`, `curl`, `python3`, and
#     sudo for one `ip route` (the host must route to the Pod CIDR: Bay runs
#     on the host and calls runtimes on their Pod IPs, as it does in-cluster);
#   - the runtime images ship:latest and gull:latest in the local Docker engine
#     (`./dev up` or images/build.sh builds them) — they are loaded into the
#     node with `kind load docker-image`, and the profiles use
#     imagePullPolicy Never, so no registry is needed for them (kind itself
#     pulls its node image the first time);
#   - the plugins in target/plugins (`./dev plugins`);
#   - a single-node kind cluster (the route goes to that one node).
#
# What it runs: two local Bays (driver.type k8s, the kind kubeconfig,
# namespace bay-e2e, SQLite) — a strict one and an anonymous one — then API
# smoke checks with curl, then, if target/sdk-venv exists (tests/sdk/run.sh
# creates it), the Shipyard Neo SDK suite against them. `cargo test --test
# e2e` is not used: its harness (tests/lib.rs) starts Bay in-process with a
# fixed Docker driver config and inspects containers with the docker CLI.
#
# Environment: CLUSTER (bay-e2e), NAMESPACE (bay-e2e), KEEP_CLUSTER=1,
# SDK=0 (skip the SDK suite), extra args are passed to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-bay-e2e}"
NAMESPACE="${NAMESPACE:-bay-e2e}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bay-kind-XXXXXX")"
KUBECONFIG_FILE="$WORK/kubeconfig"
KEY="sk-kind-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
PIDS=()
ROUTE=""
CREATED_CLUSTER=0

log() { printf '\033[1;34m[kind-e2e]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[kind-e2e] FAIL:\033[0m %s\n' "$*" >&2; exit 1; }
k() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

for tool in docker kind kubectl curl python3 ip sudo cargo; do
  command -v "$tool" >/dev/null || fail "$tool is needed (see the header of this script)"
done
for image in ship:latest gull:latest; do
  docker image inspect "$image" >/dev/null 2>&1 || fail "image $image is missing (./dev up builds it)"
done
[ -f "$ROOT/target/plugins/ship-adapter/plugin.toml" ] || fail "no plugins in target/plugins (./dev plugins)"

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -f "$KUBECONFIG_FILE" ]; then
    k delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  [ -z "$ROUTE" ] || sudo ip route del "$ROUTE" 2>/dev/null || true
  if [ "$CREATED_CLUSTER" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  if [ "$rc" = 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ cluster
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
  CREATED_CLUSTER=1
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
log "loading ship:latest and gull:latest into the node"
kind load docker-image ship:latest gull:latest --name "$CLUSTER"
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null

# Route the Pod CIDR through the node container, so Bay on the host reaches Pod IPs.
NODE="$CLUSTER-control-plane"
NODE_IP="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$NODE")"
POD_CIDR="$(k get node "$NODE" -o jsonpath='{.spec.podCIDR}')"
[ -n "$NODE_IP" ] && [ -n "$POD_CIDR" ] || fail "cannot find the node IP / Pod CIDR of $NODE"
log "route $POD_CIDR via $NODE_IP (sudo)"
sudo ip route replace "$POD_CIDR" via "$NODE_IP"
ROUTE="$POD_CIDR"

# --------------------------------------------------------------------- Bays
log "building Bay"
(cd "$ROOT" && cargo build --all-targets)
BAY_BIN="$ROOT/target/debug/bay"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_bay NAME ANONYMOUS → sets BASE
start_bay() {
  local name="$1" anonymous="$2" port dir
  port="$(free_port)"
  dir="$WORK/$name"
  mkdir -p "$dir"
  cat > "$dir/config.yaml" <<EOF
server: { host: 127.0.0.1, port: $port }
database: { url: "sqlite://$dir/bay.db" }
driver:
  type: k8s
  # kind-loaded images: never pull.
  image_pull_policy: never
  k8s:
    namespace: $NAMESPACE
    kubeconfig: "$KUBECONFIG_FILE"
    default_storage_size: 1g
    pod_startup_timeout: 180
security: { api_key: "$KEY", allow_anonymous: $anonymous }
gc: { instance_id: bay-kind-$name, interval_seconds: 3600 }
profiles_dir: "$ROOT/profiles"
plugins: { dir: "$ROOT/target/plugins", cache_dir: "$ROOT/target/kind-component-cache" }
EOF
  local unset_args=() v
  for v in $(env | grep -o '^BAY_[A-Za-z0-9_]*' || true); do unset_args+=(-u "$v"); done
  (cd "$dir" && exec env "${unset_args[@]}" BAY_DATA_DIR="$dir" NO_COLOR=1 RUST_LOG="${RUST_LOG:-info}" \
     "$BAY_BIN" serve --config "$dir/config.yaml" >"$dir/bay.log" 2>&1) &
  PIDS+=("$!")
  BASE="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    curl -fsS "$BASE/health" >/dev/null 2>&1 && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -n 40 "$dir/bay.log" >&2; fail "Bay ($name) exited"; }
    sleep 0.2
  done
  fail "Bay ($name) did not answer /health"
}
start_bay strict false; STRICT="$BASE"
start_bay anon true; ANON="$BASE"
log "Bays on $STRICT (strict) and $ANON (anonymous), namespace $NAMESPACE"

# ------------------------------------------------------------ smoke checks
api() {  # api METHOD PATH [JSON] → body on stdout; fails on HTTP >= 400
  local method="$1" path="$2" body="${3:-}"
  curl -fsS -X "$method" "$STRICT$path" -H "Authorization: Bearer $KEY" \
       -H 'content-type: application/json' ${body:+-d "$body"} --max-time 600
}
json() { python3 -c 'import json, sys; v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"; }

log "python-default: create, python, shell, files"
SB="$(api POST /v1/sandboxes '{"profile": "python-default"}' | json id)"
api POST "/v1/sandboxes/$SB/python/exec" '{"code": "x = 41"}' >/dev/null
OUT="$(api POST "/v1/sandboxes/$SB/python/exec" '{"code": "print(x + 1)"}' | json output)"
[ "$(echo "$OUT" | tr -d '[:space:]')" = 42 ] || fail "python: expected 42, got $OUT"
OUT="$(api POST "/v1/sandboxes/$SB/shell/exec" '{"command": "echo hi > /workspace/hi.txt && cat /workspace/hi.txt"}' | json output)"
echo "$OUT" | grep -q hi || fail "shell: $OUT"
POD="$(k -n "$NAMESPACE" get pods -l "bay.sandbox_id=$SB" -o jsonpath='{.items[0].metadata.name}')"
[ -n "$POD" ] || fail "no Pod labelled bay.sandbox_id=$SB"
[ "$(k -n "$NAMESPACE" get pod "$POD" -o jsonpath='{.spec.containers[*].name}')" = ship ] || fail "Pod $POD: unexpected containers"
[ "$(k -n "$NAMESPACE" get pvc -l bay.instance_id=bay-kind-strict -o name | wc -l)" -ge 1 ] || fail "no cargo PVC"
curl -fsS "$STRICT/v1/sandboxes/$SB/filesystem/download?path=hi.txt" -H "Authorization: Bearer $KEY" | grep -q hi \
  || fail "download"

log "stop: the Pod goes, the files stay"
api POST "/v1/sandboxes/$SB/stop" >/dev/null
k -n "$NAMESPACE" wait --for=delete "pod/$POD" --timeout=60s >/dev/null 2>&1 || true
k -n "$NAMESPACE" get pod "$POD" >/dev/null 2>&1 && fail "Pod $POD still exists after stop"
OUT="$(api POST "/v1/sandboxes/$SB/shell/exec" '{"command": "cat /workspace/hi.txt"}' | json output)"
echo "$OUT" | grep -q hi || fail "files lost across stop: $OUT"

log "browser-python: one Pod, two containers, shared /workspace"
BR="$(api POST /v1/sandboxes '{"profile": "browser-python"}' | json id)"
api POST "/v1/sandboxes/$BR/python/exec" '{"code": "open(\"/workspace/page.html\", \"w\").write(\"<title>kind</title>\")"}' >/dev/null
api POST "/v1/sandboxes/$BR/browser/exec" '{"cmd": "open file:///workspace/page.html"}' >/dev/null
OUT="$(api POST "/v1/sandboxes/$BR/browser/exec" '{"cmd": "get title"}')"
echo "$OUT" | grep -q kind || fail "browser did not see the shared file: $OUT"
BPOD="$(k -n "$NAMESPACE" get pods -l "bay.sandbox_id=$BR" -o jsonpath='{.items[0].metadata.name}')"
[ "$(k -n "$NAMESPACE" get pod "$BPOD" -o jsonpath='{.spec.containers[*].name}')" = "ship browser" ] \
  || fail "Pod $BPOD: expected containers 'ship browser'"

log "delete: Pods and PVCs go"
api DELETE "/v1/sandboxes/$SB" >/dev/null
api DELETE "/v1/sandboxes/$BR" >/dev/null
for _ in $(seq 1 60); do
  left="$(k -n "$NAMESPACE" get pods,pvc -l bay.instance_id=bay-kind-strict -o name 2>/dev/null | wc -l)"
  [ "$left" = 0 ] && break
  sleep 1
done
[ "$left" = 0 ] || fail "left behind: $(k -n "$NAMESPACE" get pods,pvc -l bay.instance_id=bay-kind-strict -o name)"
log "smoke checks passed"

# ---------------------------------------------------------------- SDK suite
VENV="$ROOT/target/sdk-venv"
if [ "${SDK:-1}" != 0 ] && [ -x "$VENV/bin/python" ]; then
  log "Shipyard Neo SDK suite against the Kubernetes-backed Bays"
  (cd "$ROOT/tests/sdk" && env BAY_ENDPOINT="$STRICT" BAY_TOKEN="$KEY" BAY_ANON_ENDPOINT="$ANON" \
     PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -c pytest.ini \
     -o cache_dir="$ROOT/target/sdk-pytest-cache" "$@")
else
  log "SDK suite skipped (SDK=0, or no $VENV: run tests/sdk/run.sh once to create it)"
fi
log "done"
