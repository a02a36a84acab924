//! The Kubernetes driver (kube-rs): a session is one Pod, a cargo one PVC.
//!
//! **One Pod per session.** `launch_session` creates the Pod
//! `bay-<session_id>` ([`names::pod_name`]) with one container per
//! `ContainerSpec`, named after it; every container mounts the cargo's PVC
//! at the mount path. The containers of a Pod share one network namespace,
//! so a `hostAliases` entry maps every container name to 127.0.0.1 and a
//! sibling is reached by name (`http://ship:8123`) exactly as on a Docker
//! session network; their runtime ports must therefore differ. The launch
//! then polls the Pod until it runs with an IP and every container running
//! (at most `pod_startup_timeout`), failing early on an image that cannot be
//! pulled (`DriverError::ImageMissing`), a container that stopped, or a
//! failed Pod. Each runtime answers at `http://<podIP>:<runtime_port>`; no
//! Service is created, so Bay must run inside the cluster network (or route
//! to it). Resources, hardening, tmpfs and labels: [`pod::manifest`].
//!
//! **Container ids** are `<pod>/<container>` ([`pod::container_id`]): known
//! before the kubelet starts anything, and the same in what
//! `launch_session` returns and what `session_status`/`list_sessions`
//! report, which is what adopting a session compares
//! (`host/src/sandbox/session.rs`).
//!
//! **No state in memory.** The driver keeps nothing per session: the Pod's
//! name follows from the session id and its labels say what it belongs to,
//! so a restarted Bay (or another replica) finds, adopts or removes every
//! session from the API server alone. Launching is idempotent: a Pod that
//! exists already (409) is adopted and waited for. `destroy_session`
//! deletes the Pod (404 is fine) with a 10 s grace period and waits briefly
//! until it is gone, accepting a Pod still terminating at the end (the
//! kubelet finishes; PVC protection keeps the cargo's PVC until then).
//!
//! **Labels** keep Bay's keys with the configured `label_prefix` in place of
//! `bay`; values Kubernetes rejects are stored as digests with the original
//! in an annotation ([`names`]). Per-container labels (`bay.container_name`,
//! `bay.runtime_port`, the spec's) live in the Pod annotation
//! `bay.container_labels`, since a Pod's containers carry no labels.
//!
//! **Isolation.** Sandbox Pods get no service-account token and no Service
//! links. `deploy/k8s/05-networkpolicy.yaml` lets only Bay's Pods reach
//! sandbox Pods, where the cluster's network plugin enforces
//! NetworkPolicies; where it does not, the per-session secret Bay sends with
//! every runtime call (`X-Bay-Token`, `BAY_RUNTIME_TOKEN` in the container)
//! still keeps one sandbox (or anything else in the cluster) from using
//! another's runtime.
//!
//! **Not supported, and why:**
//! - `pause_session`/`resume_session` keep the trait's `Unsupported`:
//!   Kubernetes has no Pod freeze; the kubelet's cgroup freezer is not
//!   exposed through the API.
//! - `pids_limit`: the PID limit is a kubelet setting per node (`podPidsLimit`).
//! - tmpfs options other than `size=` (`noexec`, `mode=`): a memory-backed
//!   `emptyDir` has none.
//! - `security.user` as a name: a Pod spec takes numeric ids only.
//! - `container_exits` is `None` (no event feed; a dead runtime is found by
//!   the next call, a health check or GC).
//!
//! Tested against kube's mock service layer (`tests.rs`): no API server can
//! run where this was written; `deploy/k8s/e2e-kind.sh` is the check against
//! a real cluster.

mod names;
mod pod;
mod volumes;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use tokio::time::Instant;

use super::{ContainerInfo, Driver, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec, labels};
use crate::config::{K8sConfig, PullPolicy};

/// Installs rustls' `ring` provider as the process default. kube builds its
/// TLS config from the process default; with more than one provider compiled
/// in, rustls cannot choose one and client creation panics. Installing twice
/// is harmless (the second attempt's error is ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct KubernetesDriver {
    pods: Api<Pod>,
    pvcs: Api<PersistentVolumeClaim>,
    config: K8sConfig,
    pull_policy: PullPolicy,
    /// Pause between two reads of a starting or terminating Pod.
    poll_interval: Duration,
    /// How long `destroy_session` waits for a deleted Pod to disappear.
    delete_wait: Duration,
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

impl KubernetesDriver {
    /// Connects with the kubeconfig at `config.kubeconfig` if set, else the
    /// inferred configuration (in-cluster service account, or `~/.kube/config`),
    /// and checks that the API server answers, so a wrong setup fails at
    /// start rather than at the first sandbox.
    pub async fn connect(config: &K8sConfig, pull_policy: PullPolicy) -> anyhow::Result<KubernetesDriver> {
        install_crypto_provider();
        volumes::storage_size(&config.default_storage_size).map_err(|e| anyhow::anyhow!("driver.k8s.default_storage_size: {e}"))?;
        let all = [labels::MANAGED, labels::CONTAINER_NAME, labels::RUNTIME_TYPE, pod::CONTAINER_LABELS];
        if let Some(bad) = all.iter().map(|k| names::to_k8s_key(&config.label_prefix, k)).find(|k| !names::is_label_key(k)) {
            anyhow::bail!("driver.k8s.label_prefix {:?} makes the label key {bad:?}, which Kubernetes rejects", config.label_prefix);
        }
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
            poll_interval: Duration::from_secs(1),
            delete_wait: Duration::from_secs(u64::from(pod::GRACE_SECONDS) + 5),
        }
    }

    /// The session's Pod, if there is one (a Pod of that name labelled for
    /// another session is not).
    async fn session_pod(&self, session_id: &str) -> Result<Option<Pod>, DriverError> {
        match self.pods.get(&names::pod_name(session_id)).await {
            Ok(pod) if pod::session_of(&pod, &self.config.label_prefix).as_deref() == Some(session_id) => Ok(Some(pod)),
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    /// Polls the session's Pod until it runs with an IP and all containers
    /// running; fails early when it cannot, or after `pod_startup_timeout`.
    async fn wait_running(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        let name = names::pod_name(&spec.session_id);
        let timeout = Duration::from_secs(self.config.pod_startup_timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self.pods.get(&name).await.map_err(engine)?;
            let owner = pod::session_of(&pod, &self.config.label_prefix);
            if owner.as_deref() != Some(spec.session_id.as_str()) {
                return Err(DriverError::Engine(format!("pod {name} exists but belongs to session {owner:?}, not {}", spec.session_id)));
            }
            let present = pod::container_names(&pod);
            if let Some(missing) = spec.containers.iter().find(|c| !present.contains(&c.name)) {
                return Err(DriverError::Engine(format!("pod {name} exists without container {:?}", missing.name)));
            }
            if let Some(err) = pod::start_failure(&pod) {
                return Err(err);
            }
            if let Some(ip) = pod::running_ip(&pod) {
                return Ok(spec
                    .containers
                    .iter()
                    .map(|c| LaunchedContainer {
                        name: c.name.clone(),
                        id: pod::container_id(&name, &c.name),
                        endpoint: pod::endpoint(&ip, c.runtime_port),
                    })
                    .collect());
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Engine(format!("pod {name} did not start within {} s ({})", timeout.as_secs(), pod::describe(&pod))));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Polls until the Pod is gone (404); a Pod still terminating when the
    /// wait is over is left to the kubelet.
    async fn wait_gone(&self, name: &str) -> Result<(), DriverError> {
        let deadline = Instant::now() + self.delete_wait;
        loop {
            match self.pods.get(name).await {
                Err(e) if api_code(&e) == Some(404) => return Ok(()),
                Err(e) => return Err(engine(e)),
                Ok(pod) if Instant::now() >= deadline => {
                    return match pod.metadata.deletion_timestamp {
                        Some(_) => {
                            tracing::debug!(pod = name, "pod still terminating; the kubelet finishes it");
                            Ok(())
                        }
                        None => Err(DriverError::Engine(format!("pod {name} is still there after its deletion"))),
                    };
                }
                Ok(_) => tokio::time::sleep(self.poll_interval).await,
            }
        }
    }
}

#[async_trait]
impl Driver for KubernetesDriver {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        let manifest = pod::manifest(spec, &self.config, self.pull_policy)?;
        match self.pods.create(&PostParams::default(), &manifest).await {
            Ok(_) => {}
            // Created before (a retried launch, a restart): adopt it.
            Err(e) if api_code(&e) == Some(409) => {
                tracing::info!(session_id = %spec.session_id, "adopting the session's existing pod");
            }
            Err(e) => return Err(engine(e)),
        }
        self.wait_running(spec).await
    }

    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        let name = names::pod_name(session_id);
        let params = DeleteParams { grace_period_seconds: Some(pod::GRACE_SECONDS), ..Default::default() };
        match self.pods.delete(&name, &params).await {
            // Deleted at once: the answer is a Status, not the terminating Pod.
            Ok(answer) if answer.is_right() => Ok(()),
            Ok(_) => self.wait_gone(&name).await,
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        Ok(self.session_pod(session_id).await?.map(|p| pod::container_infos(&p)).unwrap_or_default())
    }

    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        let prefix = &self.config.label_prefix;
        // Only Pods with a session label: never Bay's own Pods in the namespace.
        let selector = names::selector(prefix, labels, &[labels::SESSION_ID]);
        let list = self.pods.list(&ListParams::default().labels(&selector)).await.map_err(engine)?;
        let containers = list.items.iter().flat_map(|p| pod::labelled_containers(p, prefix));
        Ok(bay_driver_kit::spec::group_sessions(containers, std::iter::empty()))
    }

    /// The last `lines` lines of each container's log, prefixed with its
    /// name when the session has several.
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        let Some(pod) = self.session_pod(session_id).await? else { return Ok(String::new()) };
        let name = names::pod_name(session_id);
        let containers = pod::container_names(&pod);
        let mut out = String::new();
        for c in &containers {
            let params = LogParams { container: Some(c.clone()), tail_lines: Some(lines.into()), ..Default::default() };
            let text = match self.pods.logs(&name, &params).await {
                Ok(text) => text,
                // Gone, or not started yet (400 "waiting to start").
                Err(e) if matches!(api_code(&e), Some(400 | 404)) => continue,
                Err(e) => return Err(engine(e)),
            };
            if containers.len() > 1 {
                for line in text.lines() {
                    out.push_str(&format!("[{c}] {line}\n"));
                }
            } else {
                out.push_str(&text);
            }
        }
        Ok(out)
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        self.create_pvc(name, labels).await
    }

    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        self.delete_pvc(driver_ref).await
    }

    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        self.pvc_exists(driver_ref).await
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        self.list_pvcs(labels).await
    }
}
