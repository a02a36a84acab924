//! Sessions: starting, adopting and tearing down a sandbox's compute.
//!
//! A session starts lazily on a sandbox's first capability call (or right
//! after create, as a background warmup), always under the sandbox lock:
//! generate the session's secret, record the session, ask the driver to
//! launch it (one call: whatever the engine needs — containers, a network of
//! its own, a Pod), poll each runtime's health through its adapter plugin
//! until it answers, read its `/meta`, then record it running. Any failure
//! destroys what the driver created, so nothing is left half-started. Nothing
//! here knows which engine runs the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::adapter::{AdapterError, RuntimeAdapter, RuntimeLink};
use crate::config::{ContainerSpec, ProfileConfig, parse_memory};
use crate::db::cargos::Cargo;
use crate::db::sandboxes::Sandbox;
use crate::db::sessions::{Session, SessionContainer, SessionState};
use crate::driver::{self, ContainerState, DriverError, Labels, LaunchedContainer, SessionSpec, labels};
use crate::error::{BayError, BayResult};
use crate::ids::{self, now_micros};

use super::SandboxManager;

/// A running container of a session, with what Bay learned from its runtime.
#[derive(Clone)]
pub struct ActiveContainer {
    pub name: String,
    pub runtime_type: String,
    pub container_id: String,
    /// Where its runtime answers, and the session's secret.
    pub link: RuntimeLink,
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
    pub usage: Arc<tokio::sync::RwLock<()>>,
    /// Whether a Python call has run: the first one starts the runtime's
    /// kernel, which is admitted like a session start.
    pub python_started: std::sync::atomic::AtomicBool,
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

pub(crate) fn driver_error(err: DriverError) -> BayError {
    match err {
        DriverError::ImageMissing(image) => BayError::internal(format!(
            "image {image:?} is not available on the container engine (build the runtime images with `./dev images`, or set driver.image_pull_policy)"
        )),
        other => BayError::internal(format!("container engine error: {other}")),
    }
}

/// A new session secret: 32 random bytes, hex.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl SandboxManager {
    /// The running session of a sandbox, starting one if needed.
    /// `for_python`: the call that needs the session is a Python call, so a
    /// session started for it starts its kernel at boot, in parallel with
    /// the readiness wait (others start it on their first Python call).
    pub async fn ensure_running(&self, sandbox: &Sandbox, profile: &ProfileConfig, for_python: bool) -> BayResult<Arc<ActiveSession>> {
        if let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone()) {
            // With several replicas, `sandbox` was just read from the
            // database: a session another replica replaced, or paused, is not
            // ours to use as it is.
            if !self.cluster.enabled() || (sandbox.current_session_id.as_deref() == Some(active.session_id.as_str()) && !self.paused(&active).await?)
            {
                return Ok(active);
            }
            self.active.remove_if(&sandbox.id, |_, a| a.session_id == active.session_id);
        }
        let _guard = self.locks.lock(&sandbox.id).await;
        self.ensure_running_locked(sandbox, profile, for_python).await
    }

    /// [`Self::ensure_running`] for a caller that holds the sandbox's lock.
    pub(crate) async fn ensure_running_locked(&self, sandbox: &Sandbox, profile: &ProfileConfig, for_python: bool) -> BayResult<Arc<ActiveSession>> {
        let sandbox = self.db.sandbox(&sandbox.id).await?.ok_or_else(|| BayError::sandbox_not_found(&sandbox.id))?;
        // Someone may have started it while we waited for the lock.
        if let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone()) {
            let paused = self.cluster.enabled() && self.paused(&active).await?;
            if sandbox.current_session_id.as_deref() == Some(active.session_id.as_str()) && !paused {
                return Ok(active);
            }
            self.active.remove(&sandbox.id);
        }
        if let Some(session_id) = &sandbox.current_session_id
            && let Some(mut session) = self.db.session(session_id).await?
        {
            // A paused session resumes for the call, its memory intact; one
            // that cannot be resumed (its containers died meanwhile) is
            // replaced below like any stale session.
            if session.observed() == SessionState::Paused {
                match self.thaw(&sandbox, profile, &session).await {
                    Ok(()) => session.observed_state = SessionState::Running.as_str().into(),
                    Err(e) => {
                        tracing::warn!(sandbox_id = %sandbox.id, session_id = %session.id, error = %e.message, "cannot resume a paused session")
                    }
                }
            }
            if let Some(active) = self.adopt(&sandbox, profile, &session).await? {
                return Ok(active);
            }
        }
        self.start_session(&sandbox, profile, for_python).await
    }

    /// Whether another replica paused this session (its row says so).
    async fn paused(&self, active: &ActiveSession) -> BayResult<bool> {
        Ok(self.db.session(&active.session_id).await?.is_some_and(|s| s.observed() == SessionState::Paused))
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
                python_started: Default::default(),
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
        let live = self.driver.session_status(&session.id).await.ok()?;
        let mut containers = Vec::new();
        for spec in specs {
            let rec = recorded.iter().find(|c| c.name == spec.name)?;
            let running = live.iter().any(|c| c.id == rec.container_id && c.status.state == ContainerState::Running);
            if !running {
                return None;
            }
            let link = RuntimeLink::new(rec.endpoint.clone()?, session.runtime_token.as_deref());
            let adapter = self.plugins.adapter(&spec.runtime_type)?;
            let meta = adapter.meta(&link).await.ok()?;
            containers.push(ActiveContainer {
                name: spec.name.clone(),
                runtime_type: spec.runtime_type.clone(),
                container_id: rec.container_id.clone(),
                link,
                adapter,
                runtime_capabilities: meta.capabilities,
                profile_capabilities: spec.capabilities.clone(),
                version: Some(meta.version),
            });
        }
        Some(containers)
    }

    async fn start_session(&self, sandbox: &Sandbox, profile: &ProfileConfig, for_python: bool) -> BayResult<Arc<ActiveSession>> {
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
            runtime_token: Some(new_token()),
        };
        let spec = self.session_spec(sandbox, profile, &specs, &session, &cargo, for_python)?;
        // Recorded before the driver creates anything, so a crash mid-start
        // leaves a row whose objects reconcile finds by label.
        self.db.insert_session(&session).await?;
        self.db.set_current_session(&sandbox.id, Some(&session.id)).await?;

        let _slot = self.start_slots.acquire().await.map_err(|_| BayError::internal("shutting down"))?;
        let started = Instant::now();
        match self.launch(profile, &session, &spec, &specs, adapters).await {
            Ok(containers) => {
                let now = now_micros();
                let primary_name = profile.primary().name;
                let primary = containers.iter().find(|c| c.name == primary_name).unwrap_or(&containers[0]);
                let json = session_containers_json(&containers);
                self.db.mark_session_running(&session.id, &primary.container_id, &primary.link.endpoint, Some(&json), now).await?;
                self.db.touch_sandbox(&sandbox.id, now, Some(now + ids::secs(profile.idle_timeout))).await?;
                let active = Arc::new(ActiveSession {
                    session_id: session.id.clone(),
                    sandbox_id: sandbox.id.clone(),
                    sandbox: sandbox.clone(),
                    containers,
                    last_touch: AtomicI64::new(now),
                    usage: Default::default(),
                    python_started: Default::default(),
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
                self.destroy_session(&session).await;
                let _ = self.db.set_current_session(&sandbox.id, None).await;
                Err(err)
            }
        }
    }

    /// Launches the session on the engine and waits until every runtime is ready.
    async fn launch(
        &self,
        profile: &ProfileConfig,
        session: &Session,
        spec: &SessionSpec,
        specs: &[ContainerSpec],
        adapters: Vec<Arc<dyn RuntimeAdapter>>,
    ) -> BayResult<Vec<ActiveContainer>> {
        let launched = &self.driver.launch_session(spec).await.map_err(driver_error)?;
        let ready_timeout = Duration::from_secs(profile.startup.ready_timeout_seconds.unwrap_or(self.config.sessions.ready_timeout_seconds));
        let waits = specs.iter().zip(adapters).map(|(spec, adapter)| async move {
            let c: &LaunchedContainer = launched
                .iter()
                .find(|c| c.name == spec.name)
                .ok_or_else(|| BayError::internal(format!("the driver launched no container named {:?}", spec.name)))?;
            let link = RuntimeLink::new(c.endpoint.clone(), session.runtime_token.as_deref());
            let meta = self.wait_ready(&session.id, &link, adapter.as_ref(), &session.sandbox_id, ready_timeout).await?;
            Ok::<_, BayError>(ActiveContainer {
                name: spec.name.clone(),
                runtime_type: spec.runtime_type.clone(),
                container_id: c.id.clone(),
                link,
                adapter,
                runtime_capabilities: meta.capabilities,
                profile_capabilities: spec.capabilities.clone(),
                version: Some(meta.version),
            })
        });
        futures::future::join_all(waits).await.into_iter().collect()
    }

    /// Polls the runtime's health through its adapter until it answers, then
    /// reads its `/meta`. Fails fast when a container of the session exits.
    async fn wait_ready(
        &self,
        session_id: &str,
        link: &RuntimeLink,
        adapter: &dyn RuntimeAdapter,
        sandbox_id: &str,
        ready_timeout: Duration,
    ) -> BayResult<crate::adapter::RuntimeMeta> {
        let begun = Instant::now();
        let deadline = begun + ready_timeout;
        let mut last_check = Instant::now();
        let mut last_error;
        loop {
            match adapter.health(link).await {
                Ok(h) if h.healthy => break,
                Ok(h) => last_error = format!("unhealthy: {}", h.detail.unwrap_or_default()),
                Err(e @ AdapterError::Plugin(_)) => return Err(e.into()),
                Err(e) => last_error = e.to_string(),
            }
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                if let Ok(status) = self.driver.session_status(session_id).await
                    && let Some(dead) = status.iter().find(|c| matches!(c.status.state, ContainerState::Exited | ContainerState::NotFound))
                {
                    let logs = self.driver.session_logs(session_id, 20).await.unwrap_or_default();
                    return Err(BayError::internal(format!(
                        "the runtime container {:?} exited during start ({}): {}",
                        dead.name,
                        dead.status.describe(),
                        logs.trim()
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(BayError::session_not_ready(format!("Runtime failed to become ready: {last_error}"), sandbox_id, 1000));
            }
            tokio::time::sleep(poll_delay(begun.elapsed())).await;
        }
        adapter.meta(link).await.map_err(BayError::from)
    }

    /// What the driver needs to launch a session of `profile` for `sandbox`.
    fn session_spec(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        specs: &[ContainerSpec],
        session: &Session,
        cargo: &Cargo,
        for_python: bool,
    ) -> BayResult<SessionSpec> {
        // Ship starts its kernel at boot for a warm sandbox (handed out ready
        // for Python) and for a session a Python call starts (the kernel then
        // boots while Bay waits for the runtime); others start it on their
        // first Python call.
        let prewarm = for_python || sandbox.owner == super::warm_pool::WARM_OWNER;
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::OWNER.into(), sandbox.owner.clone());
        l.insert(labels::SANDBOX_ID.into(), sandbox.id.clone());
        l.insert(labels::SESSION_ID.into(), session.id.clone());
        l.insert(labels::CARGO_ID.into(), sandbox.cargo_id.clone());
        l.insert(labels::PROFILE_ID.into(), profile.id.clone());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        let containers = specs
            .iter()
            .map(|spec| {
                let memory_bytes = parse_memory(&spec.resources.memory).map_err(|e| BayError::internal(format!("{e:#}")))?;
                Ok(driver::ContainerSpec {
                    name: spec.name.clone(),
                    image: spec.image.clone(),
                    env: self.container_env(sandbox, profile, spec, session, cargo, (specs.len() > 1, prewarm)),
                    labels: Labels::from([(labels::RUNTIME_TYPE.to_owned(), spec.runtime_type.clone())]),
                    cpus: spec.resources.cpus,
                    memory_bytes,
                    security: profile.security_for(spec).to_driver(),
                    runtime_port: spec.runtime_port,
                })
            })
            .collect::<BayResult<Vec<_>>>()?;
        Ok(SessionSpec {
            session_id: session.id.clone(),
            labels: l,
            volume: cargo.driver_ref.clone(),
            mount_path: self.config.cargo.mount_path.clone(),
            containers,
        })
    }

    /// A runtime container's environment: the profile's, the proxy, and
    /// what Bay tells every runtime (its session, secret and cargo limit);
    /// `several`: the session has more than one container; `prewarm`: Ship
    /// starts its kernel at boot.
    fn container_env(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        spec: &ContainerSpec,
        session: &Session,
        cargo: &Cargo,
        (several, prewarm): (bool, bool),
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let profile_env = profile.env_for(spec);
        for (k, v) in &profile_env {
            env.push((k.clone(), v.clone()));
        }
        let proxy = spec.proxy.as_ref().or(profile.proxy.as_ref()).unwrap_or(&self.config.proxy);
        env.extend(proxy.env());
        if !profile_env.is_empty() {
            // Ship turns this into /workspace/.bay_env.sh (Shipyard Neo's Ship does the same).
            let joined: Vec<String> = profile_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            env.push(("BAY_PROFILE_ENV".into(), joined.join(":")));
        }
        env.push(("BAY_SESSION_ID".into(), session.id.clone()));
        env.push(("BAY_SANDBOX_ID".into(), sandbox.id.clone()));
        env.push(("BAY_WORKSPACE_PATH".into(), self.config.cargo.mount_path.clone()));
        if let Some(token) = &session.runtime_token {
            env.push(("BAY_RUNTIME_TOKEN".into(), token.clone()));
        }
        if prewarm {
            env.push(("SHIP_KERNEL_PREWARM".into(), "1".into()));
        }
        if cargo.size_limit_mb > 0 {
            env.push(("BAY_CARGO_LIMIT_BYTES".into(), (cargo.size_limit_mb as u64).saturating_mul(1 << 20).to_string()));
        }
        env.push(("SHIP_IMAGE".into(), spec.image.clone()));
        if several {
            env.push(("BAY_CONTAINER_NAME".into(), spec.name.clone()));
        }
        env
    }

    /// Removes a session's compute (everything the driver finds of it, so a
    /// crash between launch and recording leaves nothing behind) and its row.
    pub(super) async fn destroy_session(&self, session: &Session) {
        // Frozen processes cannot act on the stop signal: thaw them first.
        if session.observed() == SessionState::Paused {
            let _ = self.driver.resume_session(&session.id).await;
        }
        if let Err(e) = self.driver.destroy_session(&session.id).await {
            tracing::warn!(session_id = %session.id, error = %e, "cannot remove the session from the engine");
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
            self.db.touch_cargo(&active.sandbox.cargo_id, now).await?;
        }
        Ok(())
    }
}

fn session_containers_json(containers: &[ActiveContainer]) -> String {
    let list: Vec<SessionContainer> = containers
        .iter()
        .map(|c| SessionContainer {
            name: c.name.clone(),
            container_id: c.container_id.clone(),
            endpoint: Some(c.link.endpoint.clone()),
            status: "running".into(),
            runtime_type: c.runtime_type.clone(),
            capabilities: c.profile_capabilities.clone(),
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

/// How long to wait before the next readiness probe. A runtime usually
/// listens within tens of milliseconds of its container starting, and each
/// probe of a port nobody listens on yet is refused at once, so the first
/// seconds are probed every 5 ms (a doubling back-off lost up to half its
/// step on every cold start); a slow starter is then probed less often.
fn poll_delay(waited: Duration) -> Duration {
    if waited < Duration::from_secs(2) { Duration::from_millis(5) } else { Duration::from_millis(100) }
}
