//! The driver's request sequences against a scripted engine (the real
//! engines are exercised by the end-to-end suite in `tests/`).

use std::sync::Mutex;

use futures::executor::block_on;
use serde_json::{Value, json};

use super::*;
use crate::spec::{ContainerSpec, Security, SessionSpec};

/// Answers requests by the first matching rule; records every request.
struct Scripted {
    rules: Vec<(Method, &'static str, u16, Value)>,
    seen: Mutex<Vec<Request>>,
}

impl Scripted {
    fn new(rules: Vec<(Method, &'static str, u16, Value)>) -> Scripted {
        Scripted { rules, seen: Mutex::new(vec![]) }
    }
    fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|r| format!("{:?} {}", r.method, r.path)).collect()
    }
}

impl Transport for &Scripted {
    async fn send(&self, req: Request) -> Result<Reply, String> {
        self.seen.lock().unwrap().push(req.clone());
        let path = req.path.trim_start_matches("/v1.41");
        for (m, p, status, body) in &self.rules {
            if *m == req.method && (path == *p || (p.ends_with('*') && path.starts_with(p.trim_end_matches('*')))) {
                return Ok(Reply { status: *status, body: body.to_string().into_bytes() });
            }
        }
        Err(format!("unscripted {:?} {path}", req.method))
    }
}

fn spec(names: &[&str]) -> SessionSpec {
    let security = Security {
        read_only_rootfs: true,
        no_new_privileges: true,
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        pids_limit: 256,
        tmpfs: Default::default(),
        user: Some("1000:1000".into()),
    };
    SessionSpec {
        session_id: "sess-1".into(),
        labels: Labels::from([("bay.managed".into(), "true".into())]),
        volume: "bay-cargo-ws-1".into(),
        mount_path: "/workspace".into(),
        containers: names
            .iter()
            .map(|n| ContainerSpec {
                name: (*n).into(),
                image: "ship:latest".into(),
                env: vec![("A".into(), "b".into())],
                labels: Labels::new(),
                cpus: 1.0,
                memory_bytes: 1 << 30,
                security: security.clone(),
                runtime_port: 8123,
            })
            .collect(),
    }
}

fn inspect_running() -> Value {
    inspect_on("bay_net_sess-1")
}

/// A running container on network `net`, as `GET /containers/{id}/json` answers.
fn inspect_on(net: &str) -> Value {
    json!({ "Id": "c1", "State": { "Status": "running" }, "NetworkSettings": {
        "Ports": { "8123/tcp": [{ "HostIp": "127.0.0.1", "HostPort": "49153" }] },
        "Networks": { net: { "IPAddress": "10.213.0.2" } } } })
}

#[test]
fn launch_creates_network_then_containers_then_starts() {
    let engine = Scripted::new(vec![
        (Method::Post, "/networks/create", 201, json!({ "Id": "n1" })),
        (Method::Post, "/containers/create", 201, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 204, json!({})),
        (Method::Get, "/containers/c1/json", 200, inspect_running()),
    ]);
    let api = DockerApi::new(&engine, Settings::default());
    let launched = block_on(api.launch_session(&spec(&["ship"]))).unwrap();
    assert_eq!(launched, vec![LaunchedContainer { name: "ship".into(), id: "c1".into(), endpoint: "http://127.0.0.1:49153".into() }]);
    assert_eq!(
        engine.paths(),
        ["Post /v1.41/networks/create", "Post /v1.41/containers/create", "Post /v1.41/containers/c1/start", "Get /v1.41/containers/c1/json"]
    );
    let seen = engine.seen.lock().unwrap();
    let net: Value = serde_json::from_str(seen[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(net["Name"], "bay_net_sess-1");
    assert!(net["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().ends_with("/28"));
    let create: Value = serde_json::from_str(seen[1].body.as_deref().unwrap()).unwrap();
    assert_eq!(seen[1].query, [("name".to_owned(), "bay-session-sess-1".to_owned())]);
    assert_eq!(create["HostConfig"]["NetworkMode"], "bay_net_sess-1");
    assert_eq!(create["NetworkingConfig"]["EndpointsConfig"]["bay_net_sess-1"]["Aliases"][0], "ship");
    assert_eq!(create["Labels"]["bay.session_id"], "sess-1");
    assert_eq!(create["Labels"]["bay.container_name"], "ship");
    assert_eq!(create["HostConfig"]["PortBindings"]["8123/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(create["HostConfig"]["CapDrop"][0], "ALL");
    assert_eq!(create["HostConfig"]["Mounts"][0], json!({ "Type": "volume", "Source": "bay-cargo-ws-1", "Target": "/workspace", "ReadOnly": false }));
}

#[test]
fn an_absolute_cargo_is_bind_mounted() {
    let mut s = spec(&["ship"]);
    s.volume = "/srv/cargos/bay-cargo-ws-1".into();
    let create = super::body::create_container(&s, &s.containers[0], "bay_net_sess-1", None);
    assert_eq!(create["HostConfig"]["Mounts"][0]["Type"], "bind");
    assert_eq!(create["HostConfig"]["Mounts"][0]["Source"], "/srv/cargos/bay-cargo-ws-1");
}

#[test]
fn a_fixed_host_port_publishes_single_container_sessions_only() {
    let engine = Scripted::new(vec![
        (Method::Post, "/networks/create", 201, json!({ "Id": "n1" })),
        (Method::Post, "/containers/create", 201, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 500, json!({ "message": "Bind for 127.0.0.1:18123 failed: port is already allocated" })),
    ]);
    let api = DockerApi::new(&engine, Settings { host_port: Some(18123), ..Settings::default() });
    let err = block_on(api.launch_session(&spec(&["ship"]))).unwrap_err();
    assert!(err.to_string().contains("driver.docker.host_port"), "{err}");
    let seen = engine.seen.lock().unwrap();
    let create: Value = serde_json::from_str(seen[1].body.as_deref().unwrap()).unwrap();
    assert_eq!(create["HostConfig"]["PortBindings"]["8123/tcp"][0]["HostPort"], "18123");
    drop(seen);

    // Several containers: random ports, as in Shipyard Neo.
    let two = spec(&["ship", "browser"]);
    let ship = &two.containers[0];
    let body = body::create_container(&two, ship, "net", Some(("127.0.0.1", None)));
    assert_eq!(body["HostConfig"]["PortBindings"]["8123/tcp"][0]["HostPort"], "");
}

#[test]
fn a_taken_subnet_moves_to_the_next_candidate() {
    struct Overlap {
        calls: Mutex<Vec<String>>,
    }
    impl Transport for &Overlap {
        async fn send(&self, req: Request) -> Result<Reply, String> {
            let body: Value = serde_json::from_str(req.body.as_deref().unwrap_or("{}")).unwrap();
            let mut calls = self.calls.lock().unwrap();
            calls.push(body["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or_default().to_owned());
            let (status, msg) = if calls.len() < 3 { (403, "Pool overlaps with other one on this address space") } else { (201, "") };
            Ok(Reply { status, body: json!({ "message": msg }).to_string().into_bytes() })
        }
    }
    let engine = Overlap { calls: Mutex::new(vec![]) };
    let api = DockerApi::new(&engine, Settings::default());
    block_on(api.create_network("bay_net_sess-1", &spec(&["ship"]))).unwrap();
    let calls = engine.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    assert_ne!(calls[0], calls[1]);
}

#[test]
fn relaunch_adopts_the_existing_container() {
    let engine = Scripted::new(vec![
        (Method::Post, "/networks/create", 409, json!({ "message": "network with name bay_net_sess-1 already exists" })),
        (Method::Post, "/containers/create", 409, json!({ "message": "Conflict. The container name is already in use" })),
        (Method::Get, "/containers/bay-session-sess-1/json", 200, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 304, json!({})),
        (Method::Get, "/containers/c1/json", 200, inspect_running()),
    ]);
    let api = DockerApi::new(&engine, Settings::default());
    let launched = block_on(api.launch_session(&spec(&["ship"]))).unwrap();
    assert_eq!(launched[0].id, "c1");
}

#[test]
fn missing_image_is_pulled_once_when_allowed() {
    let engine = Scripted::new(vec![
        (Method::Post, "/images/create", 200, json!({ "error": "manifest unknown" })),
        (Method::Post, "/containers/create", 404, json!({ "message": "No such image: ship:latest" })),
        (Method::Post, "/networks/create", 201, json!({})),
    ]);
    let api = DockerApi::new(&engine, Settings::default());
    let err = block_on(api.launch_session(&spec(&["ship"]))).unwrap_err();
    assert!(matches!(&err, DriverError::ImageMissing(m) if m.contains("manifest unknown")), "{err:?}");
    let never = DockerApi::new(&engine, Settings { pull: PullPolicy::Never, ..Settings::default() });
    let err = block_on(never.launch_session(&spec(&["ship"]))).unwrap_err();
    assert_eq!(err, DriverError::ImageMissing("ship:latest".into()));
}

#[test]
fn destroy_removes_containers_then_the_network() {
    let engine = Scripted::new(vec![
        (
            Method::Get,
            "/containers/json",
            200,
            json!([{ "Id": "c1", "Names": ["/bay-session-sess-1"], "Labels": { "bay.session_id": "sess-1" }, "State": "running" }]),
        ),
        (Method::Post, "/containers/c1/stop", 204, json!({})),
        (Method::Delete, "/containers/c1", 204, json!({})),
        (Method::Get, "/networks", 200, json!([{ "Name": "bay_net_sess-1", "Labels": { "bay.session_id": "sess-1" } }])),
        (Method::Delete, "/networks/bay_net_sess-1", 204, json!({})),
    ]);
    let api = DockerApi::new(&engine, Settings::default());
    block_on(api.destroy_session("sess-1")).unwrap();
    let paths = engine.paths();
    let net = paths.iter().position(|p| p == "Delete /v1.41/networks/bay_net_sess-1").unwrap();
    let container = paths.iter().position(|p| p == "Delete /v1.41/containers/c1").unwrap();
    assert!(container < net, "{paths:?}");
}

#[test]
fn sessions_are_grouped_from_containers_and_networks() {
    let engine = Scripted::new(vec![
        (
            Method::Get,
            "/containers/json",
            200,
            json!([
                { "Id": "a", "Names": ["/bay-s1-ship"], "Labels": { "bay.session_id": "s1", "bay.container_name": "ship" }, "State": "running" },
                { "Id": "b", "Names": ["/bay-s1-browser"], "Labels": { "bay.session_id": "s1", "bay.container_name": "browser" }, "State": "exited" },
                { "Id": "c", "Names": ["/other"], "Labels": {}, "State": "running" }
            ]),
        ),
        (Method::Get, "/networks", 200, json!([{ "Name": "bay_net_s2", "Labels": { "bay.session_id": "s2" } }])),
    ]);
    let api = DockerApi::new(&engine, Settings::default());
    let sessions = block_on(api.list_sessions(&Labels::new())).unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].session_id, "s1");
    assert_eq!(
        sessions[0].containers.iter().map(|c| (c.name.as_str(), c.status.state)).collect::<Vec<_>>(),
        [("ship", ContainerState::Running), ("browser", ContainerState::Exited)]
    );
    assert!(sessions[1].containers.is_empty());
}

#[test]
fn endpoints_by_reach() {
    let info = inspect_running();
    assert_eq!(
        body::endpoint(&info, 8123, "bay_net_sess-1", &Reach::PublishedPort { host_address: "127.0.0.1".into() }).unwrap(),
        "http://127.0.0.1:49153"
    );
    assert_eq!(body::endpoint(&info, 8123, "bay_net_sess-1", &Reach::SessionNetwork { join: None }).unwrap(), "http://10.213.0.2:8123");
    assert!(body::endpoint(&info, 8123, "bay_net_sess-1", &Reach::SharedNetwork { network: "bay".into() }).is_none());
}

#[test]
fn exit_events_and_status() {
    let e = br#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"bay.session_id":"s1","exitCode":"137"}}}"#;
    let exit = parse_exit_event(e).unwrap();
    assert_eq!(exit.container_id, "abc");
    assert_eq!(exit.labels["bay.session_id"], "s1");
    assert!(parse_exit_event(br#"{"Type":"container","Action":"start","Actor":{"ID":"abc"}}"#).is_none());
    let s = body::status(&json!({ "Status": "exited", "ExitCode": 137, "OOMKilled": true, "FinishedAt": "2026-01-01T00:00:00.5Z" }));
    assert_eq!((s.state, s.exit_code, s.oom_killed), (ContainerState::Exited, Some(137), true));
    assert!(body::status(&json!({ "Status": "created", "FinishedAt": "0001-01-01T00:00:00Z" })).finished_at.is_none());
}

#[test]
fn images_split_into_repository_and_tag() {
    assert_eq!(body::split_image("ship:latest"), ("ship", Some("latest")));
    assert_eq!(body::split_image("127.0.0.1:5000/bay/ship"), ("127.0.0.1:5000/bay/ship", None));
    assert_eq!(body::split_image("127.0.0.1:5000/bay/ship:1.2"), ("127.0.0.1:5000/bay/ship", Some("1.2")));
    assert_eq!(body::split_image("ship@sha256:abc"), ("ship@sha256:abc", None));
}

#[test]
fn logs_are_demultiplexed() {
    let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
    raw.extend_from_slice(b"hi\n");
    raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
    raw.extend_from_slice(b"err\n");
    assert_eq!(body::demux(&raw), "hi\nerr\n");
    assert_eq!(body::demux(b"plain text"), "plain text");
}

#[test]
fn an_eligible_session_joins_the_shared_bridge_without_a_network_of_its_own() {
    let engine = Scripted::new(vec![
        (Method::Get, "/networks/bay_sessions", 404, json!({ "message": "network bay_sessions not found" })),
        (Method::Post, "/networks/create", 201, json!({ "Id": "n1" })),
        (Method::Post, "/containers/create", 201, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 204, json!({})),
        (Method::Get, "/containers/c1/json", 200, inspect_on(SHARED_BRIDGE)),
    ]);
    let settings = Settings { shared_bridge: Some(SHARED_BRIDGE.into()), ..Settings::default() };
    let api = DockerApi::new(&engine, settings);
    let launched = block_on(api.launch_session(&spec(&["ship"]))).unwrap();
    assert_eq!(launched[0].endpoint, "http://127.0.0.1:49153");
    let seen = engine.seen.lock().unwrap();
    let net: Value = serde_json::from_str(seen[1].body.as_deref().unwrap()).unwrap();
    assert!(shared::is_shared_bridge(&json!({ "Driver": "bridge", "Options": net["Options"], "Labels": net["Labels"] })));
    assert_eq!(net["Name"], SHARED_BRIDGE);
    assert_eq!(net["Options"]["com.docker.network.bridge.enable_icc"], "false");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.213.240.0/20");
    assert!(net["Labels"].get("bay.session_id").is_none(), "the bridge belongs to no session: {net}");
    let create: Value = serde_json::from_str(seen[2].body.as_deref().unwrap()).unwrap();
    assert_eq!(create["HostConfig"]["NetworkMode"], SHARED_BRIDGE);
    assert_eq!(create["HostConfig"]["Sysctls"]["net.ipv6.conf.all.disable_ipv6"], "1");
    // No alias: `ship` would resolve to every session's container.
    assert_eq!(create["NetworkingConfig"]["EndpointsConfig"][SHARED_BRIDGE], json!({}));
    assert_eq!(seen.iter().filter(|r| r.path.ends_with("/networks/create")).count(), 1);
}

#[test]
fn a_bridge_that_cannot_be_made_leaves_the_session_a_network_of_its_own() {
    let overlap = json!({ "message": "Pool overlaps with other one on this address space" });
    let engine = Scripted::new(vec![
        (Method::Get, "/networks/bay_sessions", 404, json!({ "message": "network bay_sessions not found" })),
        (Method::Post, "/networks/create", 403, overlap),
        (Method::Post, "/containers/create", 201, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 204, json!({})),
        (Method::Get, "/containers/c1/json", 200, inspect_running()),
    ]);
    let settings = Settings { shared_bridge: Some(SHARED_BRIDGE.into()), subnets: None, ..Settings::default() };
    // (without a pool the per-session network is created on the engine's
    // default pools; the scripted engine refuses every create the same way)
    let api = DockerApi::new(&engine, settings);
    assert!(block_on(api.launch_session(&spec(&["ship"]))).is_err());
    let paths = engine.paths();
    assert_eq!(paths[..3], ["Get /v1.41/networks/bay_sessions", "Post /v1.41/networks/create", "Get /v1.41/networks/bay_sessions"]);
    assert_eq!(paths[3], "Post /v1.41/networks/create", "then the session's own network: {paths:?}");
    let seen = engine.seen.lock().unwrap();
    let own: Value = serde_json::from_str(seen[3].body.as_deref().unwrap()).unwrap();
    assert_eq!(own["Name"], "bay_net_sess-1");
}

#[test]
fn a_network_of_that_name_that_lets_containers_talk_is_not_joined() {
    let foreign = json!({ "Name": "bay_sessions", "Driver": "bridge", "Options": {}, "Labels": {} });
    let engine = Scripted::new(vec![
        (Method::Get, "/networks/bay_sessions", 200, foreign),
        (Method::Post, "/networks/create", 201, json!({ "Id": "n1" })),
        (Method::Post, "/containers/create", 201, json!({ "Id": "c1" })),
        (Method::Post, "/containers/c1/start", 204, json!({})),
        (Method::Get, "/containers/c1/json", 200, inspect_running()),
    ]);
    let api = DockerApi::new(&engine, Settings { shared_bridge: Some(SHARED_BRIDGE.into()), ..Settings::default() });
    block_on(api.launch_session(&spec(&["ship"]))).unwrap();
    let seen = engine.seen.lock().unwrap();
    let own: Value = serde_json::from_str(seen[1].body.as_deref().unwrap()).unwrap();
    assert_eq!(own["Name"], "bay_net_sess-1", "a network of its own instead");
}

#[test]
fn who_may_share_the_bridge() {
    let one = spec(&["ship"]);
    assert!(shared::eligible(&one));
    // Siblings reach each other by name: a network of their own.
    assert!(!shared::eligible(&spec(&["ship", "browser"])));
    // Raw sockets could spoof a neighbour's address.
    let mut raw = one.clone();
    raw.containers[0].security.cap_add = vec!["NET_RAW".into()];
    assert!(!shared::eligible(&raw));
    let mut kept = one.clone();
    kept.containers[0].security.cap_drop = vec!["SYS_ADMIN".into()];
    assert!(!shared::eligible(&kept), "Docker grants NET_RAW unless it is dropped");
    let mut dropped = one.clone();
    dropped.containers[0].security.cap_drop = vec!["cap_net_raw".into()];
    assert!(shared::eligible(&dropped));
    let mut admin = one;
    admin.containers[0].security.cap_add = vec!["NET_ADMIN".into()];
    assert!(!shared::eligible(&admin));

    // Bay's own container on the bridge could not reach the runtime.
    let engine = Scripted::new(vec![]);
    let joined =
        Settings { shared_bridge: Some(SHARED_BRIDGE.into()), reach: Reach::SessionNetwork { join: Some("bay".into()) }, ..Settings::default() };
    assert_eq!(DockerApi::new(&engine, joined).shared_bridge_for(&spec(&["ship"])), None);
}

#[test]
fn podman_is_told_apart_from_docker() {
    assert!(is_docker_engine(
        &json!({ "Components": [{ "Name": "Engine" }, { "Name": "containerd" }], "Platform": { "Name": "Docker Engine - Community" } })
    ));
    assert!(!is_docker_engine(&json!({ "Components": [{ "Name": "Podman Engine" }], "Platform": { "Name": "linux/amd64/debian-12" } })));
    assert!(is_docker_engine(&json!({})));
}
