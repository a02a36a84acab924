//! Request bodies and answers of the Docker Engine API, as pure functions.

use serde_json::{Value, json};

use super::Reach;
use crate::spec::{ContainerSpec, ContainerState, ContainerStatus, SessionSpec, labels};

/// `POST /containers/create` for one container of a session: on the session
/// network (its name as DNS alias), the cargo mounted, hardened, resources
/// capped, the runtime port published on `publish_on` when given (an
/// address, and a fixed host port or `None` for a random one).
pub fn create_container(spec: &SessionSpec, c: &ContainerSpec, net: &str, publish_on: Option<(&str, Option<u16>)>) -> Value {
    let port = format!("{}/tcp", c.runtime_port);
    let s = &c.security;
    let mut all_labels = spec.labels.clone();
    all_labels.extend(c.labels.clone());
    all_labels.insert(labels::SESSION_ID.into(), spec.session_id.clone());
    all_labels.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    all_labels.insert(labels::RUNTIME_PORT.into(), c.runtime_port.to_string());
    // An absolute path is a cargo directory on the host (bind-mount mode,
    // host/src/driver/bind.rs); anything else names an engine volume.
    let mount_type = if spec.volume.starts_with('/') { "bind" } else { "volume" };
    let mut host = json!({
        "Mounts": [{ "Type": mount_type, "Source": spec.volume, "Target": spec.mount_path, "ReadOnly": false }],
        "Memory": c.memory_bytes,
        // No swap beyond the memory limit.
        "MemorySwap": c.memory_bytes,
        "NanoCpus": (c.cpus * 1e9) as i64,
        "PidsLimit": s.pids_limit,
        "NetworkMode": net,
        "CapDrop": s.cap_drop,
        "CapAdd": s.cap_add,
        "ReadonlyRootfs": s.read_only_rootfs,
        "Tmpfs": s.tmpfs,
    });
    if let Some((address, host_port)) = publish_on {
        let host_port = host_port.map(|p| p.to_string()).unwrap_or_default();
        host["PortBindings"] = json!({ &port: [{ "HostIp": address, "HostPort": host_port }] });
    }
    if s.no_new_privileges {
        host["SecurityOpt"] = json!(["no-new-privileges:true"]);
    }
    let mut body = json!({
        "Image": c.image,
        "Hostname": c.name,
        "Env": c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "Labels": all_labels,
        "ExposedPorts": { &port: {} },
        "HostConfig": host,
        "NetworkingConfig": { "EndpointsConfig": { net: { "Aliases": [c.name] } } },
    });
    if let Some(u) = &s.user {
        body["User"] = json!(u);
    }
    body
}

/// Where the runtime port of a started container answers (from `GET
/// /containers/{id}/json`).
pub fn endpoint(info: &Value, runtime_port: u16, net: &str, reach: &Reach) -> Option<String> {
    let settings = &info["NetworkSettings"];
    let ip_on = |n: &str| settings["Networks"][n]["IPAddress"].as_str().filter(|ip| !ip.is_empty()).map(str::to_owned);
    match reach {
        Reach::PublishedPort { host_address } => settings["Ports"][format!("{runtime_port}/tcp")]
            .as_array()
            .and_then(|b| b.iter().find_map(|b| b["HostPort"].as_str().filter(|p| !p.is_empty())))
            .map(|port| format!("http://{host_address}:{port}")),
        Reach::SessionNetwork { .. } => ip_on(net).map(|ip| format!("http://{ip}:{runtime_port}")),
        Reach::SharedNetwork { network } => ip_on(network).map(|ip| format!("http://{ip}:{runtime_port}")),
    }
}

/// A container's `State` object as Bay's status.
pub fn status(state: &Value) -> ContainerStatus {
    let finished_at = state["FinishedAt"]
        .as_str()
        // Never finished: Docker says 0001-01-01T00:00:00Z.
        .filter(|t| !t.is_empty() && !t.starts_with("0001-"))
        .map(String::from);
    let oom = state["OOMKilled"].as_bool().unwrap_or(false);
    ContainerStatus {
        state: ContainerState::parse(state["Status"].as_str().unwrap_or_default()),
        exit_code: state["ExitCode"].as_i64(),
        oom_killed: oom,
        finished_at,
    }
}

/// Demultiplexes a non-TTY log stream (8-byte frame headers) into text;
/// raw text (an engine that does not frame) passes through.
pub fn demux(raw: &[u8]) -> String {
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

/// `ship:latest` → (`ship`, `latest`); `registry:5000/a/b` → (`registry:5000/a/b`,
/// none); a digest reference is pulled as a whole.
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (image, None),
    }
}

/// The error a pull's progress stream ended with, if any.
pub fn pull_error(progress: &[u8]) -> Option<String> {
    String::from_utf8_lossy(progress)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["error"].as_str().map(String::from).or_else(|| v["errorDetail"]["message"].as_str().map(String::from)))
}

/// One line of a pull's progress as text (`abc123: Downloading 12.5MB/50MB`).
pub fn pull_progress(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let status = v["status"].as_str().or(v["error"].as_str())?;
    let id = v["id"].as_str().map(|i| format!("{i}: ")).unwrap_or_default();
    let progress = v["progress"].as_str().map(|p| format!(" {p}")).unwrap_or_default();
    Some(format!("{id}{status}{progress}"))
}
