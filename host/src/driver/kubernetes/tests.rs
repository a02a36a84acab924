//! These tests run the driver against kube's MOCK service layer
//! (`tower_test::mock`): no Kubernetes API server can run on the machine
//! this was written on. Each test spawns a scripted API server that receives
//! the HTTP requests the real kube client builds, asserts their method, path,
//! query (label selectors, log parameters) and JSON body (the Pod and PVC
//! manifests), and answers with scripted JSON. What they prove: the requests
//! Bay sends and how it reads the answers. What they cannot prove: that a
//! real cluster admits and schedules the Pod (`deploy/k8s/e2e-kind.sh`).

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::names::{self, from_k8s_key, pod_name, selector, selector_value, to_k8s_key};
use super::pod::{parse_user, quantity_cpu, quantity_memory, tmpfs_size};
use super::volumes::storage_size;
use super::*;
use crate::driver::{ContainerSpec, ContainerState, Security};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const MI: u64 = 1024 * 1024;
const PODS: &str = "/api/v1/namespaces/bay/pods";

/// One request as the scripted API server saw it.
#[derive(Debug)]
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
}

fn config() -> K8sConfig {
    K8sConfig { namespace: "bay".into(), pod_startup_timeout: 5, ..Default::default() }
}

/// A driver whose client talks to the mock service, polling fast.
fn mock_driver(config: &K8sConfig, pull_policy: PullPolicy) -> (KubernetesDriver, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut driver = KubernetesDriver::with_client(kube::Client::new(service, "bay"), config, pull_policy);
    driver.poll_interval = Duration::from_millis(5);
    driver.delete_wait = Duration::from_secs(5);
    (driver, handle)
}

/// The next request (None once the driver and its client are dropped).
async fn next(handle: &mut ApiHandle) -> Option<(Seen, SendResponse<Response<Body>>)> {
    let (request, send) = handle.next_request().await?;
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.expect("request body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    Some((Seen { method: parts.method, path: parts.uri.path().to_owned(), query, body }, send))
}

async fn expect(handle: &mut ApiHandle, method: Method, path: &str) -> (Seen, SendResponse<Response<Body>>) {
    let (seen, send) = next(handle).await.unwrap_or_else(|| panic!("expected {method} {path}, got no request"));
    assert!(seen.method == method && seen.path == path, "expected {method} {path}, got {} {}", seen.method, seen.path);
    (seen, send)
}

async fn expect_no_more(handle: &mut ApiHandle) {
    if let Some((seen, _)) = next(handle).await {
        panic!("unexpected request {} {}", seen.method, seen.path);
    }
}

fn reply(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    let response = Response::builder().status(code).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap();
    send.send_response(response);
}

fn reply_status(send: SendResponse<Response<Body>>, code: u16, reason: &str) {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("scripted {reason}"), "reason": reason, "code": code,
    });
    reply(send, code, &status);
}

/// Runs a scenario with a deadline, so a script mismatch fails instead of hanging.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("scenario timed out")
}

/// Profile defaults (`host/src/config/profiles.rs`).
fn hardened() -> Security {
    Security {
        read_only_rootfs: true,
        no_new_privileges: true,
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        pids_limit: 256,
        tmpfs: BTreeMap::from([
            ("/tmp".to_owned(), "rw,nosuid,nodev,size=512m,mode=1777".to_owned()),
            ("/var/tmp".to_owned(), "rw,nosuid,nodev,size=64m,mode=1777".to_owned()),
        ]),
        user: None,
    }
}

fn container(name: &str, image: &str, port: u16) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        env: vec![("PROFILE_VAR".into(), "from-profile".into()), ("BAY_PROFILE_ENV".into(), "PROFILE_VAR=from-profile".into())],
        labels: Labels::from([(labels::RUNTIME_TYPE.to_owned(), name.to_owned())]),
        cpus: 1.0,
        memory_bytes: 1024 * MI,
        security: hardened(),
        runtime_port: port,
    }
}

/// A session as `host/src/sandbox/session.rs` builds it.
fn session(id: &str, owner: &str, containers: Vec<ContainerSpec>) -> SessionSpec {
    let l = Labels::from(
        [
            (labels::MANAGED, "true"),
            (labels::OWNER, owner),
            (labels::SANDBOX_ID, "sandbox-1"),
            (labels::SESSION_ID, id),
            (labels::CARGO_ID, "ws-1"),
            (labels::PROFILE_ID, "browser-python"),
            (labels::INSTANCE_ID, "bay-test"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    SessionSpec { session_id: id.into(), labels: l, volume: "bay-cargo-ws-1".into(), mount_path: "/workspace".into(), containers }
}

/// `browser-python`: Ship and Gull, Gull with a user and an added capability.
fn browser_python(id: &str, owner: &str) -> SessionSpec {
    let mut browser = container("browser", "gull:latest", 8115);
    browser.cpus = 0.5;
    browser.memory_bytes = 512 * MI;
    browser.security.user = Some("1000:1000".into());
    browser.security.cap_add = vec!["CAP_SYS_ADMIN".into()];
    session(id, owner, vec![container("ship", "ship:latest", 8123), browser])
}

fn container_status(name: &str, state: Value) -> Value {
    json!({ "name": name, "image": format!("{name}:latest"), "imageID": "", "ready": false, "restartCount": 0, "state": state })
}

/// A Pod status: `phase`, an IP, and each container's state.
fn status(phase: &str, ip: Option<&str>, containers: &[(&str, Value)]) -> Value {
    let mut s = json!({ "phase": phase, "containerStatuses": containers.iter().map(|(n, st)| container_status(n, st.clone())).collect::<Vec<_>>() });
    if let Some(ip) = ip {
        s["podIP"] = json!(ip);
    }
    s
}

fn running_state() -> Value {
    json!({ "running": { "startedAt": "2026-01-02T03:00:00Z" } })
}

fn pending(names: &[&str]) -> Value {
    let waiting = json!({ "waiting": { "reason": "ContainerCreating" } });
    status("Pending", None, &names.iter().map(|n| (*n, waiting.clone())).collect::<Vec<_>>())
}

fn running(ip: &str, names: &[&str]) -> Value {
    status("Running", Some(ip), &names.iter().map(|n| (*n, running_state())).collect::<Vec<_>>())
}

/// The posted manifest as the API server echoes it back, with a status.
fn with_status(mut object: Value, status: Value) -> Value {
    object["metadata"]["namespace"] = json!("bay");
    object["metadata"]["uid"] = json!("uid-1");
    object["status"] = status;
    object
}

fn pod_list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items })
}

fn env_of(container: &Value) -> BTreeMap<String, String> {
    container["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].as_str().unwrap().to_owned())).collect()
}

// ---------------------------------------------------------------------------
// Pure functions

#[test]
fn quantities_use_kubernetes_units() {
    assert_eq!(quantity_cpu(0.5).0, "500m");
    assert_eq!(quantity_cpu(1.0).0, "1");
    assert_eq!(quantity_cpu(2.0).0, "2");
    assert_eq!(quantity_cpu(0.25).0, "250m");
    assert_eq!(quantity_cpu(0.0001).0, "1m");
    assert_eq!(quantity_memory(512 * MI).0, "512Mi");
    assert_eq!(quantity_memory(2048 * MI).0, "2048Mi");
    assert_eq!(quantity_memory(1000).0, "1000");
    assert_eq!(storage_size("1Gi").unwrap(), "1Gi");
    assert_eq!(storage_size("1g").unwrap(), "1Gi");
    assert_eq!(storage_size("512m").unwrap(), "512Mi");
    assert_eq!(storage_size("100k").unwrap(), "100Ki");
    assert_eq!(storage_size("2GB").unwrap(), "2Gi");
    assert_eq!(storage_size("500M").unwrap(), "500M");
    assert_eq!(storage_size("1073741824").unwrap(), "1073741824");
    assert!(storage_size("lots").is_err());
    assert!(storage_size("1x").is_err());
    assert_eq!(tmpfs_size("rw,nosuid,nodev,size=512m,mode=1777").unwrap().0, "512Mi");
    assert!(tmpfs_size("rw,mode=1777").is_none());
    assert_eq!(parse_user(Some("1000:2000")), (Some(1000), Some(2000)));
    assert_eq!(parse_user(Some("1000")), (Some(1000), None));
    assert_eq!(parse_user(Some("nobody")), (None, None));
}

/// Pod names are DNS-1123 labels derived from the session id alone; label
/// keys follow the prefix; values Kubernetes rejects become digests that
/// selectors reproduce, with the original read back from the annotation.
#[test]
fn names_and_labels_are_valid_for_kubernetes() {
    assert_eq!(pod_name("sess-0123456789ab"), "bay-sess-0123456789ab");
    let odd = pod_name("Sess_ÄB/x");
    assert!(names::is_dns_label(&odd) && odd.starts_with("bay-sess--b-x-"), "{odd}");
    assert_ne!(pod_name("Sess_ÄB/x"), pod_name("Sess_ÖB/x"), "distinct ids, distinct Pods");
    let long = pod_name(&"a".repeat(100));
    assert!(names::is_dns_label(&long) && long.len() == 63, "{long}");

    assert_eq!(to_k8s_key("bay", "bay.sandbox_id"), "bay.sandbox_id");
    assert_eq!(to_k8s_key("acme", "bay.sandbox_id"), "acme.sandbox_id");
    assert_eq!(to_k8s_key("example.com/bay", "bay.session_id"), "example.com/bay.session_id");
    assert_eq!(to_k8s_key("acme", "app"), "app");
    assert_eq!(from_k8s_key("acme", "acme.sandbox_id"), "bay.sandbox_id");
    assert_eq!(from_k8s_key("acme", "acmex.y"), "acmex.y");
    assert!(names::is_label_key("example.com/bay.session_id"));
    assert!(!names::is_label_key("bay org.session_id"));

    assert_eq!(selector_value("sandbox-1"), "sandbox-1");
    let digest = selector_value("alice@example.com");
    assert!(digest.starts_with("x-") && digest.len() == 42 && names::is_label_value(&digest), "{digest}");
    let l = Labels::from([("bay.owner".to_owned(), "alice@example.com".to_owned()), ("bay.managed".to_owned(), "true".to_owned())]);
    let (k8s, annotations) = names::to_k8s("acme", &l).unwrap();
    assert_eq!(k8s["acme.owner"], digest);
    assert_eq!(annotations, BTreeMap::from([("acme.owner".to_owned(), "alice@example.com".to_owned())]));
    assert_eq!(names::from_k8s("acme", Some(&k8s), Some(&annotations)), l);
    assert_eq!(selector("acme", &l, &["bay.session_id"]), format!("acme.managed=true,acme.owner={digest},acme.session_id"));
    assert!(names::to_k8s("bad prefix", &l).is_err(), "an invalid key is an error, not a silent rename");
}

/// Specs a Pod cannot hold fail before any request: two runtimes on one
/// port (the containers share localhost), a container name that is not a
/// DNS label.
#[tokio::test]
async fn invalid_sessions_fail_before_any_request() {
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let same_port = session("sess-1", "default", vec![container("ship", "ship:latest", 8123), container("other", "ship:latest", 8123)]);
    let bad_name = session("sess-1", "default", vec![container("Ship_1", "ship:latest", 8123)]);
    let (a, b) = within(async { (driver.launch_session(&same_port).await, driver.launch_session(&bad_name).await) }).await;
    assert!(matches!(&a, Err(DriverError::Engine(m)) if m.contains("share one network namespace")), "{a:?}");
    assert!(matches!(&b, Err(DriverError::Engine(m)) if m.contains("\"Ship_1\"")), "{b:?}");
    drop(driver);
    within(expect_no_more(&mut api)).await;
}

// ---------------------------------------------------------------------------
// Launch

/// A `browser-python` session is one Pod holding both containers: created
/// once, polled until it runs, each runtime on the Pod IP at its port, ids
/// `<pod>/<container>`. The Pod spec carries everything asserted below.
#[tokio::test]
async fn launch_creates_one_pod_with_every_container() {
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &with_status(post.body.clone(), pending(&["ship", "browser"])));
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        reply(send, 200, &with_status(post.body.clone(), pending(&["ship", "browser"])));
        // Running, but Gull not yet: keep polling.
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        let half = status("Running", Some("10.0.0.7"), &[("ship", running_state()), ("browser", json!({ "waiting": {} }))]);
        reply(send, 200, &with_status(post.body.clone(), half));
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        reply(send, 200, &with_status(post.body.clone(), running("10.0.0.7", &["ship", "browser"])));
        expect_no_more(&mut api).await;
        post.body
    });
    let launched = within(driver.launch_session(&browser_python("sess-1", "alice@example.com"))).await.unwrap();
    drop(driver);
    let pod = within(server).await.unwrap();

    assert_eq!(launched.len(), 2);
    assert_eq!(
        (launched[0].name.as_str(), launched[0].id.as_str(), launched[0].endpoint.as_str()),
        ("ship", "bay-sess-1/ship", "http://10.0.0.7:8123")
    );
    assert_eq!(
        (launched[1].name.as_str(), launched[1].id.as_str(), launched[1].endpoint.as_str()),
        ("browser", "bay-sess-1/browser", "http://10.0.0.7:8115")
    );

    // Named after the session, with the session's labels; an owner that is
    // no label value is a digest, the original in an annotation.
    let meta = &pod["metadata"];
    assert_eq!(meta["name"], "bay-sess-1");
    let pod_labels = &meta["labels"];
    assert_eq!(pod_labels["bay.session_id"], "sess-1");
    assert_eq!(pod_labels["bay.sandbox_id"], "sandbox-1");
    assert_eq!(pod_labels["bay.managed"], "true");
    assert_eq!(pod_labels["bay.instance_id"], "bay-test");
    assert_eq!(pod_labels["bay.owner"], selector_value("alice@example.com"));
    assert!(pod_labels.get("bay.container_name").is_none(), "per-container labels stay off the Pod");
    assert_eq!(meta["annotations"]["bay.owner"], "alice@example.com");
    let own: Value = serde_json::from_str(meta["annotations"]["bay.container_labels"].as_str().unwrap()).unwrap();
    assert_eq!(own["browser"], json!({ "bay.container_name": "browser", "bay.runtime_port": "8115", "bay.runtime_type": "browser" }));

    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["terminationGracePeriodSeconds"], 10);
    assert_eq!(spec["hostAliases"], json!([{ "ip": "127.0.0.1", "hostnames": ["ship", "browser"] }]));
    assert!(spec.get("imagePullSecrets").is_none());
    assert_eq!(spec["securityContext"], json!({ "fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch" }));
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    let (ship, browser) = (&containers[0], &containers[1]);
    assert_eq!((&ship["name"], &ship["image"], &ship["imagePullPolicy"]), (&json!("ship"), &json!("ship:latest"), &json!("IfNotPresent")));
    assert_eq!((&browser["name"], &browser["image"]), (&json!("browser"), &json!("gull:latest")));
    assert_eq!(ship["ports"], json!([{ "containerPort": 8123 }]));
    assert_eq!(browser["ports"], json!([{ "containerPort": 8115 }]));

    // Resources in Kubernetes units: never "512m" (millibytes) for memory.
    assert_eq!(ship["resources"]["limits"], json!({ "cpu": "1", "memory": "1024Mi" }));
    assert_eq!(ship["resources"]["requests"], json!({ "cpu": "500m", "memory": "1024Mi" }));
    assert_eq!(browser["resources"]["limits"], json!({ "cpu": "500m", "memory": "512Mi" }));
    assert_eq!(browser["resources"]["requests"], json!({ "cpu": "250m", "memory": "512Mi" }));

    // The env exactly as the session code built it.
    let env = env_of(ship);
    assert_eq!(env["PROFILE_VAR"], "from-profile");
    assert_eq!(env["BAY_PROFILE_ENV"], "PROFILE_VAR=from-profile");

    // Hardening.
    assert_eq!(
        ship["securityContext"],
        json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } })
    );
    let sc = &browser["securityContext"];
    assert_eq!((&sc["runAsUser"], &sc["runAsGroup"]), (&json!(1000), &json!(1000)));
    assert_eq!(sc["capabilities"], json!({ "add": ["SYS_ADMIN"], "drop": ["ALL"] }));

    // Volumes: the cargo PVC in both, a memory emptyDir per tmpfs.
    let volumes = spec["volumes"].as_array().unwrap();
    assert_eq!(volumes[0], json!({ "name": "workspace", "persistentVolumeClaim": { "claimName": "bay-cargo-ws-1" } }));
    assert_eq!(volumes.len(), 1 + 2 * 2, "workspace + /tmp and /var/tmp per container");
    let tmp = volumes.iter().find(|v| v["name"] == "tmpfs-1-0").expect("tmpfs volume");
    assert_eq!(tmp["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "512Mi" }));
    let var_tmp = volumes.iter().find(|v| v["name"] == "tmpfs-1-1").expect("tmpfs volume");
    assert_eq!(var_tmp["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "64Mi" }));
    for c in [ship, browser] {
        assert!(c["volumeMounts"].as_array().unwrap().contains(&json!({ "name": "workspace", "mountPath": "/workspace" })));
    }
    assert!(browser["volumeMounts"].as_array().unwrap().contains(&json!({ "name": "tmpfs-1-0", "mountPath": "/tmp" })));
}

/// The pull policy, pull secrets and label prefix come from the config; no
/// user means no fsGroup; without no_new_privileges the runtime's default
/// (no `allowPrivilegeEscalation`) applies.
#[tokio::test]
async fn pull_policy_secrets_and_label_prefix_come_from_the_config() {
    let config = K8sConfig { label_prefix: "acme".into(), image_pull_secrets: vec!["regcred".into()], ..config() };
    let (driver, mut api) = mock_driver(&config, PullPolicy::Always);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-2")).await;
        reply(send, 200, &with_status(post.body.clone(), running("10.0.0.9", &["primary"])));
        post.body
    });
    let mut primary = container("primary", "python-image:3", 8123);
    primary.cpus = 2.0;
    primary.memory_bytes = 4096 * MI;
    primary.security.no_new_privileges = false;
    let launched = within(driver.launch_session(&session("sess-2", "default", vec![primary]))).await.unwrap();
    assert_eq!(launched[0].endpoint, "http://10.0.0.9:8123");
    drop(driver);
    let pod = within(server).await.unwrap();

    let pod_labels = &pod["metadata"]["labels"];
    assert_eq!(pod_labels["acme.session_id"], "sess-2");
    assert!(pod_labels.get("bay.session_id").is_none());
    assert!(pod["metadata"]["annotations"].get("acme.container_labels").is_some());
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{ "name": "regcred" }]));
    assert!(pod["spec"].get("securityContext").is_none());
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"], json!({ "cpu": "2", "memory": "4096Mi" }));
    assert_eq!(c["resources"]["requests"], json!({ "cpu": "1", "memory": "4096Mi" }));
    assert!(c["securityContext"].get("allowPrivilegeEscalation").is_none());
}

/// Launching a session whose Pod exists (409: a retried launch, a Bay that
/// restarted mid-launch) adopts the Pod: no second create, no delete.
#[tokio::test]
async fn launch_adopts_an_existing_pod() {
    let spec = browser_python("sess-1", "default");
    let existing = serde_json::to_value(pod::manifest(&spec, &config(), PullPolicy::IfNotPresent).unwrap()).unwrap();
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::POST, PODS).await;
        reply_status(send, 409, "AlreadyExists");
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        reply(send, 200, &with_status(existing, running("10.0.0.7", &["ship", "browser"])));
        expect_no_more(&mut api).await;
    });
    let launched = within(driver.launch_session(&spec)).await.unwrap();
    drop(driver);
    within(server).await.unwrap();
    assert_eq!(launched.iter().map(|c| c.endpoint.as_str()).collect::<Vec<_>>(), ["http://10.0.0.7:8123", "http://10.0.0.7:8115"]);
}

/// An image the kubelet cannot pull fails the launch at once with
/// `ImageMissing` (Bay's "image not available" error), naming the image and
/// the kubelet's reason.
#[tokio::test]
async fn image_pull_failure_is_image_missing() {
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-3")).await;
        let waiting = json!({ "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } });
        reply(send, 200, &with_status(post.body, status("Pending", None, &[("ship", waiting)])));
        expect_no_more(&mut api).await;
    });
    let result = within(driver.launch_session(&session("sess-3", "default", vec![container("ship", "ship:missing", 8123)]))).await;
    drop(driver);
    within(server).await.unwrap();
    match result {
        Err(DriverError::ImageMissing(image)) => assert_eq!(image, "ship:missing (ImagePullBackOff: Back-off pulling image)"),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
}

/// A container that stops during the launch fails it at once with its exit
/// code and reason, without waiting for the timeout.
#[tokio::test]
async fn stopped_container_fails_the_launch() {
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-4")).await;
        let stopped = json!({ "terminated": { "exitCode": 1, "reason": "Error", "finishedAt": "2026-01-02T03:04:05Z" } });
        reply(send, 200, &with_status(post.body, status("Running", Some("10.0.0.8"), &[("ship", running_state()), ("browser", stopped)])));
        expect_no_more(&mut api).await;
    });
    let result = within(driver.launch_session(&browser_python("sess-4", "default"))).await;
    drop(driver);
    within(server).await.unwrap();
    match result {
        Err(DriverError::Engine(m)) => assert!(m.contains("container browser stopped during start (exit code 1)"), "{m}"),
        other => panic!("expected an engine error, got {other:?}"),
    }
}

/// A Pod that never runs within `pod_startup_timeout` fails the launch with
/// what Kubernetes says about it (here: unschedulable).
#[tokio::test]
async fn launch_times_out_with_the_reason() {
    let config = K8sConfig { pod_startup_timeout: 0, ..config() };
    let (driver, mut api) = mock_driver(&config, PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-5")).await;
        let unschedulable = json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory." }] });
        reply(send, 200, &with_status(post.body, unschedulable));
        expect_no_more(&mut api).await;
    });
    let result = within(driver.launch_session(&session("sess-5", "default", vec![container("ship", "ship:latest", 8123)]))).await;
    drop(driver);
    within(server).await.unwrap();
    match result {
        Err(DriverError::Engine(m)) => {
            assert!(m.contains("pod bay-sess-5 did not start within 0 s"), "{m}");
            assert!(m.contains("Unschedulable: 0/3 nodes are available: 3 Insufficient memory."), "{m}");
        }
        other => panic!("expected an engine error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Destroy, status, logs, list

/// Destroy deletes the Pod with a 10 s grace period and returns once it is
/// gone (404). A Pod already gone (404 to the delete) or deleted at once (a
/// Status answer) needs no wait; one still terminating when the wait is
/// over is left to the kubelet.
#[tokio::test]
async fn destroy_deletes_the_pod_and_waits_until_gone() {
    let spec = browser_python("sess-1", "default");
    let manifest = serde_json::to_value(pod::manifest(&spec, &config(), PullPolicy::IfNotPresent).unwrap()).unwrap();
    let (mut driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let path = format!("{PODS}/bay-sess-1");
        let mut terminating = with_status(manifest, running("10.0.0.7", &["ship", "browser"]));
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:05Z");
        let (delete, send) = expect(&mut api, Method::DELETE, &path).await;
        assert_eq!(delete.body["gracePeriodSeconds"], 10);
        reply(send, 200, &terminating);
        for _ in 0..2 {
            let (_, send) = expect(&mut api, Method::GET, &path).await;
            reply(send, 200, &terminating);
        }
        let (_, send) = expect(&mut api, Method::GET, &path).await;
        reply_status(send, 404, "NotFound");
        // Destroyed again: already gone.
        let (_, send) = expect(&mut api, Method::DELETE, &path).await;
        reply_status(send, 404, "NotFound");
        // Deleted at once.
        let (_, send) = expect(&mut api, Method::DELETE, &path).await;
        reply(send, 200, &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200 }));
        // Still terminating after the wait (zero here).
        let (_, send) = expect(&mut api, Method::DELETE, &path).await;
        reply(send, 200, &terminating);
        let (_, send) = expect(&mut api, Method::GET, &path).await;
        reply(send, 200, &terminating);
        expect_no_more(&mut api).await;
    });
    within(async {
        driver.destroy_session("sess-1").await.unwrap();
        driver.destroy_session("sess-1").await.unwrap();
        driver.destroy_session("sess-1").await.unwrap();
    })
    .await;
    driver.delete_wait = Duration::ZERO;
    within(driver.destroy_session("sess-1")).await.unwrap();
    drop(driver);
    within(server).await.unwrap();
}

/// Each container's status maps to Bay's: running; OOM-killed (exited, 137,
/// out of memory, finished at an RFC 3339 time Bay parses); terminated with
/// its code; all containers of a terminating Pod not yet stopped as
/// removing. A missing Pod, or a Pod of that name labelled for another
/// session, is an empty list. Logs are read per container with tailLines.
#[tokio::test]
async fn session_status_maps_running_oom_killed_and_terminated() {
    let containers =
        vec![container("ship", "ship:latest", 8123), container("browser", "gull:latest", 8115), container("worker", "worker:latest", 9000)];
    let three = session("sess-1", "default", containers);
    let manifest = serde_json::to_value(pod::manifest(&three, &config(), PullPolicy::IfNotPresent).unwrap()).unwrap();
    let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let path = format!("{PODS}/bay-sess-1");
        let oom = json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-01-02T03:04:05Z" } });
        let done = json!({ "terminated": { "exitCode": 3, "reason": "Error", "finishedAt": "2026-01-02T03:05:00Z" } });
        let pod =
            with_status(manifest.clone(), status("Running", Some("10.0.0.7"), &[("ship", oom), ("browser", running_state()), ("worker", done)]));
        let (_, send) = expect(&mut api, Method::GET, &path).await;
        reply(send, 200, &pod);
        let mut terminating = pod.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:06:00Z");
        let (_, send) = expect(&mut api, Method::GET, &path).await;
        reply(send, 200, &terminating);
        // Logs: the Pod for its containers, then each container's tail.
        let (_, send) = expect(&mut api, Method::GET, &path).await;
        reply(send, 200, &pod);
        for (name, text) in [("ship", "Killed\n"), ("browser", "ready\n")] {
            let (logs, send) = expect(&mut api, Method::GET, &format!("{path}/log")).await;
            assert_eq!((logs.query["container"].as_str(), logs.query["tailLines"].as_str()), (name, "20"));
            send.send_response(Response::new(Body::from(text.as_bytes().to_vec())));
        }
        let (_, send) = expect(&mut api, Method::GET, &format!("{path}/log")).await;
        reply_status(send, 400, "BadRequest");
        // Gone; and a Pod of that name that is another session's.
        let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-gone").await;
        reply_status(send, 404, "NotFound");
        let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-other").await;
        reply(send, 200, &pod);
        expect_no_more(&mut api).await;
    });
    let (status, removing, logs, gone, other) = within(async {
        (
            driver.session_status("sess-1").await.unwrap(),
            driver.session_status("sess-1").await.unwrap(),
            driver.session_logs("sess-1", 20).await.unwrap(),
            driver.session_status("sess-gone").await.unwrap(),
            driver.session_status("sess-other").await.unwrap(),
        )
    })
    .await;
    drop(driver);
    within(server).await.unwrap();

    assert_eq!(status.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["bay-sess-1/ship", "bay-sess-1/browser", "bay-sess-1/worker"]);
    let (ship, browser, worker) = (&status[0].status, &status[1].status, &status[2].status);
    assert_eq!(status[0].name, "ship");
    assert_eq!((ship.state, ship.exit_code, ship.oom_killed), (ContainerState::Exited, Some(137), true));
    assert_eq!(ship.describe(), "exit code 137, out of memory");
    assert_eq!(ship.finished_at.as_deref(), Some("2026-01-02T03:04:05Z"));
    let expected = time::macros::datetime!(2026-01-02 03:04:05 UTC).unix_timestamp() * 1_000_000;
    assert_eq!(crate::driver::finished_micros(ship), Some(expected));
    assert_eq!((browser.state, browser.exit_code, browser.oom_killed, browser.finished_at.as_deref()), (ContainerState::Running, None, false, None));
    assert_eq!((worker.state, worker.exit_code, worker.oom_killed), (ContainerState::Exited, Some(3), false));
    assert_eq!(
        removing.iter().map(|c| c.status.state).collect::<Vec<_>>(),
        [ContainerState::Exited, ContainerState::Removing, ContainerState::Exited]
    );
    assert_eq!(logs, "[ship] Killed\n[browser] ready\n");
    assert!(gone.is_empty());
    assert!(other.is_empty(), "a Pod labelled for another session is not this session's");
}

/// Reconcile and GC find sessions by label: the selector carries the labels
/// (prefixed, values as stored) and requires the session label; each Pod is
/// one session, its containers with their per-container labels.
#[tokio::test]
async fn list_sessions_selects_by_labels_and_groups_by_session() {
    let config = K8sConfig { label_prefix: "acme".into(), ..config() };
    let one =
        serde_json::to_value(pod::manifest(&browser_python("sess-1", "alice@example.com"), &config, PullPolicy::IfNotPresent).unwrap()).unwrap();
    let single = session("sess-2", "bob", vec![container("ship", "ship:latest", 8123)]);
    let two = serde_json::to_value(pod::manifest(&single, &config, PullPolicy::IfNotPresent).unwrap()).unwrap();
    let (driver, mut api) = mock_driver(&config, PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (list, send) = expect(&mut api, Method::GET, PODS).await;
        assert_eq!(list.query["labelSelector"], "acme.instance_id=bay-test,acme.managed=true,acme.session_id");
        let items = vec![
            with_status(one, running("10.0.0.7", &["ship", "browser"])),
            with_status(two, status("Failed", None, &[("ship", json!({ "terminated": { "exitCode": 0 } }))])),
        ];
        reply(send, 200, &pod_list(items));
        let (list, send) = expect(&mut api, Method::GET, PODS).await;
        assert_eq!(list.query["labelSelector"], format!("acme.owner={},acme.session_id", selector_value("alice@example.com")));
        reply(send, 200, &pod_list(vec![]));
        expect_no_more(&mut api).await;
    });
    let by_instance = Labels::from([(labels::MANAGED.to_owned(), "true".to_owned()), (labels::INSTANCE_ID.to_owned(), "bay-test".to_owned())]);
    let by_owner = Labels::from([(labels::OWNER.to_owned(), "alice@example.com".to_owned())]);
    let (found, none) = within(async { (driver.list_sessions(&by_instance).await.unwrap(), driver.list_sessions(&by_owner).await.unwrap()) }).await;
    drop(driver);
    within(server).await.unwrap();
    assert!(none.is_empty());

    assert_eq!(found.len(), 2);
    let (s1, s2) = (&found[0], &found[1]);
    assert_eq!(s1.session_id, "sess-1");
    assert_eq!(s1.labels[labels::OWNER], "alice@example.com", "the original value, from the annotation");
    assert_eq!(s1.labels[labels::SANDBOX_ID], "sandbox-1");
    assert_eq!(s1.labels[labels::CONTAINER_NAME], "ship", "the first container's own labels, as with Docker");
    assert_eq!(
        s1.containers.iter().map(|c| (c.name.as_str(), c.id.as_str())).collect::<Vec<_>>(),
        [("ship", "bay-sess-1/ship"), ("browser", "bay-sess-1/browser")]
    );
    assert!(s1.containers.iter().all(|c| c.status.state == ContainerState::Running));
    assert_eq!(s2.session_id, "sess-2");
    assert_eq!(s2.labels[labels::OWNER], "bob");
    assert_eq!(s2.containers.len(), 1);
    assert_eq!((s2.containers[0].status.state, s2.containers[0].status.exit_code), (ContainerState::Exited, Some(0)));
}

/// A Bay that restarted knows nothing: a fresh driver on a fresh client
/// finds the session the previous one launched purely from the API
/// server's answers, with the same container ids the launch returned (what
/// `host/src/sandbox/session.rs` compares to adopt a running session).
#[tokio::test]
async fn a_restarted_bay_adopts_a_running_session() {
    let spec = browser_python("sess-1", "alice@example.com");
    let (before, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (post, send) = expect(&mut api, Method::POST, PODS).await;
        reply(send, 201, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        reply(send, 200, &with_status(post.body.clone(), running("10.0.0.7", &["ship", "browser"])));
        post.body
    });
    let launched = within(before.launch_session(&spec)).await.unwrap();
    drop(before);
    // What the API server holds: the Pod as it was created, running.
    let stored = with_status(within(server).await.unwrap(), running("10.0.0.7", &["ship", "browser"]));

    let (after, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, &format!("{PODS}/bay-sess-1")).await;
        reply(send, 200, &stored);
        let (list, send) = expect(&mut api, Method::GET, PODS).await;
        assert_eq!(list.query["labelSelector"], "bay.instance_id=bay-test,bay.managed=true,bay.session_id");
        reply(send, 200, &pod_list(vec![stored]));
        expect_no_more(&mut api).await;
    });
    let instance = Labels::from([(labels::MANAGED.to_owned(), "true".to_owned()), (labels::INSTANCE_ID.to_owned(), "bay-test".to_owned())]);
    let (status, sessions) = within(async { (after.session_status("sess-1").await.unwrap(), after.list_sessions(&instance).await.unwrap()) }).await;
    drop(after);
    within(server).await.unwrap();

    let launched_ids: Vec<(String, String)> = launched.iter().map(|c| (c.name.clone(), c.id.clone())).collect();
    let ids = |infos: &[ContainerInfo]| infos.iter().map(|c| (c.name.clone(), c.id.clone())).collect::<Vec<_>>();
    assert_eq!(launched_ids, [("ship".to_owned(), "bay-sess-1/ship".to_owned()), ("browser".to_owned(), "bay-sess-1/browser".to_owned())]);
    assert_eq!(ids(&status), launched_ids);
    assert!(status.iter().all(|c| c.status.state == ContainerState::Running));
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, "sess-1");
    assert_eq!(sessions[0].labels[labels::OWNER], "alice@example.com");
    assert_eq!(sessions[0].labels[labels::SANDBOX_ID], "sandbox-1");
    assert_eq!(ids(&sessions[0].containers), launched_ids);
}

// ---------------------------------------------------------------------------
// Volumes and connecting

/// Cargo volumes are PVCs: Shipyard's "1g" becomes "1Gi", the storage class
/// and labels are set, an existing PVC (409) is adopted, and a missing one
/// is neither an error to delete nor said to exist.
#[tokio::test]
async fn volumes_are_pvcs() {
    let config = K8sConfig { default_storage_size: "1g".into(), storage_class: Some("fast".into()), ..config() };
    let (driver, mut api) = mock_driver(&config, PullPolicy::IfNotPresent);
    let server = tokio::spawn(async move {
        let pvcs = "/api/v1/namespaces/bay/persistentvolumeclaims";
        let (post, send) = expect(&mut api, Method::POST, pvcs).await;
        reply(send, 201, &post.body);
        let (again, send) = expect(&mut api, Method::POST, pvcs).await;
        assert_eq!(again.body, post.body);
        reply_status(send, 409, "AlreadyExists");
        let (_, send) = expect(&mut api, Method::GET, &format!("{pvcs}/bay-cargo-ws-1")).await;
        reply(send, 200, &post.body);
        let (_, send) = expect(&mut api, Method::GET, &format!("{pvcs}/bay-cargo-gone")).await;
        reply_status(send, 404, "NotFound");
        let (_, send) = expect(&mut api, Method::DELETE, &format!("{pvcs}/bay-cargo-gone")).await;
        reply_status(send, 404, "NotFound");
        let (list, send) = expect(&mut api, Method::GET, pvcs).await;
        assert_eq!(list.query["labelSelector"], "bay.instance_id=bay-test");
        reply(send, 200, &json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": [post.body.clone()] }));
        expect_no_more(&mut api).await;
        post.body
    });
    let l = Labels::from(
        [(labels::MANAGED, "true"), (labels::CARGO_ID, "ws-1"), (labels::INSTANCE_ID, "bay-test")].map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    within(async {
        assert_eq!(driver.create_volume("bay-cargo-ws-1", &l).await.unwrap(), "bay-cargo-ws-1");
        assert_eq!(driver.create_volume("bay-cargo-ws-1", &l).await.unwrap(), "bay-cargo-ws-1", "409 adopts");
        assert!(driver.volume_exists("bay-cargo-ws-1").await.unwrap());
        assert!(!driver.volume_exists("bay-cargo-gone").await.unwrap());
        driver.delete_volume("bay-cargo-gone").await.unwrap();
        let by_instance = Labels::from([(labels::INSTANCE_ID.to_owned(), "bay-test".to_owned())]);
        let found = driver.list_volumes(&by_instance).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "bay-cargo-ws-1");
        assert_eq!(found[0].labels, l);
    })
    .await;
    drop(driver);
    let pvc = within(server).await.unwrap();
    assert_eq!(pvc["metadata"]["name"], "bay-cargo-ws-1");
    assert_eq!(pvc["metadata"]["labels"], json!({ "bay.cargo_id": "ws-1", "bay.instance_id": "bay-test", "bay.managed": "true" }));
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(pvc["spec"]["storageClassName"], "fast");
}

/// `connect` builds a real TLS client from a kubeconfig (rustls with the
/// ring provider: no "cannot determine the CryptoProvider" panic) and
/// reports an unreachable API server as an error. It only dials
/// 127.0.0.1:1, where nothing listens. A bad storage size or label prefix
/// fails before any connection.
#[tokio::test]
async fn connect_builds_a_tls_client_and_reports_an_unreachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: local\n\
         clusters: [{name: local, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: local, user: {token: dummy}}]\n\
         contexts: [{name: local, context: {cluster: local, user: local, namespace: bay}}]\n",
    )
    .unwrap();
    let config = K8sConfig { kubeconfig: Some(path.display().to_string()), ..config() };
    let err = within(KubernetesDriver::connect(&config, PullPolicy::IfNotPresent)).await.err().expect("no API server");
    assert!(err.to_string().contains("cannot reach the Kubernetes API server at https://127.0.0.1:1"), "{err:#}");

    let bad = K8sConfig { default_storage_size: "lots".into(), ..config.clone() };
    let err = KubernetesDriver::connect(&bad, PullPolicy::IfNotPresent).await.err().expect("invalid size");
    assert!(err.to_string().contains("default_storage_size"), "{err:#}");
    let bad = K8sConfig { label_prefix: "Acme Corp".into(), ..config };
    let err = KubernetesDriver::connect(&bad, PullPolicy::IfNotPresent).await.err().expect("invalid prefix");
    assert!(err.to_string().contains("label_prefix"), "{err:#}");
}
