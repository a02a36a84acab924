//! A session as a Pod, and a Pod's state as Bay's container states: pure
//! functions, no API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostAlias, LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use super::volumes::storage_size;
use crate::config::{K8sConfig, PullPolicy};
use crate::driver::{ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, DriverError, Labels, Security, SessionSpec, labels};

/// The Pod volume that carries the cargo (the session's PVC).
const WORKSPACE_VOLUME: &str = "workspace";
/// How long a runtime gets to shut down cleanly when its Pod is deleted.
pub(crate) const GRACE_SECONDS: u32 = 10;
/// The annotation holding each container's own labels (its name, runtime
/// port and the spec's per-container labels) as JSON, by container name: a
/// Pod has one set of labels, its containers none.
pub(crate) const CONTAINER_LABELS: &str = "bay.container_labels";
/// Waiting reasons that mean an image cannot be pulled (or, with
/// `imagePullPolicy: Never`, is not on the node).
const IMAGE_PULL_FAILURES: [&str; 4] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];
/// Waiting reasons that do not resolve by waiting (a Secret or ConfigMap
/// the container needs is missing, a user that cannot run the image...).
const CONFIG_FAILURES: [&str; 1] = ["CreateContainerConfigError"];

const MI: u64 = 1024 * 1024;

/// `<pod>/<container>`: the id of a session's container, the same in what
/// `launch_session` returns and what `session_status` and `list_sessions`
/// report, and computable from the Pod alone (the runtime's container id
/// does not exist until the kubelet starts it).
pub(crate) fn container_id(pod: &str, container: &str) -> String {
    format!("{pod}/{container}")
}

/// `http://<ip>:<port>`, with brackets for an IPv6 Pod IP.
pub(crate) fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') { format!("http://[{ip}]:{port}") } else { format!("http://{ip}:{port}") }
}

// ---------------------------------------------------------------------------
// Quantities

/// A CPU count as a Kubernetes quantity in millicores: 0.5 → `500m`, 1 → `1`.
pub(crate) fn quantity_cpu(cpus: f64) -> Quantity {
    millicores(((cpus * 1000.0).round() as u64).max(1))
}

fn millicores(m: u64) -> Quantity {
    Quantity(if m.is_multiple_of(1000) { (m / 1000).to_string() } else { format!("{m}m") })
}

/// Bytes as a Kubernetes memory quantity: whole MiB as `512Mi`, else plain
/// bytes. (Never a lowercase `m` suffix: in Kubernetes that means milli.)
pub(crate) fn quantity_memory(bytes: u64) -> Quantity {
    Quantity(if bytes.is_multiple_of(MI) { format!("{}Mi", bytes / MI) } else { bytes.to_string() })
}

/// The `size=` of Docker-style tmpfs options (`rw,size=512m,mode=1777`).
pub(crate) fn tmpfs_size(options: &str) -> Option<Quantity> {
    options.split(',').find_map(|o| o.trim().strip_prefix("size=")).and_then(|s| storage_size(s).ok()).map(Quantity)
}

/// Limits from the profile; requests: half the CPU (so a node can pack idle
/// sandboxes) and all of the memory (memory cannot be reclaimed from a kernel).
fn resources(c: &ContainerSpec) -> ResourceRequirements {
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if c.cpus > 0.0 {
        let m = ((c.cpus * 1000.0).round() as u64).max(1);
        limits.insert("cpu".to_owned(), quantity_cpu(c.cpus));
        requests.insert("cpu".to_owned(), millicores((m / 2).max(1)));
    }
    if c.memory_bytes > 0 {
        limits.insert("memory".to_owned(), quantity_memory(c.memory_bytes));
        requests.insert("memory".to_owned(), quantity_memory(c.memory_bytes));
    }
    ResourceRequirements { limits: Some(limits), requests: Some(requests), ..Default::default() }
}

// ---------------------------------------------------------------------------
// Hardening

/// `uid[:gid]` → numeric ids. Names cannot be expressed in a Pod spec (the
/// kubelet does not resolve them); they are ignored with a warning.
pub(crate) fn parse_user(user: Option<&str>) -> (Option<i64>, Option<i64>) {
    let Some(user) = user.filter(|u| !u.is_empty()) else { return (None, None) };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().ok();
    let gid = g.and_then(|g| g.parse().ok());
    if uid.is_none() || (g.is_some() && gid.is_none()) {
        tracing::warn!(user, "security.user is not numeric; Kubernetes needs uid[:gid] numbers, ignoring the name part");
    }
    (uid, gid)
}

/// Bay's container hardening in Kubernetes terms.
fn security_context(s: &Security) -> SecurityContext {
    // Kubernetes names capabilities without the `CAP_` prefix Docker accepts.
    let caps = |list: &[String]| -> Option<Vec<String>> {
        (!list.is_empty()).then(|| list.iter().map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_ascii_uppercase()).collect())
    };
    let (uid, gid) = parse_user(s.user.as_deref());
    let (add, drop) = (caps(&s.cap_add), caps(&s.cap_drop));
    SecurityContext {
        // Unset (the runtime's default) unless no_new_privileges asks for false.
        allow_privilege_escalation: s.no_new_privileges.then_some(false),
        read_only_root_filesystem: Some(s.read_only_rootfs),
        capabilities: (add.is_some() || drop.is_some()).then_some(Capabilities { add, drop }),
        run_as_user: uid,
        run_as_group: gid,
        ..Default::default()
    }
}

/// The Pod's `fsGroup`: the group the containers run as, when they agree on
/// one, so the kubelet makes the cargo's volume writable for it (a fresh PVC
/// is often owned by root). Only when the volume's root does not match
/// already (`OnRootMismatch`), so a large cargo is not re-chowned each time.
fn pod_security(containers: &[ContainerSpec]) -> Option<PodSecurityContext> {
    let gids: Vec<i64> = containers.iter().filter_map(|c| parse_user(c.security.user.as_deref()).1).collect();
    let first = *gids.first()?;
    gids.iter().all(|g| *g == first).then(|| PodSecurityContext {
        fs_group: Some(first),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        ..Default::default()
    })
}

fn pull_policy_name(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    }
}

// ---------------------------------------------------------------------------
// The Pod

/// The labels a container of the session carries on its own (Docker puts
/// them on the container; here they go into [`CONTAINER_LABELS`]).
fn own_labels(c: &ContainerSpec) -> Labels {
    let mut l = c.labels.clone();
    l.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    l.insert(labels::RUNTIME_PORT.into(), c.runtime_port.to_string());
    l
}

/// What a Pod spec cannot hold, as a clear error before the API server
/// answers 422: container names must be DNS-1123 labels, and since the
/// containers share one network namespace, their runtime ports must differ.
fn check(spec: &SessionSpec) -> Result<(), DriverError> {
    if spec.containers.is_empty() {
        return Err(DriverError::Engine(format!("session {} has no containers", spec.session_id)));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        if !names::is_dns_label(&c.name) {
            return Err(DriverError::Engine(format!(
                "container name {:?} is not valid on Kubernetes (lowercase a-z, 0-9 and '-', at most 63)",
                c.name
            )));
        }
        if let Some(other) = spec.containers[..i].iter().find(|o| o.name == c.name) {
            return Err(DriverError::Engine(format!("two containers of session {} are named {:?}", spec.session_id, other.name)));
        }
        if let Some(other) = spec.containers[..i].iter().find(|o| o.runtime_port == c.runtime_port) {
            return Err(DriverError::Engine(format!(
                "containers {:?} and {:?} both listen on port {}; the containers of a Pod share one network namespace",
                other.name, c.name, c.runtime_port
            )));
        }
    }
    Ok(())
}

/// The Pod of a session: one container per [`ContainerSpec`] (named after
/// it), all mounting the cargo's PVC at the mount path and sharing
/// localhost, labelled with the session's labels.
pub(crate) fn manifest(spec: &SessionSpec, config: &K8sConfig, pull: PullPolicy) -> Result<Pod, DriverError> {
    check(spec)?;
    let prefix = &config.label_prefix;
    let mut session_labels = spec.labels.clone();
    session_labels.insert(labels::SESSION_ID.into(), spec.session_id.clone());
    let (pod_labels, mut annotations) = names::to_k8s(prefix, &session_labels)?;
    let own: BTreeMap<&str, Labels> = spec.containers.iter().map(|c| (c.name.as_str(), own_labels(c))).collect();
    annotations.insert(names::to_k8s_key(prefix, CONTAINER_LABELS), serde_json::to_string(&own).unwrap_or_default());

    let mut volumes = vec![Volume {
        name: WORKSPACE_VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: spec.volume.clone(), read_only: None }),
        ..Default::default()
    }];
    let mut containers = Vec::new();
    for (index, c) in spec.containers.iter().enumerate() {
        let (container, tmpfs) = pod_container(index, c, spec, pull);
        containers.push(container);
        volumes.extend(tmpfs);
    }
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(names::pod_name(&spec.session_id)),
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            volumes: Some(volumes),
            // A runtime that exits stays exited: Bay notices and replaces the session.
            restart_policy: Some("Never".into()),
            // Siblings by name (`http://ship:8123`), as on a Docker session network.
            host_aliases: Some(vec![HostAlias { ip: "127.0.0.1".into(), hostnames: Some(names) }]),
            image_pull_secrets: (!config.image_pull_secrets.is_empty())
                .then(|| config.image_pull_secrets.iter().map(|s| LocalObjectReference { name: s.clone() }).collect()),
            // Sandboxes run untrusted code: no API token of the namespace's
            // default service account, no env vars describing its Services.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(GRACE_SECONDS.into()),
            security_context: pod_security(&spec.containers),
            ..Default::default()
        }),
        status: None,
    })
}

/// One container of the Pod, and the `emptyDir` volumes for its tmpfs mounts.
fn pod_container(index: usize, c: &ContainerSpec, spec: &SessionSpec, pull: PullPolicy) -> (Container, Vec<Volume>) {
    let mut mounts = vec![VolumeMount { name: WORKSPACE_VOLUME.into(), mount_path: spec.mount_path.clone(), ..Default::default() }];
    let mut volumes = Vec::new();
    // tmpfs → memory-backed emptyDir (it counts against the memory limit, as
    // tmpfs does). Mount options other than size= have no equivalent.
    for (n, (path, options)) in c.security.tmpfs.iter().enumerate() {
        let name = format!("tmpfs-{index}-{n}");
        volumes.push(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: tmpfs_size(options), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount { name, mount_path: path.clone(), ..Default::default() });
    }
    let container = Container {
        name: c.name.clone(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(pull_policy_name(pull).into()),
        env: Some(c.env.iter().map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }).collect()),
        ports: Some(vec![ContainerPort { container_port: c.runtime_port.into(), ..Default::default() }]),
        resources: Some(resources(c)),
        security_context: Some(security_context(&c.security)),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    (container, volumes)
}

// ---------------------------------------------------------------------------
// Reading a Pod

/// The session a Pod belongs to, by its `bay.session_id` label.
pub(crate) fn session_of(pod: &Pod, prefix: &str) -> Option<String> {
    let l = names::from_k8s(prefix, pod.metadata.labels.as_ref(), pod.metadata.annotations.as_ref());
    l.get(labels::SESSION_ID).cloned()
}

/// The names of the Pod's containers, in spec order.
pub(crate) fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect()
}

/// Each container of the Pod as Bay sees it, in spec order.
pub(crate) fn container_infos(pod: &Pod) -> Vec<ContainerInfo> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    container_names(pod)
        .into_iter()
        .map(|name| ContainerInfo { id: container_id(pod_name, &name), status: container_status(pod, &name), name })
        .collect()
}

/// Each container with the labels it would carry on Docker: the Pod's, and
/// its own from [`CONTAINER_LABELS`].
pub(crate) fn labelled_containers(pod: &Pod, prefix: &str) -> Vec<(Labels, ContainerInfo)> {
    let pod_labels = names::from_k8s(prefix, pod.metadata.labels.as_ref(), pod.metadata.annotations.as_ref());
    let own: BTreeMap<String, Labels> = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&names::to_k8s_key(prefix, CONTAINER_LABELS)))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    container_infos(pod)
        .into_iter()
        .map(|info| {
            let mut l = pod_labels.clone();
            l.extend(own.get(&info.name).cloned().unwrap_or_default());
            (l, info)
        })
        .collect()
}

/// One container's state, from its status in the Pod (or the Pod's phase
/// when the kubelet has not reported it yet).
pub(crate) fn container_status(pod: &Pod, container: &str) -> ContainerStatus {
    let status = pod.status.as_ref();
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let reported = status.and_then(|s| s.container_statuses.as_ref()).and_then(|all| all.iter().find(|s| s.name == container));
    let state = reported.and_then(|s| s.state.as_ref());
    let mut out = ContainerStatus { state: ContainerState::Created, exit_code: None, oom_killed: false, finished_at: None };
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        out.state = ContainerState::Exited;
        out.exit_code = Some(t.exit_code.into());
        out.oom_killed = t.reason.as_deref() == Some("OOMKilled");
        // RFC 3339, as Bay reads it (`crate::driver::finished_micros`).
        out.finished_at = t.finished_at.as_ref().map(|time| time.0.to_string());
    } else if terminating {
        out.state = ContainerState::Removing;
    } else if state.is_some_and(|s| s.running.is_some()) {
        out.state = ContainerState::Running;
    } else if matches!(status.and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded")) {
        // Evicted or otherwise stopped before the container reported anything.
        out.state = ContainerState::Exited;
    }
    out
}

/// Why a starting Pod will not run, if it is known already: an image that
/// cannot be pulled (`ImageMissing`), a container that stopped, a failed
/// Pod, a configuration the kubelet rejects.
pub(crate) fn start_failure(pod: &Pod) -> Option<DriverError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(DriverError::Engine(format!("pod {name} is being deleted")));
    }
    let status = pod.status.as_ref()?;
    for s in status.container_statuses.iter().flatten() {
        let state = s.state.as_ref();
        if let Some(w) = state.and_then(|st| st.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            let message = w.message.as_deref().unwrap_or_default();
            if IMAGE_PULL_FAILURES.contains(&reason) {
                let image = pod
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.containers.iter().find(|c| c.name == s.name))
                    .and_then(|c| c.image.clone())
                    .unwrap_or_else(|| s.image.clone());
                return Some(DriverError::ImageMissing(format!("{image} ({reason}: {message})")));
            }
            if CONFIG_FAILURES.contains(&reason) {
                return Some(DriverError::Engine(format!("pod {name}: container {}: {reason}: {message}", s.name)));
            }
        }
        if state.and_then(|st| st.terminated.as_ref()).is_some() {
            return Some(DriverError::Engine(format!(
                "pod {name}: container {} stopped during start ({}); {}",
                s.name,
                container_status(pod, &s.name).describe(),
                describe(pod)
            )));
        }
    }
    if let Some(phase @ ("Failed" | "Succeeded")) = status.phase.as_deref() {
        return Some(DriverError::Engine(format!("pod {name} {}: {}", phase.to_lowercase(), describe(pod))));
    }
    None
}

/// The Pod IP once the Pod runs with every container running.
pub(crate) fn running_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let all_running = container_names(pod).iter().all(|c| container_status(pod, c).state == ContainerState::Running);
    (status.phase.as_deref() == Some("Running") && all_running).then(|| ip.to_owned())
}

/// Phase, reason, unmet conditions (`Unschedulable: 0/3 nodes are
/// available…`) and each container's waiting/terminated reason, for errors.
pub(crate) fn describe(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else { return "no status yet".into() };
    let mut parts = vec![format!("phase {}", status.phase.as_deref().unwrap_or("unknown"))];
    parts.extend(status.reason.clone());
    parts.extend(status.message.clone());
    for c in status.conditions.iter().flatten().filter(|c| c.status == "False") {
        if let Some(message) = &c.message {
            parts.push(format!("{}: {message}", c.reason.as_deref().unwrap_or(&c.type_)));
        }
    }
    for s in status.container_statuses.iter().flatten() {
        let state = s.state.as_ref();
        if let Some(w) = state.and_then(|st| st.waiting.as_ref()) {
            parts.push(format!("{}: {} {}", s.name, w.reason.as_deref().unwrap_or("waiting"), w.message.as_deref().unwrap_or("")));
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            parts.push(format!("{}: exit code {} {}", s.name, t.exit_code, t.reason.as_deref().unwrap_or("")));
        }
    }
    parts.iter().map(|p| p.trim()).collect::<Vec<_>>().join("; ")
}
