//! Sessions: starting, adopting and tearing down a sandbox's containers.
//!
//! A session starts lazily on a sandbox's first capability call (or right
//! after create, as a background warmup), always under the sandbox lock:
//! create the container, start it, poll the runtime's `/health` through its
//! adapter plugin until it answers, read its `/meta`, then record it running.
//! Any failure removes what was created, so nothing is left half-started.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::adapter::{AdapterError, RuntimeAdapter};
use crate::config::{ContainerSpec, ProfileConfig, parse_memory};
use crate::db::sandboxes::Sandbox;
use crate::db::sessions::{Session, SessionContainer, SessionState};
use crate::driver::{ContainerLaunch, ContainerState, DriverError, Labels, labels};
use crate::error::{BayError, BayResult};
use crate::ids::{self, now_micros};

use super::SandboxManager;

/// A running container of a session, with what Bay learned from its runtime.
#[derive(Clone)]
pub struct ActiveContainer {
    pub name: String,
    pub runtime_type: String,
    pub container_id: String,
    pub endpoint: String,
    pub adapter: Arc<dyn RuntimeAdapter>,
    /// Capability keys from the runtime's `/meta` (the level-2 check).
    pub runtime_capabilities: Vec<String>,
    /// Capabilities the profile assigns to this container.
    pub profile_capabilities: Vec<String>,
    pub version: Option<String>,
}

/// A sandbox's running session, cached in memory for the hot path.
pub struct ActiveSession {
    pub session_id: String,
    pub sandbox_id: String,
    /// The sandbox row as of session start: its owner, profile and cargo
    /// never change, so the hot path needs no database read.
    pub sandbox: Sandbox,
    pub containers: Vec<ActiveContainer>,
    /// When `idle_expires_at` was last written (µs), to throttle writes.
    pub last_touch: AtomicI64,
    /// Capability calls hold it shared; idle GC needs it exclusively, so it
    /// only reclaims a session no call is using.
    pub usage: tokio::sync::RwLock<()>,
}

impl ActiveSession {
    /// The container serving a capability: by the profile's routing, then by
    /// whatever container declares it.
    pub fn container_for(&self, profile: &ProfileConfig, capability: &str) -> Option<&ActiveContainer> {
        profile
            .container_for(capability)
            .and_then(|spec| self.containers.iter().find(|c| c.name == spec.name))
            .or_else(|| self.containers.iter().find(|c| c.profile_capabilities.iter().any(|x| x == capability)))
    }
}

fn driver_error(err: DriverError) -> BayError {
    match err {
        DriverError::ImageMissing(image) => {
            BayError::internal(format!("image {image:?} is not available on the container engine (build the runtime images with `./dev images`)"))
        }
        other => BayError::internal(format!("container engine error: {other}")),
    }
}

impl SandboxManager {
    /// The running session of a sandbox, starting one if needed.
    pub async fn ensure_running(&self, sandbox: &Sandbox, profile: &ProfileConfig) -> BayResult<Arc<ActiveSession>> {
        if let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone()) {
            // With several replicas, `sandbox` was just read from the
            // database: a session another replica replaced is not ours to use.
            if !self.cluster.enabled() || sandbox.current_session_id.as_deref() == Some(active.session_id.as_str()) {
                return Ok(active);
            }
            self.active.remove_if(&sandbox.id, |_, a| a.session_id == active.session_id);
        }
        let _guard = self.locks.lock(&sandbox.id).await;
        let sandbox = self.db.sandbox(&sandbox.id).await?.ok_or_else(|| BayError::sandbox_not_found(&sandbox.id))?;
        // Someone may have started it while we waited for the lock.
        if let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone()) {
            if sandbox.current_session_id.as_deref() == Some(active.session_id.as_str()) {
                return Ok(active);
            }
            self.active.remove(&sandbox.id);
        }
        if let Some(session_id) = &sandbox.current_session_id
            && let Some(session) = self.db.session(session_id).await?
            && let Some(active) = self.adopt(&sandbox, profile, &session).await?
        {
            return Ok(active);
        }
        self.start_session(&sandbox, profile).await
    }

    /// Re-attaches to a session recorded as running (after a Bay restart), or
    /// clears a leftover one (a crash mid-start, a dead container).
    async fn adopt(&self, sandbox: &Sandbox, profile: &ProfileConfig, session: &Session) -> BayResult<Option<Arc<ActiveSession>>> {
        if session.observed() == SessionState::Running
            && let Some(containers) = self.reattach(profile, session).await
        {
            let active = Arc::new(ActiveSession {
                session_id: session.id.clone(),
                sandbox_id: sandbox.id.clone(),
                sandbox: sandbox.clone(),
                containers,
                last_touch: AtomicI64::new(0),
                usage: Default::default(),
            });
            self.active.insert(sandbox.id.clone(), active.clone());
            tracing::info!(sandbox_id = %sandbox.id, session_id = %session.id, "adopted running session");
            return Ok(Some(active));
        }
        tracing::info!(sandbox_id = %sandbox.id, session_id = %session.id, state = %session.observed_state, "replacing stale session");
        self.destroy_session(session).await;
        self.db.set_current_session(&sandbox.id, None).await?;
        Ok(None)
    }

    /// The running containers of a recorded session, if every one of them is
    /// alive and answers `/meta`.
    async fn reattach(&self, profile: &ProfileConfig, session: &Session) -> Option<Vec<ActiveContainer>> {
        let recorded = session.container_list();
        let specs = profile.containers();
        if recorded.len() != specs.len() {
            return None;
        }
        let mut containers = Vec::new();
        for spec in specs {
            let rec = recorded.iter().find(|c| c.name == spec.name)?;
            let endpoint = rec.endpoint.clone()?;
            let alive = matches!(self.driver.container_status(&rec.container_id).await.map(|s| s.state), Ok(ContainerState::Running));
            if !alive {
                return None;
            }
            let adapter = self.plugins.adapter(&spec.runtime_type)?;
            let meta = adapter.meta(&endpoint).await.ok()?;
            containers.push(ActiveContainer {
                name: spec.name.clone(),
                runtime_type: spec.runtime_type.clone(),
                container_id: rec.container_id.clone(),
                endpoint,
                adapter,
                runtime_capabilities: meta.capabilities,
                profile_capabilities: spec.capabilities.clone(),
                version: Some(meta.version),
            });
        }
        Some(containers)
    }

    async fn start_session(&self, sandbox: &Sandbox, profile: &ProfileConfig) -> BayResult<Arc<ActiveSession>> {
        let specs = profile.containers();
        let adapters = specs
            .iter()
            .map(|spec| {
                self.plugins.adapter(&spec.runtime_type).ok_or_else(|| {
                    BayError::internal(format!(
                        "no runtime adapter plugin serves runtime type {:?} (loaded: {:?})",
                        spec.runtime_type,
                        self.plugins.runtime_types()
                    ))
                })
            })
            .collect::<BayResult<Vec<_>>>()?;
        let cargo = self
            .db
            .cargo(&sandbox.cargo_id)
            .await?
            .ok_or_else(|| BayError::internal(format!("cargo {} of sandbox {} is missing", sandbox.cargo_id, sandbox.id)))?;

        let now = now_micros();
        let session = Session {
            id: ids::session_id(),
            sandbox_id: sandbox.id.clone(),
            runtime_type: profile.primary().runtime_type,
            profile_id: profile.id.clone(),
            container_id: None,
            endpoint: None,
            containers: None,
            desired_state: SessionState::Running.as_str().into(),
            observed_state: SessionState::Starting.as_str().into(),
            last_observed_at: Some(now),
            created_at: now,
            last_active_at: now,
        };
        self.db.insert_session(&session).await?;
        self.db.set_current_session(&sandbox.id, Some(&session.id)).await?;

        let _slot = self.start_slots.acquire().await.map_err(|_| BayError::internal("shutting down"))?;
        let started = Instant::now();
        let created = std::sync::Mutex::new(Vec::new());
        let network = (specs.len() > 1).then(|| session_network(&session.id));
        let result = self.start_containers(sandbox, profile, &session, &specs, adapters, &cargo.driver_ref, network.as_deref(), &created).await;
        match result {
            Ok(containers) => {
                let now = now_micros();
                let primary_name = profile.primary().name;
                let primary = containers.iter().find(|c| c.name == primary_name).unwrap_or(&containers[0]);
                let json = session_containers_json(&containers);
                self.db.mark_session_running(&session.id, &primary.container_id, &primary.endpoint, Some(&json), now).await?;
                self.db.touch_sandbox(&sandbox.id, now, Some(now + ids::secs(profile.idle_timeout))).await?;
                let active = Arc::new(ActiveSession {
                    session_id: session.id.clone(),
                    sandbox_id: sandbox.id.clone(),
                    sandbox: sandbox.clone(),
                    containers,
                    last_touch: AtomicI64::new(now),
                    usage: Default::default(),
                });
                self.active.insert(sandbox.id.clone(), active.clone());
                tracing::info!(
                    sandbox_id = %sandbox.id,
                    session_id = %session.id,
                    containers = active.containers.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "session started"
                );
                Ok(active)
            }
            Err(err) => {
                // All or nothing: remove whatever was created.
                tracing::warn!(sandbox_id = %sandbox.id, session_id = %session.id, error = %err.message, "session start failed");
                let ids = std::mem::take(&mut *created.lock().expect("created"));
                futures::future::join_all(ids.iter().map(|id| self.driver.destroy_container(id))).await;
                if let Some(net) = &network {
                    let _ = self.driver.remove_network(net).await;
                }
                let _ = self.db.delete_session(&session.id).await;
                let _ = self.db.set_current_session(&sandbox.id, None).await;
                Err(err)
            }
        }
    }

    /// Creates the session network (if any) and the containers, then starts
    /// them and waits for every runtime in parallel. Created container ids are
    /// pushed to `created` as they appear, for the caller's cleanup.
    #[allow(clippy::too_many_arguments)]
    async fn start_containers(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        session: &Session,
        specs: &[ContainerSpec],
        adapters: Vec<Arc<dyn RuntimeAdapter>>,
        volume: &str,
        network: Option<&str>,
        created: &std::sync::Mutex<Vec<String>>,
    ) -> BayResult<Vec<ActiveContainer>> {
        if let Some(net) = network {
            let mut l = Labels::new();
            l.insert(labels::MANAGED.into(), "true".into());
            l.insert(labels::SESSION_ID.into(), session.id.clone());
            l.insert(labels::SANDBOX_ID.into(), sandbox.id.clone());
            l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
            self.driver.create_network(net, &l).await.map_err(driver_error)?;
        }
        let launches =
            specs.iter().map(|spec| self.launch_spec(sandbox, profile, spec, &session.id, volume, network)).collect::<BayResult<Vec<_>>>()?;
        let creations = launches.iter().map(|launch| async move {
            let id = self.driver.create_container(launch).await.map_err(driver_error)?;
            created.lock().expect("created").push(id.clone());
            Ok::<_, BayError>(id)
        });
        let ids = futures::future::join_all(creations).await.into_iter().collect::<BayResult<Vec<_>>>()?;
        // Record the containers before anything else can fail, so a crash leaves a trace.
        let pending: Vec<SessionContainer> = specs
            .iter()
            .zip(&ids)
            .map(|(spec, id)| SessionContainer {
                name: spec.name.clone(),
                container_id: id.clone(),
                endpoint: None,
                status: "created".into(),
                runtime_type: spec.runtime_type.clone(),
                capabilities: spec.capabilities.clone(),
            })
            .collect();
        self.db.set_session_containers(&session.id, ids.first().map(String::as_str), serde_json::to_string(&pending).ok().as_deref()).await?;

        let ready_timeout = Duration::from_secs(profile.startup.ready_timeout_seconds.unwrap_or(self.config.sessions.ready_timeout_seconds));
        let starts = specs.iter().zip(ids).zip(adapters).map(|((spec, container_id), adapter)| async move {
            let endpoint = self.driver.start_container(&container_id, spec.runtime_port).await.map_err(driver_error)?;
            let meta = self.wait_ready(&container_id, &endpoint, adapter.as_ref(), &session.sandbox_id, ready_timeout).await?;
            Ok::<_, BayError>(ActiveContainer {
                name: spec.name.clone(),
                runtime_type: spec.runtime_type.clone(),
                container_id,
                endpoint,
                adapter,
                runtime_capabilities: meta.capabilities,
                profile_capabilities: spec.capabilities.clone(),
                version: Some(meta.version),
            })
        });
        futures::future::join_all(starts).await.into_iter().collect()
    }

    /// Polls the runtime's health through its adapter until it answers, then
    /// reads its `/meta`. Fails fast when the container exits.
    async fn wait_ready(
        &self,
        container_id: &str,
        endpoint: &str,
        adapter: &dyn RuntimeAdapter,
        sandbox_id: &str,
        ready_timeout: Duration,
    ) -> BayResult<crate::adapter::RuntimeMeta> {
        let deadline = Instant::now() + ready_timeout;
        let mut delay = Duration::from_millis(20);
        let mut last_check = Instant::now();
        let mut last_error;
        loop {
            match adapter.health(endpoint).await {
                Ok(h) if h.healthy => break,
                Ok(h) => last_error = format!("unhealthy: {}", h.detail.unwrap_or_default()),
                Err(e @ AdapterError::Plugin(_)) => return Err(e.into()),
                Err(e) => last_error = e.to_string(),
            }
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                if let Ok(status) = self.driver.container_status(container_id).await
                    && matches!(status.state, ContainerState::Exited | ContainerState::NotFound)
                {
                    let logs = self.driver.container_logs(container_id, 20).await.unwrap_or_default();
                    return Err(BayError::internal(format!(
                        "the runtime container exited during start (exit code {:?}{}): {}",
                        status.exit_code,
                        if status.oom_killed { ", out of memory" } else { "" },
                        logs.trim()
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(BayError::session_not_ready(format!("Runtime failed to become ready: {last_error}"), sandbox_id, 1000));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
        adapter.meta(endpoint).await.map_err(BayError::from)
    }

    fn launch_spec(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        spec: &ContainerSpec,
        session_id: &str,
        volume: &str,
        network: Option<&str>,
    ) -> BayResult<ContainerLaunch> {
        let mut env: Vec<(String, String)> = Vec::new();
        let profile_env = profile.env_for(spec);
        for (k, v) in &profile_env {
            env.push((k.clone(), v.clone()));
        }
        let proxy = spec.proxy.as_ref().or(profile.proxy.as_ref()).unwrap_or(&self.config.proxy);
        env.extend(proxy.env());
        if !profile_env.is_empty() {
            // Ship turns this into /workspace/.bay_env.sh (reference §7.1).
            let joined: Vec<String> = profile_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            env.push(("BAY_PROFILE_ENV".into(), joined.join(":")));
        }
        env.push(("BAY_SESSION_ID".into(), session_id.to_owned()));
        env.push(("BAY_SANDBOX_ID".into(), sandbox.id.clone()));
        env.push(("BAY_WORKSPACE_PATH".into(), self.config.cargo.mount_path.clone()));
        env.push(("SHIP_IMAGE".into(), spec.image.clone()));
        if network.is_some() {
            env.push(("BAY_CONTAINER_NAME".into(), spec.name.clone()));
        }

        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::OWNER.into(), sandbox.owner.clone());
        l.insert(labels::SANDBOX_ID.into(), sandbox.id.clone());
        l.insert(labels::SESSION_ID.into(), session_id.to_owned());
        l.insert(labels::CARGO_ID.into(), sandbox.cargo_id.clone());
        l.insert(labels::PROFILE_ID.into(), profile.id.clone());
        l.insert(labels::RUNTIME_PORT.into(), spec.runtime_port.to_string());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        l.insert(labels::CONTAINER_NAME.into(), spec.name.clone());
        l.insert(labels::RUNTIME_TYPE.into(), spec.runtime_type.clone());

        let memory_bytes = parse_memory(&spec.resources.memory).map_err(|e| BayError::internal(format!("{e:#}")))?;
        Ok(ContainerLaunch {
            // Shipyard Neo's names: one container per session, or one per spec.
            name: match network {
                None => format!("bay-session-{session_id}"),
                Some(_) => format!("bay-{session_id}-{}", spec.name),
            },
            image: spec.image.clone(),
            env,
            labels: l,
            cpus: spec.resources.cpus,
            memory_bytes,
            security: profile.security_for(spec),
            volume: volume.to_owned(),
            mount_path: self.config.cargo.mount_path.clone(),
            runtime_port: spec.runtime_port,
            hostname: network.map(|_| spec.name.clone()),
            network: network.map(str::to_owned),
        })
    }

    /// Removes a session's containers and its row (best effort on the engine).
    pub(super) async fn destroy_session(&self, session: &Session) {
        let mut ids: Vec<String> = session.container_list().into_iter().map(|c| c.container_id).collect();
        if let Some(id) = &session.container_id
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
        // Also what carries the session's label but was never recorded (a
        // replica or Bay killed between creating a container and recording it).
        let mut by_label = Labels::new();
        by_label.insert(labels::SESSION_ID.into(), session.id.clone());
        if let Ok(found) = self.driver.list_containers(&by_label).await {
            for c in found {
                if !ids.contains(&c.id) {
                    ids.push(c.id);
                }
            }
        }
        let several = ids.len() > 1;
        for id in ids {
            if let Err(e) = self.driver.destroy_container(&id).await {
                tracing::warn!(container_id = %id, error = %e, "cannot remove container");
            }
        }
        if (several || session.container_list().len() > 1)
            && let Err(e) = self.driver.remove_network(&session_network(&session.id)).await
        {
            tracing::warn!(session_id = %session.id, error = %e, "cannot remove the session network");
        }
        if let Err(e) = self.db.delete_session(&session.id).await {
            tracing::warn!(session_id = %session.id, error = %e, "cannot delete session row");
        }
    }

    /// Pushes the idle deadline out after activity, writing at most every
    /// tenth of the idle timeout (capped at 5 s) so hot loops stay cheap.
    pub async fn record_activity(&self, active: &ActiveSession, profile: &ProfileConfig) -> BayResult<()> {
        let now = now_micros();
        let window = ids::secs(profile.idle_timeout).min(ids::secs(50)) / 10;
        let last = active.last_touch.load(Ordering::Relaxed);
        if now - last >= window {
            active.last_touch.store(now, Ordering::Relaxed);
            self.db.touch_sandbox(&active.sandbox_id, now, Some(now + ids::secs(profile.idle_timeout))).await?;
        }
        Ok(())
    }
}

/// The private network of a multi-container session (reference §6.2).
pub(crate) fn session_network(session_id: &str) -> String {
    format!("bay_net_{session_id}")
}

fn session_containers_json(containers: &[ActiveContainer]) -> String {
    let list: Vec<SessionContainer> = containers
        .iter()
        .map(|c| SessionContainer {
            name: c.name.clone(),
            container_id: c.container_id.clone(),
            endpoint: Some(c.endpoint.clone()),
            status: "running".into(),
            runtime_type: c.runtime_type.clone(),
            capabilities: c.profile_capabilities.clone(),
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}
