#!/usr/bin/env bash
# Validates the deployment files offline — no cluster, no Docker engine, no
# network except the apt mirror (only if kubectl must be installed); the only
# address anything could dial is 127.0.0.1:1 (the dummy kubeconfig).
#
#   tests/deploy_manifests.sh        (BAY_BIN=path/to/bay to pick the binary)
#
# 1. deploy/k8s/*.yaml through kubectl's client-side decoder. `kubectl apply
#    --dry-run=client` cannot do it offline: it still asks the API server for
#    its resource list (REST mapping) and fails with "unable to recognize".
#    `kubectl set env --local --list -f FILE` decodes every document of FILE
#    into kubectl's typed scheme without a server, so it rejects an unknown
#    kind or apiVersion and a value of the wrong type (`replicas: "two"`),
#    with kubectl 1.20 (Debian's kubernetes-client) and newer alike. It does
#    not reject unknown field names or do server-side validation (required
#    fields, selectors); step 2 covers what Bay relies on. A self-test first
#    proves the check fails on broken manifests.
# 2. Consistency checks in Python (PyYAML; skipped with a message if absent):
#    selectors match the Pod template, the ServiceAccount/Role/RoleBinding and
#    ConfigMap names line up, readiness probes /ready and liveness /health on 8114, the Role has exactly
#    the verbs the driver needs, the NetworkPolicy admits only Bay's Pods to
#    sandbox Pods, deploy/docker/compose.yaml parses and mounts
#    the Docker socket read-write with host networking.
# 3. The ConfigMap's embedded config.yaml and deploy/docker/config.yaml load
#    with `bay config` (the real parser and validator, environment overrides
#    as the Deployment sets them), without unused keys.
# Exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S="$ROOT/deploy/k8s"
DOCKER="$ROOT/deploy/docker"
BAY_BIN="${BAY_BIN:-$ROOT/target/debug/bay}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bay-manifests-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
FAILED=0

ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }

# ------------------------------------------------------------------ kubectl
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: installing Debian's kubernetes-client"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y kubernetes-client >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y kubernetes-client >/dev/null; } \
    || { echo "FAIL  cannot install kubernetes-client"; exit 1; }
fi
echo "kubectl: $(kubectl version --client 2>/dev/null | head -n 1)"

# A kubeconfig that points nowhere: nothing below needs a server, and should
# anything try, it reaches only 127.0.0.1:1.
cat > "$WORK/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: offline, user: {token: none}}]
contexts: [{name: offline, context: {cluster: offline, user: offline}}]
current-context: offline
EOF
export KUBECONFIG="$WORK/kubeconfig"

decode() { kubectl set env --local --list -f "$1" >"$WORK/decode.out" 2>&1; }

# Self-test: the check must reject broken manifests, or it proves nothing.
cat > "$WORK/bad-replicas.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken, namespace: bay}
spec:
  replicas: "two"
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec: {containers: [{name: c, image: "bay:latest"}]}
EOF
printf 'apiVersion: v1\nkind: NoSuchKind\nmetadata: {name: broken}\n' > "$WORK/bad-kind.yaml"
# A broken second document in an otherwise valid file.
{ cat "$K8S/00-namespace.yaml"; printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: "http"}]}\n'; } \
  > "$WORK/bad-second-doc.yaml"
for broken in bad-replicas bad-kind bad-second-doc; do
  if decode "$WORK/$broken.yaml"; then
    bad "self-test: kubectl accepted $broken.yaml (the decode check is ineffective)"
  else
    ok "self-test: kubectl rejects $broken.yaml ($(head -c 100 "$WORK/decode.out" | tr '\n' ' '))"
  fi
done

for f in "$K8S"/*.yaml; do
  if decode "$f"; then ok "kubectl decodes $(basename "$f")"; else bad "kubectl: $(basename "$f"): $(cat "$WORK/decode.out")"; fi
done

# --------------------------------------------------------- consistency (py)
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - "$K8S" "$DOCKER" "$WORK" <<'PY' || FAILED=$((FAILED + 1))
import glob, os, sys
import yaml

k8s, docker, work = sys.argv[1:4]
errors = []
def check(cond, msg):
    if cond:
        print(f"ok    {msg}")
    else:
        print(f"FAIL  {msg}")
        errors.append(msg)

docs = {}
for path in sorted(glob.glob(os.path.join(k8s, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        name = doc.get("metadata", {}).get("name")
        check(doc.get("apiVersion") and doc.get("kind") and name, f"{os.path.basename(path)}: {doc.get('kind')}/{name} has apiVersion, kind, name")
        if doc.get("kind") != "Namespace":
            check(doc["metadata"].get("namespace") == "bay", f"{doc['kind']}/{name} is in namespace bay")
        docs[(doc["kind"], name)] = doc

def get(kind, name):
    doc = docs.get((kind, name))
    check(doc is not None, f"{kind}/{name} exists")
    return doc or {}

dep = get("Deployment", "bay")
svc = get("Service", "bay")
cm = get("ConfigMap", "bay-config")
role = get("Role", "bay")
rb = get("RoleBinding", "bay")
get("ServiceAccount", "bay")
get("Namespace", "bay")

spec = dep.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
tmpl_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
check(spec.get("replicas") == 2, "Deployment runs 2 replicas")
check(set(spec.get("selector", {}).get("matchLabels", {}).items()) <= set(tmpl_labels.items()), "Deployment selector matches its Pod template")
check(pod.get("serviceAccountName") == "bay", "Deployment uses ServiceAccount bay")
check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "Bay runs as non-root")
c = (pod.get("containers") or [{}])[0]
check(any(p.get("containerPort") == 8114 for p in c.get("ports", [])), "Bay container exposes 8114")
for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
    http = c.get(probe, {}).get("httpGet", {})
    check(http.get("path") == path and http.get("port") == 8114, f"{probe} on {path}:8114")
check(c.get("resources", {}).get("limits") and c.get("resources", {}).get("requests"), "Bay container has resources")
env = {e["name"]: e for e in c.get("env", [])}
for var in ("BAY_DATABASE__URL", "BAY_API_KEY"):
    check(env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "bay", f"{var} comes from Secret bay")
check("BAY_GC__INSTANCE_ID" not in env, "all replicas share gc.instance_id (no per-Pod override)")
cm_volumes = [v for v in pod.get("volumes", []) if "configMap" in v]
check(any(v["configMap"].get("name") == "bay-config" for v in cm_volumes), "Deployment mounts ConfigMap bay-config")
mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
check(any(mounts.get(v["name"]) == "/etc/bay" for v in cm_volumes), "config mounted at /etc/bay")
check(c.get("args", [])[-1:] == ["/etc/bay/config.yaml"], "Bay is started with /etc/bay/config.yaml")

s = svc.get("spec", {})
check(s.get("type", "ClusterIP") == "ClusterIP", "Service is ClusterIP")
check(s.get("selector") and set(s["selector"].items()) <= set(tmpl_labels.items()), "Service selects Bay's Pods")
check(any(p.get("port") == 8114 and p.get("targetPort") in (8114, "http") for p in s.get("ports", [])), "Service port 8114 → 8114")

want = {("pods", v) for v in ("create", "delete", "get", "list", "watch")} | {("pods/log", "get")} \
     | {("persistentvolumeclaims", v) for v in ("create", "delete", "get", "list", "watch")}
have = {(r, v) for rule in role.get("rules", []) for r in rule.get("resources", []) for v in rule.get("verbs", [])
        if rule.get("apiGroups") == [""]}
check(have == want, f"Role grants exactly what the driver needs (extra: {sorted(have - want)}, missing: {sorted(want - have)})")
check(rb.get("roleRef", {}).get("kind") == "Role" and rb.get("roleRef", {}).get("name") == "bay", "RoleBinding binds Role bay")
check({"kind": "ServiceAccount", "name": "bay", "namespace": "bay"} in rb.get("subjects", []), "RoleBinding binds ServiceAccount bay")

text = cm.get("data", {}).get("config.yaml", "")
prefix = "bay"
try:
    config = yaml.safe_load(text)
    check(config["driver"]["type"] == "k8s", "ConfigMap config.yaml: driver.type k8s")
    check(config["driver"]["k8s"]["namespace"] == "bay", "ConfigMap config.yaml: driver.k8s.namespace bay")
    prefix = config["driver"]["k8s"].get("label_prefix", "bay")
    check({p["id"] for p in config.get("profiles", [])} >= {"python-default", "browser-python"}, "ConfigMap profiles")
    open(os.path.join(work, "k8s-config.yaml"), "w").write(text)
except Exception as e:
    check(False, f"ConfigMap config.yaml parses: {e}")

# Sandbox Pods (labelled `<label_prefix>.managed=true` by the driver) take
# ingress from Bay's Pods only.
np = get("NetworkPolicy", "bay-sandboxes")
np_spec = np.get("spec", {})
managed = f"{prefix}.managed"
check(np_spec.get("podSelector", {}).get("matchLabels") == {managed: "true"}, f"NetworkPolicy selects sandbox Pods ({managed}=true)")
check("Ingress" in np_spec.get("policyTypes", []), "NetworkPolicy restricts ingress")
sources = [p for rule in np_spec.get("ingress", []) for p in rule.get("from", [])]
bay_pods = [p for p in sources if p.get("podSelector", {}).get("matchLabels") and "namespaceSelector" not in p
            and set(p["podSelector"]["matchLabels"].items()) <= set(tmpl_labels.items())]
check(sources and bay_pods == sources, "NetworkPolicy admits Bay's Pods (the Deployment's template labels) and nothing else")
check(not set(np_spec.get("podSelector", {}).get("matchLabels", {}).items()) <= set(tmpl_labels.items()), "NetworkPolicy does not select Bay's own Pods")

try:
    compose = yaml.safe_load(open(os.path.join(docker, "compose.yaml")))
    bay = compose["services"]["bay"]
    check(bay.get("network_mode") == "host", "compose: network_mode host (runtimes publish on the host's 127.0.0.1)")
    vols = bay.get("volumes", [])
    check("/var/run/docker.sock:/var/run/docker.sock" in vols, "compose: Docker socket mounted read-write")
    conf = [v for v in vols if isinstance(v, str) and v.endswith(":/etc/bay/config.yaml:ro")]
    check(conf and os.path.isfile(os.path.join(docker, conf[0].split(":")[0])), "compose: config file mounted and present")
    check(any(str(v).split(":")[0] in compose.get("volumes", {}) for v in vols), "compose: data volume declared")
except Exception as e:
    check(False, f"compose.yaml parses: {e}")

sys.exit(1 if errors else 0)
PY
else
  echo "SKIP  consistency checks: python3 has no yaml module (apt-get install python3-yaml)"
  # bay config still needs the embedded config: cut it out without PyYAML.
  sed -n '/^  config.yaml: |$/,$p' "$K8S/02-configmap.yaml" | tail -n +2 | sed 's/^    //' > "$WORK/k8s-config.yaml"
fi

# --------------------------------------------------------------- bay config
bay_config() {  # bay_config FILE EXPECTED_DRIVER [ENV...]
  local file="$1" driver="$2"; shift 2
  if env -i PATH="$PATH" NO_COLOR=1 "$@" "$BAY_BIN" config --config "$file" >"$WORK/bay-config.out" 2>&1 \
     && grep -q "^  type: $driver\$" "$WORK/bay-config.out" \
     && ! grep -q "configuration key is not used" "$WORK/bay-config.out"; then
    ok "bay config loads $(basename "$file") (driver $driver, no unused keys)"
  else
    bad "bay config --config $file: $(grep -E 'not used|Error:|error:' "$WORK/bay-config.out" | head -5)"
  fi
}
if [ -x "$BAY_BIN" ]; then
  bay_config "$WORK/k8s-config.yaml" k8s BAY_DATABASE__URL=postgres://bay:secret@127.0.0.1:1/bay BAY_API_KEY=x
  bay_config "$DOCKER/config.yaml" docker
else
  bad "no Bay binary at $BAY_BIN (cargo build first, or set BAY_BIN)"
fi

if [ "$FAILED" -ne 0 ]; then
  echo "$FAILED check(s) failed"
  exit 1
fi
echo "all deployment checks passed"
