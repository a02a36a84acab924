//! The Kubernetes driver (kube-rs): sessions are Pods, cargos are PVCs.
//!
//! Bay's session code thinks in containers: it calls `create_container` for
//! every container of a session (in parallel), then `start_container` for
//! each, and addresses each container by the id `create_container` returned.
//! Kubernetes schedules Pods, not containers, and a Pod's containers cannot be
//! added one by one. So this driver maps a session onto one Pod:
//!
//! - `create_container` makes no API call. It records the launch in a
//!   per-session plan and returns the id `<pod>/<container>`; the Pod is named
//!   `bay-<session_id>` (from the launch's `bay.session_id` label) and the
//!   container after the profile container (`hostname`), `ship` by default.
//! - The first `start_container` of a session creates the Pod with every
//!   recorded container (once, even when the starts run concurrently); each
//!   start then polls the Pod until it runs and returns
//!   `http://<podIP>:<runtime_port>`. No Service is created: Bay talks to the
//!   Pod IP directly, so Bay must run inside the cluster network (or route to it).
//! - The containers of a Pod share one network namespace; a `hostAliases`
//!   entry maps every container name to 127.0.0.1, so a sibling is reached by
//!   name (`http://ship:8123`) exactly as on a Docker session network. The
//!   session network calls are therefore no-ops.
//! - `destroy_container` deletes the whole Pod and waits for it to be gone
//!   (PVC protection keeps a PVC alive while a Pod uses it); destroying the
//!   other containers of that Pod afterwards finds nothing and succeeds.
//! - Cargo volumes are `ReadWriteOnce` PVCs of `default_storage_size`.
//!
//! Labels keep Bay's keys (`bay.sandbox_id`, …) with the configured
//! `label_prefix` in place of `bay`; they are mapped back on the way in, so
//! reconcile and GC see the same keys as with Docker.
//!
//! Not mapped: `pids_limit` (Kubernetes sets the PID limit per node, in the
//! kubelet), and exit events (`container_exits` is `None`; a dead runtime is
//! found by the next call or by GC).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostAlias, LocalObjectReference, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodStatus, ResourceRequirements, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{ContainerLaunch, ContainerState, ContainerStatus, Driver, DriverError, Labels, Named, RuntimeInstance, labels};
use crate::config::{K8sConfig, PullPolicy};

/// The Pod volume that carries the cargo (the session's PVC).
const WORKSPACE_VOLUME: &str = "workspace";
/// The container name of a single-container session (no `hostname`).
const DEFAULT_CONTAINER: &str = "ship";
/// How long a runtime gets to shut down cleanly when its Pod is deleted.
const DELETE_GRACE_SECONDS: u32 = 10;
/// How long `destroy_container` waits for a deleted Pod to disappear.
const DELETE_WAIT: Duration = Duration::from_secs(30);
/// Ship hands profile env to its shell through `/workspace/.bay_env.sh` when
/// this variable is set (Docker). Here the variables are set on the container
/// itself, so the variable is left out, as Shipyard Neo's K8s driver does.
const PROFILE_ENV_VAR: &str = "BAY_PROFILE_ENV";
/// Waiting reasons that mean the image cannot be pulled (or, with
/// `imagePullPolicy: Never`, is not on the node).
const IMAGE_PULL_FAILURES: [&str; 4] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

const MI: u64 = 1024 * 1024;

/// Installs rustls' `ring` provider as the process default. kube builds its
/// TLS config from the process default; with more than one provider compiled
/// in, rustls cannot choose one and client creation panics. Installing twice
/// is harmless (the second attempt's error is ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The containers of one session, recorded by `create_container` until the
/// first `start_container` creates the Pod.
struct SessionPlan {
    launches: Vec<ContainerLaunch>,
    /// Set once the Pod is created; concurrent starts wait on it.
    created: Arc<OnceCell<()>>,
}

pub struct KubernetesDriver {
    pods: Api<Pod>,
    pvcs: Api<PersistentVolumeClaim>,
    config: K8sConfig,
    pull_policy: PullPolicy,
    /// Session plans by session id.
    plans: Mutex<HashMap<String, SessionPlan>>,
    /// Pause between two reads of a starting or terminating Pod.
    poll_interval: Duration,
}

impl KubernetesDriver {
    /// Connects with the kubeconfig at `config.kubeconfig` if set, else the
    /// inferred configuration (in-cluster service account, or `~/.kube/config`),
    /// and checks that the API server answers, so a wrong setup fails at
    /// start rather than at the first sandbox.
    pub async fn connect(config: &K8sConfig, pull_policy: PullPolicy) -> anyhow::Result<KubernetesDriver> {
        install_crypto_provider();
        storage_size(&config.default_storage_size).map_err(|e| anyhow::anyhow!("driver.k8s.default_storage_size: {e}"))?;
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| anyhow::anyhow!("cannot read the kubeconfig {path}: {e}"))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let server = kube_config.cluster_url.to_string();
        let client = kube::Client::try_from(kube_config)?;
        let version = client.apiserver_version().await.map_err(|e| anyhow::anyhow!("cannot reach the Kubernetes API server at {server}: {e}"))?;
        tracing::info!(server = %server, version = %version.git_version, namespace = %config.namespace, "Kubernetes driver connected");
        Ok(Self::with_client(client, config, pull_policy))
    }

    /// A driver on an existing client (tests pass one on kube's mock service).
    pub fn with_client(client: kube::Client, config: &K8sConfig, pull_policy: PullPolicy) -> KubernetesDriver {
        KubernetesDriver {
            pods: Api::namespaced(client.clone(), &config.namespace),
            pvcs: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            pull_policy,
            plans: Mutex::new(HashMap::new()),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// Creates the session's Pod from its plan, once. Without a plan (Bay
    /// restarted between create and start) the Pod is expected to exist.
    async fn ensure_pod(&self, session_id: &str, pod_name: &str) -> Result<(), DriverError> {
        let plan = {
            let plans = self.plans.lock().expect("plans");
            plans.get(session_id).map(|p| (p.created.clone(), p.launches.clone()))
        };
        let Some((created, launches)) = plan else { return Ok(()) };
        created
            .get_or_try_init(|| async {
                let pod = pod_manifest(pod_name, &launches, &self.config, self.pull_policy)?;
                match self.pods.create(&PostParams::default(), &pod).await {
                    Ok(_) => Ok(()),
                    // Created by an earlier attempt of this same session: adopt it.
                    Err(e) if api_code(&e) == Some(409) => Ok(()),
                    Err(e) => Err(engine(e)),
                }
            })
            .await?;
        Ok(())
    }

    /// Polls the Pod until it runs with an IP; fails early when it cannot.
    async fn wait_running(&self, pod_name: &str, runtime_port: u16) -> Result<String, DriverError> {
        let timeout = Duration::from_secs(self.config.pod_startup_timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self.pods.get(pod_name).await.map_err(engine)?;
            let status = pod.status.clone().unwrap_or_default();
            if let Some(image) = image_pull_failure(&pod) {
                return Err(DriverError::ImageMissing(image));
            }
            match status.phase.as_deref() {
                Some("Running") => {
                    if let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
                        return Ok(endpoint(ip, runtime_port));
                    }
                }
                Some(phase @ ("Failed" | "Succeeded")) => {
                    return Err(DriverError::Engine(format!("pod {pod_name} {}: {}", phase.to_lowercase(), describe(&status))));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Engine(format!("pod {pod_name} did not start within {} s ({})", timeout.as_secs(), describe(&status))));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Polls until the Pod is gone (404).
    async fn wait_gone(&self, pod_name: &str) -> Result<(), DriverError> {
        let deadline = Instant::now() + DELETE_WAIT;
        loop {
            match self.pods.get(pod_name).await {
                Err(e) if api_code(&e) == Some(404) => return Ok(()),
                Err(e) => return Err(engine(e)),
                Ok(_) if Instant::now() >= deadline => {
                    return Err(DriverError::Engine(format!("pod {pod_name} is still terminating after {} s", DELETE_WAIT.as_secs())));
                }
                Ok(_) => tokio::time::sleep(self.poll_interval).await,
            }
        }
    }

    fn selector(&self, labels: &Labels) -> String {
        labels.iter().map(|(k, v)| format!("{}={v}", to_k8s_key(&self.config.label_prefix, k))).collect::<Vec<_>>().join(",")
    }

    fn bay_labels(&self, k8s: Option<&BTreeMap<String, String>>) -> Labels {
        k8s.into_iter().flatten().map(|(k, v)| (from_k8s_key(&self.config.label_prefix, k), v.clone())).collect()
    }
}

// ---------------------------------------------------------------------------
// Names, labels, errors

/// The Pod of a session: `bay-<session_id>`.
fn pod_name(session_id: &str) -> String {
    format!("bay-{session_id}")
}

/// The session id of a Pod name.
fn session_of(pod_name: &str) -> &str {
    pod_name.strip_prefix("bay-").unwrap_or(pod_name)
}

/// The Pod's name for a container: the profile container name, else `ship`.
fn container_name(launch: &ContainerLaunch) -> String {
    launch.hostname.clone().unwrap_or_else(|| DEFAULT_CONTAINER.to_owned())
}

/// `<pod>/<container>` → (pod, container); a bare Pod name means its first container.
fn split_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once('/') {
        Some((pod, container)) => (pod, Some(container)),
        None => (id, None),
    }
}

/// `bay.x` → `<prefix>.x`; other keys unchanged.
fn to_k8s_key(prefix: &str, key: &str) -> String {
    match key.strip_prefix("bay.") {
        Some(rest) if prefix != "bay" => format!("{prefix}.{rest}"),
        _ => key.to_owned(),
    }
}

/// `<prefix>.x` → `bay.x`; other keys unchanged.
fn from_k8s_key(prefix: &str, key: &str) -> String {
    match key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')) {
        Some(rest) => format!("bay.{rest}"),
        None => key.to_owned(),
    }
}

fn k8s_labels(prefix: &str, labels: &Labels) -> BTreeMap<String, String> {
    labels.iter().map(|(k, v)| (to_k8s_key(prefix, k), v.clone())).collect()
}

/// The HTTP status of an API error, if the API server answered.
fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A kube error as a driver error: 404 is `NotFound`, the rest `Engine`.
fn engine(err: kube::Error) -> DriverError {
    match err {
        kube::Error::Api(status) if status.code == 404 => DriverError::NotFound(status.message),
        kube::Error::Api(status) => DriverError::Engine(format!("Kubernetes API {} {}: {}", status.code, status.reason, status.message)),
        other => DriverError::Engine(other.to_string()),
    }
}

/// `http://<ip>:<port>`, with brackets for an IPv6 Pod IP.
fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') { format!("http://[{ip}]:{port}") } else { format!("http://{ip}:{port}") }
}

// ---------------------------------------------------------------------------
// Quantities

/// A CPU count as a Kubernetes quantity in millicores: 0.5 → `500m`, 1 → `1`.
fn quantity_cpu(cpus: f64) -> Quantity {
    millicores(((cpus * 1000.0).round() as u64).max(1))
}

fn millicores(m: u64) -> Quantity {
    Quantity(if m % 1000 == 0 { (m / 1000).to_string() } else { format!("{m}m") })
}

/// Bytes as a Kubernetes memory quantity: whole MiB as `512Mi`, else plain
/// bytes. (Never a lowercase `m` suffix: in Kubernetes that means milli.)
fn quantity_memory(bytes: u64) -> Quantity {
    Quantity(if bytes % MI == 0 { format!("{}Mi", bytes / MI) } else { bytes.to_string() })
}

/// A storage size as a Kubernetes quantity. Kubernetes suffixes (`1Gi`,
/// `500M`) and plain bytes pass through; Shipyard's and Docker's binary
/// shorthands `1g`/`512m`/`100k` (optionally with `b`) become `1Gi`/`512Mi`/
/// `100Ki` — taken literally, Kubernetes would read `512m` as 0.512 bytes.
fn storage_size(size: &str) -> Result<String, String> {
    let size = size.trim();
    let digits = size.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(size.len());
    let (number, suffix) = size.split_at(digits);
    if number.is_empty() || number.parse::<f64>().is_err() {
        return Err(format!("invalid size {size:?}"));
    }
    let unit = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "M" | "G" | "T" | "P" => return Ok(size.to_owned()),
        s => s.strip_suffix(['b', 'B']).unwrap_or(s).to_ascii_lowercase(),
    };
    let binary = match unit.as_str() {
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        "t" => "Ti",
        _ => return Err(format!("invalid size {size:?} (use e.g. 1Gi, 512Mi, 1g, 512m)")),
    };
    Ok(format!("{number}{binary}"))
}

/// The `size=` of Docker-style tmpfs options (`rw,size=512m,mode=1777`).
fn tmpfs_size(options: &str) -> Option<Quantity> {
    options.split(',').find_map(|o| o.trim().strip_prefix("size=")).and_then(|s| storage_size(s).ok()).map(Quantity)
}

// ---------------------------------------------------------------------------
// Manifests

/// The Pod of a session: one container per launch, sharing the cargo PVC
/// (`workspace`) and localhost.
fn pod_manifest(name: &str, launches: &[ContainerLaunch], config: &K8sConfig, pull_policy: PullPolicy) -> Result<Pod, DriverError> {
    let first = launches.first().ok_or_else(|| DriverError::Engine(format!("pod {name} has no containers")))?;
    if let Some(other) = launches.iter().find(|l| l.volume != first.volume) {
        return Err(DriverError::Engine(format!("the containers of pod {name} use different volumes ({} and {})", first.volume, other.volume)));
    }
    let mut volumes = vec![Volume {
        name: WORKSPACE_VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: first.volume.clone(), read_only: None }),
        ..Default::default()
    }];
    let mut containers = Vec::new();
    for (index, launch) in launches.iter().enumerate() {
        let (container, tmpfs) = pod_container(index, launch, pull_policy);
        containers.push(container);
        volumes.extend(tmpfs);
    }
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(k8s_labels(&config.label_prefix, &common_labels(launches))),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            volumes: Some(volumes),
            restart_policy: Some("Never".into()),
            // Siblings by name, as on a Docker session network.
            host_aliases: Some(vec![HostAlias { ip: "127.0.0.1".into(), hostnames: Some(names) }]),
            image_pull_secrets: (!config.image_pull_secrets.is_empty())
                .then(|| config.image_pull_secrets.iter().map(|s| LocalObjectReference { name: s.clone() }).collect()),
            // Sandboxes run untrusted code: no API token of the namespace's
            // default service account, no env vars describing its Services.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(DELETE_GRACE_SECONDS.into()),
            ..Default::default()
        }),
        status: None,
    })
}

/// The labels every launch of the Pod has with the same value (the
/// per-container ones, like `bay.container_name`, differ between siblings).
fn common_labels(launches: &[ContainerLaunch]) -> Labels {
    let mut common = launches.first().map(|l| l.labels.clone()).unwrap_or_default();
    common.retain(|k, v| launches.iter().all(|l| l.labels.get(k) == Some(v)));
    common
}

/// One container of the Pod, and the `emptyDir` volumes for its tmpfs mounts.
fn pod_container(index: usize, launch: &ContainerLaunch, pull_policy: PullPolicy) -> (Container, Vec<Volume>) {
    let mut mounts = vec![VolumeMount { name: WORKSPACE_VOLUME.into(), mount_path: launch.mount_path.clone(), ..Default::default() }];
    let mut volumes = Vec::new();
    // tmpfs → memory-backed emptyDir (it counts against the memory limit, as tmpfs does).
    for (n, (path, options)) in launch.security.tmpfs.iter().enumerate() {
        let name = format!("tmpfs-{index}-{n}");
        volumes.push(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: tmpfs_size(options), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount { name, mount_path: path.clone(), ..Default::default() });
    }
    let container = Container {
        name: container_name(launch),
        image: Some(launch.image.clone()),
        image_pull_policy: Some(pull_policy_name(pull_policy).into()),
        env: Some(
            launch
                .env
                .iter()
                .filter(|(k, _)| k != PROFILE_ENV_VAR)
                .map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() })
                .collect(),
        ),
        ports: Some(vec![ContainerPort { container_port: launch.runtime_port.into(), ..Default::default() }]),
        resources: Some(resources(launch)),
        security_context: Some(security_context(&launch.security)),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    (container, volumes)
}

fn pull_policy_name(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    }
}

/// Limits from the profile; requests: half the CPU (so a node can pack idle
/// sandboxes) and all of the memory (memory cannot be reclaimed from a kernel).
fn resources(launch: &ContainerLaunch) -> ResourceRequirements {
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if launch.cpus > 0.0 {
        let m = ((launch.cpus * 1000.0).round() as u64).max(1);
        limits.insert("cpu".to_owned(), quantity_cpu(launch.cpus));
        requests.insert("cpu".to_owned(), millicores((m / 2).max(1)));
    }
    if launch.memory_bytes > 0 {
        limits.insert("memory".to_owned(), quantity_memory(launch.memory_bytes));
        requests.insert("memory".to_owned(), quantity_memory(launch.memory_bytes));
    }
    ResourceRequirements { limits: Some(limits), requests: Some(requests), ..Default::default() }
}

/// Bay's container hardening in Kubernetes terms.
fn security_context(security: &crate::config::ContainerSecurity) -> SecurityContext {
    // Kubernetes names capabilities without the `CAP_` prefix Docker accepts.
    let caps = |list: &[String]| -> Option<Vec<String>> {
        (!list.is_empty()).then(|| list.iter().map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_owned()).collect())
    };
    let (uid, gid) = parse_user(security.user.as_deref());
    SecurityContext {
        allow_privilege_escalation: Some(!security.no_new_privileges),
        read_only_root_filesystem: Some(security.read_only_rootfs),
        capabilities: Some(Capabilities { add: caps(&security.cap_add), drop: caps(&security.cap_drop) }),
        run_as_user: uid,
        run_as_group: gid,
        ..Default::default()
    }
}

/// `uid[:gid]` → numeric ids. Names cannot be expressed in a Pod spec (the
/// kubelet does not resolve them); they are ignored with a warning.
fn parse_user(user: Option<&str>) -> (Option<i64>, Option<i64>) {
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

/// The cargo's PVC.
fn pvc(name: &str, labels: &Labels, config: &K8sConfig) -> Result<PersistentVolumeClaim, DriverError> {
    let size = storage_size(&config.default_storage_size).map_err(DriverError::Engine)?;
    Ok(PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(name.to_owned()), labels: Some(k8s_labels(&config.label_prefix, labels)), ..Default::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
                ..Default::default()
            }),
            storage_class_name: config.storage_class.clone(),
            ..Default::default()
        }),
        status: None,
    })
}

// ---------------------------------------------------------------------------
// Reading Pod status

/// The image of a container the kubelet cannot pull, if any.
fn image_pull_failure(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let failed = statuses.iter().find(|s| {
        s.state.as_ref().and_then(|st| st.waiting.as_ref()).and_then(|w| w.reason.as_deref()).is_some_and(|r| IMAGE_PULL_FAILURES.contains(&r))
    })?;
    let spec_image = pod.spec.as_ref().and_then(|spec| spec.containers.iter().find(|c| c.name == failed.name)).and_then(|c| c.image.clone());
    Some(spec_image.unwrap_or_else(|| failed.image.clone()))
}

/// Phase, reason and each container's waiting/terminated reason, for errors.
fn describe(status: &PodStatus) -> String {
    let mut parts = vec![format!("phase {}", status.phase.as_deref().unwrap_or("unknown"))];
    if let Some(reason) = &status.reason {
        parts.push(reason.clone());
    }
    if let Some(message) = &status.message {
        parts.push(message.clone());
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

/// One container's state, from its status in the Pod (or the Pod's phase
/// when the kubelet has not reported it yet).
fn container_state(pod: &Pod, container: &str) -> ContainerStatus {
    let status = pod.status.clone().unwrap_or_default();
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let reported = status.container_statuses.iter().flatten().find(|s| s.name == container);
    let state = reported.and_then(|s| s.state.clone()).unwrap_or_default();
    let mut out = ContainerStatus { state: ContainerState::Created, exit_code: None, oom_killed: false, finished_at: None };
    if let Some(t) = state.terminated {
        out.state = ContainerState::Exited;
        out.exit_code = Some(t.exit_code.into());
        out.oom_killed = t.reason.as_deref() == Some("OOMKilled");
        out.finished_at = t.finished_at.map(|time| time.0.as_microsecond());
    } else if terminating {
        out.state = ContainerState::Removing;
    } else if state.running.is_some() {
        out.state = ContainerState::Running;
    } else if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        // Evicted or otherwise stopped before the container reported anything.
        out.state = ContainerState::Exited;
    }
    out
}

#[async_trait]
impl Driver for KubernetesDriver {
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        let claim = pvc(name, labels, &self.config)?;
        match self.pvcs.create(&PostParams::default(), &claim).await {
            Ok(_) => Ok(name.to_owned()),
            // AlreadyExists: adopt it (a retried create, or a restart).
            Err(e) if api_code(&e) == Some(409) => Ok(name.to_owned()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        match self.pvcs.delete(driver_ref, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        match self.pvcs.get(driver_ref).await {
            Ok(_) => Ok(true),
            Err(e) if api_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    /// Records the launch in its session's plan; the Pod is created by the
    /// first `start_container` of the session.
    async fn create_container(&self, spec: &ContainerLaunch) -> Result<String, DriverError> {
        let session_id = spec
            .labels
            .get(labels::SESSION_ID)
            .ok_or_else(|| DriverError::Engine(format!("container {} has no {} label", spec.name, labels::SESSION_ID)))?
            .clone();
        let pod = pod_name(&session_id);
        let container = container_name(spec);
        let mut plans = self.plans.lock().expect("plans");
        let plan = plans.entry(session_id).or_insert_with(|| SessionPlan { launches: Vec::new(), created: Arc::new(OnceCell::new()) });
        if plan.created.initialized() {
            return Err(DriverError::Engine(format!("pod {pod} is already created; cannot add container {container}")));
        }
        plan.launches.retain(|l| container_name(l) != container);
        plan.launches.push(spec.clone());
        Ok(format!("{pod}/{container}"))
    }

    async fn start_container(&self, id: &str, runtime_port: u16) -> Result<String, DriverError> {
        let (pod, _) = split_id(id);
        self.ensure_pod(session_of(pod), pod).await?;
        self.wait_running(pod, runtime_port).await
    }

    /// Deletes the whole Pod (all containers of the session) and waits for it
    /// to be gone: PVC protection keeps the cargo's PVC until then.
    async fn destroy_container(&self, id: &str) -> Result<(), DriverError> {
        let (pod, _) = split_id(id);
        self.plans.lock().expect("plans").remove(session_of(pod));
        let params = DeleteParams { grace_period_seconds: Some(DELETE_GRACE_SECONDS), ..Default::default() };
        match self.pods.delete(pod, &params).await {
            Ok(_) => self.wait_gone(pod).await,
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, DriverError> {
        let (pod_name, container) = split_id(id);
        let pod = match self.pods.get(pod_name).await {
            Ok(pod) => pod,
            Err(e) if api_code(&e) == Some(404) => return Ok(ContainerStatus::not_found()),
            Err(e) => return Err(engine(e)),
        };
        let spec_names: Vec<&str> = pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.as_str())).collect();
        let name = match container {
            Some(c) if spec_names.contains(&c) => c,
            Some(_) => return Ok(ContainerStatus::not_found()),
            None => spec_names.first().copied().unwrap_or(DEFAULT_CONTAINER),
        };
        Ok(container_state(&pod, name))
    }

    async fn container_logs(&self, id: &str, lines: usize) -> Result<String, DriverError> {
        let (pod, container) = split_id(id);
        let params = LogParams { container: container.map(str::to_owned), tail_lines: Some(lines as i64), ..Default::default() };
        match self.pods.logs(pod, &params).await {
            Ok(text) => Ok(text),
            Err(e) if api_code(&e) == Some(404) => Ok(String::new()),
            Err(e) => Err(engine(e)),
        }
    }

    /// One instance per container of each matching Pod.
    async fn list_containers(&self, labels: &Labels) -> Result<Vec<RuntimeInstance>, DriverError> {
        let list = self.pods.list(&ListParams::default().labels(&self.selector(labels))).await.map_err(engine)?;
        let mut out = Vec::new();
        for pod in list.items {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let pod_labels = self.bay_labels(pod.metadata.labels.as_ref());
            let state = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default().to_lowercase();
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let mut labels = pod_labels.clone();
                // A single-container Pod carries the profile's container name already.
                labels.entry(labels::CONTAINER_NAME.into()).or_insert_with(|| container.name.clone());
                out.push(RuntimeInstance {
                    id: format!("{pod_name}/{}", container.name),
                    name: format!("{pod_name}-{}", container.name),
                    labels,
                    state: state.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let list = self.pvcs.list(&ListParams::default().labels(&self.selector(labels))).await.map_err(engine)?;
        Ok(list
            .items
            .into_iter()
            .map(|v| Named { labels: self.bay_labels(v.metadata.labels.as_ref()), name: v.metadata.name.unwrap_or_default() })
            .collect())
    }

    /// The containers of a session share the Pod's network namespace.
    async fn create_network(&self, _name: &str, _labels: &Labels) -> Result<(), DriverError> {
        Ok(())
    }

    async fn remove_network(&self, _name: &str) -> Result<(), DriverError> {
        Ok(())
    }

    async fn list_networks(&self, _labels: &Labels) -> Result<Vec<Named>, DriverError> {
        Ok(Vec::new())
    }
}

/// These tests run the driver against kube's MOCK service layer
/// (`tower_test::mock`): no Kubernetes API server can run on this machine.
/// Each test spawns a scripted API server that receives the HTTP requests the
/// real kube client builds, asserts their method, path, query (label
/// selectors) and JSON body (the Pod and PVC manifests), and answers with
/// scripted JSON. What they prove: the requests Bay sends and how it reads
/// the answers. What they cannot prove: that a real cluster schedules the Pod
/// (see deploy/k8s/e2e-kind.sh for that).
#[cfg(test)]
mod tests {
    use super::*;

    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock::{Handle, SendResponse};

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    /// One request as the scripted API server saw it.
    #[derive(Debug)]
    struct Seen {
        method: Method,
        path: String,
        query: BTreeMap<String, String>,
        body: Value,
    }

    impl Seen {
        fn is(&self, method: Method, path: &str) -> bool {
            self.method == method && self.path == path
        }
    }

    fn config() -> K8sConfig {
        K8sConfig { namespace: "bay".into(), pod_startup_timeout: 5, ..Default::default() }
    }

    /// A driver whose client talks to the mock service, polling fast.
    fn mock_driver(config: &K8sConfig, pull_policy: PullPolicy) -> (KubernetesDriver, ApiHandle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mut driver = KubernetesDriver::with_client(kube::Client::new(service, "bay"), config, pull_policy);
        driver.poll_interval = Duration::from_millis(5);
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
        assert!(seen.is(method.clone(), path), "expected {method} {path}, got {} {}", seen.method, seen.path);
        (seen, send)
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

    /// A launch as Bay's session code builds it for one profile container.
    fn launch(session: &str, container: &str, hostname: Option<&str>, image: &str, port: u16) -> ContainerLaunch {
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::OWNER.into(), "default".into());
        l.insert(labels::SANDBOX_ID.into(), "sandbox-1".into());
        l.insert(labels::SESSION_ID.into(), session.into());
        l.insert(labels::CARGO_ID.into(), "ws-1".into());
        l.insert(labels::PROFILE_ID.into(), "browser-python".into());
        l.insert(labels::RUNTIME_PORT.into(), port.to_string());
        l.insert(labels::INSTANCE_ID.into(), "bay-test".into());
        l.insert(labels::CONTAINER_NAME.into(), container.into());
        ContainerLaunch {
            name: format!("bay-{session}-{container}"),
            image: image.into(),
            env: vec![
                ("PROFILE_VAR".into(), "from-profile".into()),
                (PROFILE_ENV_VAR.into(), "PROFILE_VAR=from-profile".into()),
                ("BAY_SESSION_ID".into(), session.into()),
            ],
            labels: l,
            cpus: 1.0,
            memory_bytes: 1024 * MI,
            security: Default::default(),
            volume: "bay-cargo-ws-1".into(),
            mount_path: "/workspace".into(),
            runtime_port: port,
            hostname: hostname.map(str::to_owned),
            network: hostname.map(|_| format!("bay-net-{session}")),
        }
    }

    fn pod_json(name: &str, containers: &[&str], status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": "bay", "labels": { "bay.session_id": session_of(name) } },
            "spec": { "containers": containers.iter().map(|c| json!({ "name": c, "image": format!("{c}:latest") })).collect::<Vec<_>>() },
            "status": status,
        })
    }

    /// The posted manifest as the API server echoes it back, with a status.
    fn with_status(mut object: Value, status: Value) -> Value {
        object["status"] = status;
        object
    }

    fn pending() -> Value {
        json!({ "phase": "Pending", "containerStatuses": [
            { "name": "ship", "image": "ship:latest", "imageID": "", "ready": false, "restartCount": 0,
              "state": { "waiting": { "reason": "ContainerCreating" } } } ] })
    }

    fn running(ip: &str) -> Value {
        json!({ "phase": "Running", "podIP": ip })
    }

    fn env_of(container: &Value) -> BTreeMap<String, String> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// `connect` builds a real TLS client from a kubeconfig (rustls with the
    /// ring provider: no "cannot determine the CryptoProvider" panic) and
    /// reports an unreachable API server as an error. It only dials
    /// 127.0.0.1:1, where nothing listens.
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

        let bad = K8sConfig { default_storage_size: "lots".into(), ..config };
        let err = KubernetesDriver::connect(&bad, PullPolicy::IfNotPresent).await.err().expect("invalid size");
        assert!(err.to_string().contains("default_storage_size"), "{err:#}");
    }

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
    }

    #[test]
    fn labels_follow_the_configured_prefix() {
        assert_eq!(to_k8s_key("bay", "bay.sandbox_id"), "bay.sandbox_id");
        assert_eq!(to_k8s_key("acme", "bay.sandbox_id"), "acme.sandbox_id");
        assert_eq!(to_k8s_key("acme", "app"), "app");
        assert_eq!(from_k8s_key("acme", "acme.sandbox_id"), "bay.sandbox_id");
        assert_eq!(from_k8s_key("acme", "acmex.y"), "acmex.y");
        assert_eq!(parse_user(Some("1000:2000")), (Some(1000), Some(2000)));
        assert_eq!(parse_user(Some("1000")), (Some(1000), None));
        assert_eq!(parse_user(Some("nobody")), (None, None));
    }

    /// Bay creates both containers of a `browser-python` session, then starts
    /// both concurrently: exactly one Pod is created, holding both containers,
    /// and each start returns its port on the Pod IP once the Pod runs.
    #[tokio::test]
    async fn two_container_session_is_one_pod() {
        let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let (post, send) = expect(&mut api, Method::POST, "/api/v1/namespaces/bay/pods").await;
            let pod = post.body.clone();
            reply(send, 201, &with_status(pod.clone(), pending()));
            let mut gets = 0;
            let mut posts = 1;
            while let Some((seen, send)) = next(&mut api).await {
                if seen.is(Method::POST, "/api/v1/namespaces/bay/pods") {
                    posts += 1;
                    reply_status(send, 409, "AlreadyExists");
                    continue;
                }
                assert!(seen.is(Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-1"), "unexpected {seen:?}");
                gets += 1;
                let status = if gets <= 2 { pending() } else { running("10.0.0.7") };
                reply(send, 200, &pod_json("bay-sess-1", &["ship", "browser"], status));
            }
            (pod, posts, gets)
        });

        let ship = launch("sess-1", "ship", Some("ship"), "ship:latest", 8123);
        let mut browser = launch("sess-1", "browser", Some("browser"), "gull:latest", 8115);
        browser.cpus = 0.5;
        browser.memory_bytes = 512 * MI;
        browser.security.user = Some("1000:1000".into());
        browser.security.cap_add = vec!["CAP_SYS_ADMIN".into()];
        let (a, b) = within(async { tokio::join!(driver.create_container(&ship), driver.create_container(&browser)) }).await;
        let (ship_id, browser_id) = (a.unwrap(), b.unwrap());
        assert_eq!(ship_id, "bay-sess-1/ship");
        assert_eq!(browser_id, "bay-sess-1/browser");

        let (a, b) = within(async { tokio::join!(driver.start_container(&ship_id, 8123), driver.start_container(&browser_id, 8115)) }).await;
        assert_eq!(a.unwrap(), "http://10.0.0.7:8123");
        assert_eq!(b.unwrap(), "http://10.0.0.7:8115");
        drop(driver);
        let (pod, posts, gets) = within(server).await.unwrap();
        assert_eq!(posts, 1, "exactly one Pod is created");
        assert!(gets >= 3, "polled until Running ({gets} GETs)");

        // The Pod: named after the session, both containers, sharing localhost.
        assert_eq!(pod["metadata"]["name"], "bay-sess-1");
        let pod_labels = &pod["metadata"]["labels"];
        assert_eq!(pod_labels["bay.session_id"], "sess-1");
        assert_eq!(pod_labels["bay.sandbox_id"], "sandbox-1");
        assert_eq!(pod_labels["bay.managed"], "true");
        assert!(pod_labels.get("bay.container_name").is_none(), "per-container labels stay off the Pod");
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["hostAliases"], json!([{ "ip": "127.0.0.1", "hostnames": ["ship", "browser"] }]));
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        let (c_ship, c_browser) = (&containers[0], &containers[1]);
        assert_eq!(c_ship["name"], "ship");
        assert_eq!(c_ship["image"], "ship:latest");
        assert_eq!(c_ship["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c_ship["ports"], json!([{ "containerPort": 8123 }]));
        assert_eq!(c_browser["name"], "browser");
        assert_eq!(c_browser["image"], "gull:latest");
        assert_eq!(c_browser["ports"], json!([{ "containerPort": 8115 }]));

        // Resources in Kubernetes units: never "512m" (millibytes) for memory.
        assert_eq!(c_ship["resources"]["limits"], json!({ "cpu": "1", "memory": "1024Mi" }));
        assert_eq!(c_ship["resources"]["requests"], json!({ "cpu": "500m", "memory": "1024Mi" }));
        assert_eq!(c_browser["resources"]["limits"], json!({ "cpu": "500m", "memory": "512Mi" }));
        assert_eq!(c_browser["resources"]["requests"], json!({ "cpu": "250m", "memory": "512Mi" }));

        // Env straight on the container, without BAY_PROFILE_ENV.
        let env = env_of(c_ship);
        assert_eq!(env["PROFILE_VAR"], "from-profile");
        assert_eq!(env["BAY_SESSION_ID"], "sess-1");
        assert!(!env.contains_key(PROFILE_ENV_VAR));

        // Hardening.
        let sc = &c_ship["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"], json!({ "drop": ["ALL"] }));
        assert!(sc.get("runAsUser").is_none());
        let sc = &c_browser["securityContext"];
        assert_eq!(sc["runAsUser"], 1000);
        assert_eq!(sc["runAsGroup"], 1000);
        assert_eq!(sc["capabilities"], json!({ "add": ["SYS_ADMIN"], "drop": ["ALL"] }));

        // Volumes: the cargo PVC for both, and a memory emptyDir per tmpfs.
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes[0], json!({ "name": "workspace", "persistentVolumeClaim": { "claimName": "bay-cargo-ws-1" } }));
        let tmp = volumes.iter().find(|v| v["name"] == "tmpfs-0-0").expect("tmpfs volume");
        assert_eq!(tmp["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "512Mi" }));
        assert_eq!(volumes.len(), 1 + 2 * 2, "workspace + /tmp and /var/tmp per container");
        let mounts = c_browser["volumeMounts"].as_array().unwrap();
        assert!(mounts.contains(&json!({ "name": "workspace", "mountPath": "/workspace" })));
        assert!(mounts.contains(&json!({ "name": "tmpfs-1-0", "mountPath": "/tmp" })));
    }

    /// A schema-v2 profile with a single container: no session network, so
    /// no `hostname`; the container is named `ship` and started on its own.
    /// Also: the pull policy, pull secrets and label prefix from the config.
    #[tokio::test]
    async fn single_container_v2_profile() {
        let config = K8sConfig { label_prefix: "acme".into(), image_pull_secrets: vec!["regcred".into()], ..config() };
        let (driver, mut api) = mock_driver(&config, PullPolicy::Always);
        let server = tokio::spawn(async move {
            let (post, send) = expect(&mut api, Method::POST, "/api/v1/namespaces/bay/pods").await;
            reply(send, 201, &with_status(post.body.clone(), pending()));
            let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-2").await;
            reply(send, 200, &pod_json("bay-sess-2", &["ship"], running("10.0.0.9")));
            assert!(next(&mut api).await.is_none(), "no further request");
            post.body
        });
        let mut single = launch("sess-2", "python", None, "python-image:3", 8123);
        single.cpus = 2.0;
        single.memory_bytes = 4096 * MI;
        let endpoint = within(async {
            let id = driver.create_container(&single).await.unwrap();
            assert_eq!(id, "bay-sess-2/ship");
            driver.start_container(&id, 8123).await
        })
        .await
        .unwrap();
        assert_eq!(endpoint, "http://10.0.0.9:8123");
        drop(driver);
        let pod = within(server).await.unwrap();

        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["acme.session_id"], "sess-2");
        assert_eq!(labels["acme.container_name"], "python", "a single container's labels are all on the Pod");
        assert!(labels.get("bay.session_id").is_none());
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{ "name": "regcred" }]));
        assert_eq!(pod["spec"]["hostAliases"], json!([{ "ip": "127.0.0.1", "hostnames": ["ship"] }]));
        let containers = pod["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(c["name"], "ship");
        assert_eq!(c["image"], "python-image:3");
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["resources"]["limits"], json!({ "cpu": "2", "memory": "4096Mi" }));
        assert_eq!(c["resources"]["requests"], json!({ "cpu": "1", "memory": "4096Mi" }));
        // Env reaches the container directly.
        let env = env_of(c);
        assert_eq!(env["PROFILE_VAR"], "from-profile");
        assert!(!env.contains_key(PROFILE_ENV_VAR));
    }

    /// Cargo volumes are PVCs: Shipyard's "1g" becomes "1Gi", the storage
    /// class and labels are set, an existing PVC (409) is adopted, and a
    /// missing one is neither an error to delete nor said to exist.
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
            reply(
                send,
                200,
                &json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {},
                                      "items": [post.body.clone()] }),
            );
            assert!(next(&mut api).await.is_none());
            post.body
        });
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::CARGO_ID.into(), "ws-1".into());
        l.insert(labels::INSTANCE_ID.into(), "bay-test".into());
        within(async {
            assert_eq!(driver.create_volume("bay-cargo-ws-1", &l).await.unwrap(), "bay-cargo-ws-1");
            assert_eq!(driver.create_volume("bay-cargo-ws-1", &l).await.unwrap(), "bay-cargo-ws-1", "409 adopts");
            assert!(driver.volume_exists("bay-cargo-ws-1").await.unwrap());
            assert!(!driver.volume_exists("bay-cargo-gone").await.unwrap());
            driver.delete_volume("bay-cargo-gone").await.unwrap();
            let mut by_instance = Labels::new();
            by_instance.insert(labels::INSTANCE_ID.into(), "bay-test".into());
            let found = driver.list_volumes(&by_instance).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].name, "bay-cargo-ws-1");
            assert_eq!(found[0].labels[labels::CARGO_ID], "ws-1");
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

    /// Destroy deletes the Pod with a 10 s grace period and returns only once
    /// the Pod is gone (404); the sibling container's destroy then finds
    /// nothing and succeeds without waiting.
    #[tokio::test]
    async fn destroy_deletes_the_pod_and_waits_until_gone() {
        let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let pod = "/api/v1/namespaces/bay/pods/bay-sess-1";
            let (delete, send) = expect(&mut api, Method::DELETE, pod).await;
            assert_eq!(delete.body["gracePeriodSeconds"], 10);
            let mut terminating = pod_json("bay-sess-1", &["ship", "browser"], running("10.0.0.7"));
            terminating["metadata"]["deletionTimestamp"] = json!("2026-01-02T03:04:05Z");
            reply(send, 200, &terminating);
            for _ in 0..2 {
                let (_, send) = expect(&mut api, Method::GET, pod).await;
                reply(send, 200, &terminating);
            }
            let (_, send) = expect(&mut api, Method::GET, pod).await;
            reply_status(send, 404, "NotFound");
            // The sibling: already gone.
            let (_, send) = expect(&mut api, Method::DELETE, pod).await;
            reply_status(send, 404, "NotFound");
            assert!(next(&mut api).await.is_none(), "no wait for a Pod that is gone");
        });
        within(async {
            driver.destroy_container("bay-sess-1/ship").await.unwrap();
            driver.destroy_container("bay-sess-1/browser").await.unwrap();
        })
        .await;
        drop(driver);
        within(server).await.unwrap();
    }

    /// Reconcile and GC find containers by label: the selector carries the
    /// labels (with the prefix), and each container of a Pod is one instance
    /// with Bay's label keys back.
    #[tokio::test]
    async fn list_containers_selects_by_label() {
        let config = K8sConfig { label_prefix: "acme".into(), ..config() };
        let (driver, mut api) = mock_driver(&config, PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let (list, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods").await;
            assert_eq!(list.query["labelSelector"], "acme.managed=true,acme.session_id=sess-1");
            let mut pod = pod_json("bay-sess-1", &["ship", "browser"], running("10.0.0.7"));
            pod["metadata"]["labels"] = json!({ "acme.managed": "true", "acme.session_id": "sess-1", "app": "x" });
            reply(send, 200, &json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod] }));
        });
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::SESSION_ID.into(), "sess-1".into());
        let found = within(driver.list_containers(&l)).await.unwrap();
        within(server).await.unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].id, "bay-sess-1/ship");
        assert_eq!(found[0].name, "bay-sess-1-ship");
        assert_eq!(found[0].state, "running");
        assert_eq!(found[0].labels[labels::SESSION_ID], "sess-1");
        assert_eq!(found[0].labels[labels::CONTAINER_NAME], "ship");
        assert_eq!(found[0].labels["app"], "x");
        assert_eq!(found[1].id, "bay-sess-1/browser");
        assert_eq!(found[1].labels[labels::CONTAINER_NAME], "browser");
    }

    /// An OOM-killed container reads as exited, exit code 137, out of memory,
    /// with its finish time; its running sibling as running; a deleted Pod as
    /// not found. Logs are read per container with tailLines.
    #[tokio::test]
    async fn container_status_maps_oom_killed() {
        let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let path = "/api/v1/namespaces/bay/pods/bay-sess-1";
            let status = json!({ "phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
                { "name": "ship", "image": "ship:latest", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "terminated": { "exitCode": 137, "reason": "OOMKilled",
                                             "finishedAt": "2026-01-02T03:04:05Z" } } },
                { "name": "browser", "image": "gull:latest", "imageID": "", "ready": true, "restartCount": 0,
                  "state": { "running": { "startedAt": "2026-01-02T03:00:00Z" } } } ] });
            for _ in 0..2 {
                let (_, send) = expect(&mut api, Method::GET, path).await;
                reply(send, 200, &pod_json("bay-sess-1", &["ship", "browser"], status.clone()));
            }
            let (logs, send) = expect(&mut api, Method::GET, &format!("{path}/log")).await;
            assert_eq!(logs.query["container"], "ship");
            assert_eq!(logs.query["tailLines"], "20");
            send.send_response(Response::new(Body::from(b"Killed\n".to_vec())));
            let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-gone").await;
            reply_status(send, 404, "NotFound");
        });
        let (ship, browser, logs, gone) = within(async {
            (
                driver.container_status("bay-sess-1/ship").await.unwrap(),
                driver.container_status("bay-sess-1/browser").await.unwrap(),
                driver.container_logs("bay-sess-1/ship", 20).await.unwrap(),
                driver.container_status("bay-gone/ship").await.unwrap(),
            )
        })
        .await;
        within(server).await.unwrap();
        assert_eq!(ship.state, ContainerState::Exited);
        assert_eq!(ship.exit_code, Some(137));
        assert!(ship.oom_killed);
        assert_eq!(ship.describe(), "exit code 137, out of memory");
        let expected = time::macros::datetime!(2026-01-02 03:04:05 UTC).unix_timestamp() * 1_000_000;
        assert_eq!(ship.finished_at, Some(expected));
        assert_eq!(browser.state, ContainerState::Running);
        assert!(!browser.oom_killed);
        assert_eq!(logs, "Killed\n");
        assert_eq!(gone.state, ContainerState::NotFound);
    }

    /// A Pod whose image cannot be pulled fails the start with ImageMissing
    /// (Bay's "image not available" error), naming the image.
    #[tokio::test]
    async fn image_pull_failure_is_image_missing() {
        let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let (post, send) = expect(&mut api, Method::POST, "/api/v1/namespaces/bay/pods").await;
            reply(send, 201, &with_status(post.body.clone(), pending()));
            let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-3").await;
            let mut pod = with_status(
                post.body.clone(),
                json!({ "phase": "Pending", "containerStatuses": [
                { "name": "ship", "image": "ship:missing", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "waiting": { "reason": "ErrImagePull", "message": "not found" } } } ] }),
            );
            pod["metadata"]["namespace"] = json!("bay");
            reply(send, 200, &pod);
        });
        let result = within(async {
            let id = driver.create_container(&launch("sess-3", "ship", None, "ship:missing", 8123)).await.unwrap();
            driver.start_container(&id, 8123).await
        })
        .await;
        within(server).await.unwrap();
        match result {
            Err(DriverError::ImageMissing(image)) => assert_eq!(image, "ship:missing"),
            other => panic!("expected ImageMissing, got {other:?}"),
        }
    }

    /// A Pod that fails (e.g. evicted) or never runs within
    /// `pod_startup_timeout` fails the start with the reason.
    #[tokio::test]
    async fn failed_pod_fails_the_start() {
        let (driver, mut api) = mock_driver(&config(), PullPolicy::IfNotPresent);
        let server = tokio::spawn(async move {
            let (post, send) = expect(&mut api, Method::POST, "/api/v1/namespaces/bay/pods").await;
            reply(send, 201, &with_status(post.body.clone(), pending()));
            let (_, send) = expect(&mut api, Method::GET, "/api/v1/namespaces/bay/pods/bay-sess-4").await;
            reply(
                send,
                200,
                &with_status(
                    post.body,
                    json!({ "phase": "Failed", "reason": "Evicted",
                                                              "message": "The node was low on resource: memory." }),
                ),
            );
        });
        let result = within(async {
            let id = driver.create_container(&launch("sess-4", "ship", None, "ship:latest", 8123)).await.unwrap();
            driver.start_container(&id, 8123).await
        })
        .await;
        within(server).await.unwrap();
        match result {
            Err(DriverError::Engine(message)) => {
                assert!(message.contains("failed") && message.contains("Evicted"), "{message}")
            }
            other => panic!("expected an engine error, got {other:?}"),
        }
    }
}
