//! A test plugin: the Docker-API driver extension as it was written against
//! `bay:plugin@0.1` (`wit/bay-plugin-0.1/driver.wit`, container-shaped),
//! kept frozen so a test can prove that a 0.1 driver still loads and serves
//! sandboxes through the host's shim (`host/src/plugins/v0_1/driver.rs`).
//! Only its name changed (`docker-api-0.1`, so it can be installed beside the
//! current `docker-api` driver). New drivers use the SDK (`plugins/sdk`) and
//! `bay:plugin@0.2`; see `plugins/docker-api-driver`.
//!
//! It speaks the Docker Engine REST API: a Docker engine (local socket or
//! remote TCP) or Podman's API service (`podman system service`).
//!
//! It does what the built-in Docker driver did at the time: one
//! container per runtime with the cargo volume mounted, the runtime port
//! published on `host_address` (a random host port), hardening from the
//! profile, session networks with DNS aliases. The host binds every call to
//! the engine endpoint the operator configured; paths here are relative to it.
//!
//! Settings (`driver.plugin.settings`): `api_version` (default `1.41`, what
//! Docker 20.10+ and Podman 3+ serve), `host_address` (default `127.0.0.1`).

use serde_json::{Value, json};

wit_bindgen::generate!({
    world: "driver-extension",
    path: "../../wit/bay-plugin-0.1",
});

use bay::plugin::http::{self, Method, Request, RequestBody};
use exports::bay::plugin::driver::{ContainerSpec, ContainerState, ContainerStatus, DriverError, DriverInfo, Guest, Instance, Labels, Named};

struct DockerApi;

/// Seconds a runtime gets to shut down cleanly before it is killed.
const STOP_GRACE: u32 = 5;

fn setting(key: &str, default: &str) -> String {
    bay::plugin::settings::get(key).unwrap_or_else(|| default.to_owned())
}

fn path(p: &str) -> String {
    format!("/v{}{p}", setting("api_version", "1.41"))
}

/// Percent-encodes one path segment (names and ids are [A-Za-z0-9_.-] in
/// practice; anything else is escaped rather than trusted).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Result<Value, DriverError> {
        serde_json::from_slice(&self.body).map_err(|e| DriverError::Engine(format!("unexpected engine answer: {e}")))
    }

    fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.chars().take(300).collect())
    }

    /// The engine's error for a failed call (404 → not-found).
    fn error(&self, what: &str) -> DriverError {
        match self.status {
            404 => DriverError::NotFound(format!("{what}: {}", self.message())),
            s => DriverError::Engine(format!("{what}: engine answered {s}: {}", self.message())),
        }
    }

    fn expect(self, what: &str, ok: &[u16]) -> Result<Reply, DriverError> {
        if ok.contains(&self.status) { Ok(self) } else { Err(self.error(what)) }
    }
}

fn send(method: Method, p: &str, query: &[(&str, String)], body: Option<Value>, timeout_s: u32) -> Result<Reply, DriverError> {
    let req = Request {
        method,
        url: path(p),
        query: query.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        headers: vec![],
        body: body.map(|b| RequestBody::Json(b.to_string())).unwrap_or(RequestBody::Empty),
        timeout_ms: Some(timeout_s * 1000),
    };
    let resp = http::send(req).map_err(|e| DriverError::Engine(format!("engine request {p} failed: {e:?}")))?;
    Ok(Reply { status: resp.status, body: resp.body })
}

fn get(p: &str, query: &[(&str, String)]) -> Result<Reply, DriverError> {
    send(Method::Get, p, query, None, 30)
}

fn label_filter(labels: &Labels) -> (&'static str, String) {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ("filters", json!({ "label": l }).to_string())
}

fn labels_of(v: &Value) -> Labels {
    v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()).unwrap_or_default()
}

fn map(pairs: &[(String, String)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

fn create_body(spec: &ContainerSpec) -> Value {
    let port = format!("{}/tcp", spec.runtime_port);
    let s = &spec.security;
    let mut host = json!({
        "Mounts": [{ "Type": "volume", "Source": spec.volume, "Target": spec.mount_path, "ReadOnly": false }],
        "Memory": spec.memory_bytes,
        "MemorySwap": spec.memory_bytes,
        "NanoCpus": (spec.cpus * 1e9) as i64,
        "PidsLimit": s.pids_limit,
        "PortBindings": { &port: [{ "HostIp": setting("host_address", "127.0.0.1"), "HostPort": "" }] },
        "CapDrop": s.cap_drop,
        "CapAdd": s.cap_add,
        "ReadonlyRootfs": s.read_only_rootfs,
        "Tmpfs": map(&s.tmpfs),
    });
    if s.no_new_privileges {
        host["SecurityOpt"] = json!(["no-new-privileges:true"]);
    }
    let mut body = json!({
        "Image": spec.image,
        "Env": spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "Labels": map(&spec.labels),
        "ExposedPorts": { &port: {} },
        "HostConfig": host,
    });
    if let Some(h) = &spec.hostname {
        body["Hostname"] = json!(h);
    }
    if let Some(u) = &s.user {
        body["User"] = json!(u);
    }
    if let Some(net) = &spec.network {
        body["HostConfig"]["NetworkMode"] = json!(net);
        body["NetworkingConfig"] = json!({ "EndpointsConfig": { net: { "Aliases": spec.hostname.iter().collect::<Vec<_>>() } } });
    }
    body
}

/// Demultiplexes a non-TTY log stream (8-byte frame headers) into text.
fn demux(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 && rest[0] <= 2 && rest[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

impl Guest for DockerApi {
    fn describe() -> DriverInfo {
        DriverInfo { name: "docker-api-0.1".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn create_volume(name: String, labels: Labels) -> Result<String, DriverError> {
        let r = send(Method::Post, "/volumes/create", &[], Some(json!({ "Name": name, "Labels": map(&labels) })), 30)?
            .expect("create volume", &[200, 201])?;
        Ok(r.json()?["Name"].as_str().unwrap_or(&name).to_owned())
    }

    fn delete_volume(driver_ref: String) -> Result<(), DriverError> {
        send(Method::Delete, &format!("/volumes/{}", seg(&driver_ref)), &[("force", "true".into())], None, 30)?
            .expect("delete volume", &[204, 404])
            .map(drop)
    }

    fn volume_exists(driver_ref: String) -> Result<bool, DriverError> {
        let r = get(&format!("/volumes/{}", seg(&driver_ref)), &[])?.expect("inspect volume", &[200, 404])?;
        Ok(r.status == 200)
    }

    fn list_volumes(labels: Labels) -> Result<Vec<Named>, DriverError> {
        let r = get("/volumes", &[label_filter(&labels)])?.expect("list volumes", &[200])?.json()?;
        Ok(r["Volumes"]
            .as_array()
            .map(|v| v.iter().map(|v| Named { name: v["Name"].as_str().unwrap_or_default().into(), labels: labels_of(&v["Labels"]) }).collect())
            .unwrap_or_default())
    }

    fn create_container(spec: ContainerSpec) -> Result<String, DriverError> {
        let r = send(Method::Post, "/containers/create", &[("name", spec.name.clone())], Some(create_body(&spec)), 60)?;
        match r.status {
            200 | 201 => Ok(r.json()?["Id"].as_str().unwrap_or_default().to_owned()),
            404 => Err(DriverError::ImageMissing(spec.image)),
            _ => Err(r.error("create container")),
        }
    }

    fn start_container(id: String, runtime_port: u16) -> Result<String, DriverError> {
        send(Method::Post, &format!("/containers/{}/start", seg(&id)), &[], None, 60)?.expect("start container", &[204, 304])?;
        let info = get(&format!("/containers/{}/json", seg(&id)), &[])?.expect("inspect container", &[200])?.json()?;
        let port = info["NetworkSettings"]["Ports"][format!("{runtime_port}/tcp")]
            .as_array()
            .and_then(|b| b.iter().find_map(|b| b["HostPort"].as_str().filter(|p| !p.is_empty())))
            .ok_or_else(|| DriverError::Engine(format!("container {id} has no published port for {runtime_port}/tcp")))?;
        Ok(format!("http://{}:{port}", setting("host_address", "127.0.0.1")))
    }

    fn destroy_container(id: String) -> Result<(), DriverError> {
        // Stop first (SIGTERM, then SIGKILL after the grace period) so the
        // runtime can flush state, then remove.
        let stop = send(Method::Post, &format!("/containers/{}/stop", seg(&id)), &[("t", STOP_GRACE.to_string())], None, STOP_GRACE + 30)?;
        if stop.status == 404 {
            return Ok(());
        }
        send(Method::Delete, &format!("/containers/{}", seg(&id)), &[("force", "true".into())], None, 60)?
            .expect("remove container", &[204, 404, 409])
            .map(drop)
    }

    fn inspect_container(id: String) -> Result<ContainerStatus, DriverError> {
        let r = get(&format!("/containers/{}/json", seg(&id)), &[])?;
        if r.status == 404 {
            return Ok(ContainerStatus { state: ContainerState::NotFound, exit_code: None, oom_killed: false, finished_at: None });
        }
        let state = r.expect("inspect container", &[200])?.json()?["State"].take();
        Ok(ContainerStatus {
            state: match state["Status"].as_str().unwrap_or_default() {
                "running" | "paused" | "restarting" => ContainerState::Running,
                "created" => ContainerState::Created,
                "removing" => ContainerState::Removing,
                _ => ContainerState::Exited,
            },
            exit_code: state["ExitCode"].as_i64(),
            oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
            finished_at: state["FinishedAt"].as_str().map(String::from),
        })
    }

    fn container_logs(id: String, lines: u32) -> Result<String, DriverError> {
        let q = [("stdout", "1".into()), ("stderr", "1".into()), ("tail", lines.to_string())];
        let r = get(&format!("/containers/{}/logs", seg(&id)), &q)?;
        match r.status {
            200 => Ok(demux(&r.body)),
            404 => Ok(String::new()),
            _ => Err(r.error("container logs")),
        }
    }

    fn list_containers(labels: Labels) -> Result<Vec<Instance>, DriverError> {
        let r = get("/containers/json", &[("all", "1".into()), label_filter(&labels)])?.expect("list containers", &[200])?.json()?;
        Ok(r.as_array()
            .map(|list| {
                list.iter()
                    .map(|c| Instance {
                        id: c["Id"].as_str().unwrap_or_default().into(),
                        name: c["Names"][0].as_str().unwrap_or_default().trim_start_matches('/').into(),
                        labels: labels_of(&c["Labels"]),
                        state: c["State"].as_str().unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn create_network(name: String, labels: Labels) -> Result<(), DriverError> {
        let body = json!({ "Name": name, "Driver": "bridge", "Labels": map(&labels), "CheckDuplicate": true });
        send(Method::Post, "/networks/create", &[], Some(body), 30)?.expect("create network", &[200, 201, 409]).map(drop)
    }

    fn remove_network(name: String) -> Result<(), DriverError> {
        send(Method::Delete, &format!("/networks/{}", seg(&name)), &[], None, 30)?.expect("remove network", &[200, 204, 404]).map(drop)
    }

    fn list_networks(labels: Labels) -> Result<Vec<Named>, DriverError> {
        let r = get("/networks", &[label_filter(&labels)])?.expect("list networks", &[200])?.json()?;
        Ok(r.as_array()
            .map(|v| v.iter().map(|n| Named { name: n["Name"].as_str().unwrap_or_default().into(), labels: labels_of(&n["Labels"]) }).collect())
            .unwrap_or_default())
    }
}

export!(DockerApi);
