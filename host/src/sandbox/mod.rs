//! Sandboxes: the stable resource agents hold, its cargo and its session.

pub mod cargos;
pub(crate) mod live;
mod locks;
mod pause;
pub(crate) mod readiness;
mod reconcile;
mod recovery;
pub mod session;
mod shared_browser;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod warm_pool;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;

use crate::adapter::{CapabilityCall, CapabilityOutcome};
use crate::config::{Config, ProfileConfig};
use crate::db::Db;
use crate::db::history::HistoryWriter;
use crate::db::sandboxes::Sandbox;
use crate::db::sessions::SessionState;
use crate::driver::Driver;
use crate::error::{BayError, BayResult, ErrorCode};
use crate::ids::{self, Micros, format_opt_ts, format_ts, now_micros};

pub use locks::SandboxLocks;
pub use session::{ActiveContainer, ActiveSession};

/// The statuses agents see (Shipyard Neo's contract, docs/compatibility.md); computed, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Idle,
    Starting,
    Ready,
    /// Bay extension: the session is frozen with its memory kept.
    Paused,
    Failed,
    Expired,
}

impl SandboxStatus {
    pub fn parse(s: &str) -> Option<SandboxStatus> {
        Some(match s {
            "idle" => SandboxStatus::Idle,
            "starting" => SandboxStatus::Starting,
            "ready" => SandboxStatus::Ready,
            "paused" => SandboxStatus::Paused,
            "failed" => SandboxStatus::Failed,
            "expired" => SandboxStatus::Expired,
            _ => return None,
        })
    }

    pub fn compute(sandbox: &Sandbox, session_state: Option<SessionState>, now: Micros) -> SandboxStatus {
        if sandbox.expires_at.is_some_and(|e| now > e) {
            return SandboxStatus::Expired;
        }
        match session_state {
            None => SandboxStatus::Idle,
            Some(SessionState::Running) => SandboxStatus::Ready,
            Some(SessionState::Paused) => SandboxStatus::Paused,
            Some(SessionState::Pending | SessionState::Starting) => SandboxStatus::Starting,
            Some(SessionState::Failed) => SandboxStatus::Failed,
            Some(_) => SandboxStatus::Idle,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerRuntimeView {
    pub name: String,
    pub runtime_type: String,
    pub status: String,
    pub version: Option<String>,
    pub capabilities: Vec<String>,
    pub healthy: Option<bool>,
}

/// `SandboxResponse` (Shipyard Neo's contract, docs/compatibility.md): every key always present.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxView {
    pub id: String,
    pub status: SandboxStatus,
    pub profile: String,
    pub cargo_id: String,
    pub capabilities: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub idle_expires_at: Option<String>,
    pub containers: Option<Vec<ContainerRuntimeView>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxPage {
    pub items: Vec<SandboxView>,
    pub next_cursor: Option<String>,
}

pub struct CreateSandbox {
    pub profile: String,
    pub cargo_id: Option<String>,
    pub ttl: Option<i64>,
}

pub struct SandboxManager {
    pub(crate) config: Arc<Config>,
    pub(crate) db: Db,
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) plugins: Arc<dyn crate::adapter::Adapters>,
    pub(crate) instance_id: String,
    profiles: Vec<ProfileConfig>,
    profile_index: HashMap<String, usize>,
    pub(crate) locks: SandboxLocks,
    pub(crate) cluster: Arc<crate::cluster::Cluster>,
    pub(crate) active: DashMap<String, Arc<ActiveSession>>,
    history: HistoryWriter,
    pub(crate) warmup: Arc<warm_pool::WarmupQueue>,
    pub(crate) warm_refill: Arc<tokio::sync::Notify>,
    /// Admission for session starts (`sessions.max_concurrent_starts`).
    pub(crate) start_slots: tokio::sync::Semaphore,
    /// Per-owner quotas (`quotas:`).
    pub(crate) quotas: crate::quotas::Quotas,
    /// `browser_service`: browser calls served by one shared Gull.
    shared_browser: Option<shared_browser::SharedBrowser>,
}

/// `expires_at` for a create's `ttl` (`null`, 0 or negative: none). The API
/// validates the range first; this is the checked arithmetic behind it.
pub(crate) fn expiry_for_ttl(now: Micros, ttl: Option<i64>) -> BayResult<Option<Micros>> {
    match ttl.filter(|t| *t > 0) {
        None => Ok(None),
        Some(t) => ids::checked_after(now, t).map(Some).ok_or_else(|| {
            BayError::request_validation(&["body", "ttl"], format!("Input should be less than or equal to {}", ids::MAX_TTL_SECS), "less_than_equal")
        }),
    }
}

impl SandboxManager {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        driver: Arc<dyn Driver>,
        plugins: Arc<dyn crate::adapter::Adapters>,
        cluster: Arc<crate::cluster::Cluster>,
    ) -> SandboxManager {
        let profiles = config.effective_profiles();
        let profile_index = profiles.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        SandboxManager {
            history: HistoryWriter::spawn(db.clone()),
            warmup: Arc::new(warm_pool::WarmupQueue::new(&config.warm_pool)),
            warm_refill: Arc::new(tokio::sync::Notify::new()),
            start_slots: tokio::sync::Semaphore::new(config.sessions.concurrent_starts()),
            quotas: crate::quotas::Quotas::new(config.quotas.clone()),
            shared_browser: shared_browser::SharedBrowser::new(&config.browser_service),
            instance_id: config.gc.effective_instance_id(),
            config,
            db,
            driver,
            plugins,
            profiles,
            profile_index,
            locks: SandboxLocks::new(Some(cluster.clone())),
            cluster,
            active: DashMap::new(),
        }
    }

    pub fn profiles(&self) -> &[ProfileConfig] {
        &self.profiles
    }

    pub fn profile(&self, id: &str) -> Option<&ProfileConfig> {
        self.profile_index.get(id).map(|&i| &self.profiles[i])
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The execution-history writer (rows are committed off the request path).
    pub fn history(&self) -> &HistoryWriter {
        &self.history
    }

    /// A live sandbox of `owner` (404 otherwise).
    pub async fn find(&self, owner: &str, id: &str) -> BayResult<Sandbox> {
        self.db.sandbox_for_owner(id, owner).await?.ok_or_else(|| BayError::sandbox_not_found(id))
    }

    /// A live sandbox of `owner` about to receive a capability call. A sandbox
    /// with a running session is served from memory (the hot path does no
    /// database read); any other goes to the database.
    pub async fn find_for_call(&self, owner: &str, id: &str) -> BayResult<Sandbox> {
        // With other replicas, another one may have stopped or deleted it:
        // the database is the only truth.
        if !self.cluster.enabled()
            && let Some(active) = self.active.get(id)
            && active.sandbox.owner == owner
        {
            return Ok(active.sandbox.clone());
        }
        self.find(owner, id).await
    }

    /// The profile of a sandbox (a profile removed from the config since the
    /// sandbox was created is an error the operator must fix).
    pub fn profile_of(&self, sandbox: &Sandbox) -> BayResult<&ProfileConfig> {
        self.profile(&sandbox.profile_id)
            .ok_or_else(|| BayError::internal(format!("profile {:?} of sandbox {} is no longer configured", sandbox.profile_id, sandbox.id)))
    }

    /// The level-1 capability check (Shipyard Neo's contract, docs/compatibility.md): the profile must offer it.
    pub fn check_capability(&self, profile: &ProfileConfig, capability: &str) -> BayResult<()> {
        let available = profile.capability_set();
        if available.iter().any(|c| c == capability) {
            Ok(())
        } else {
            Err(BayError::capability_not_supported(
                format!("Profile '{}' does not support capability: {capability}", profile.id),
                capability,
                &available,
            ))
        }
    }

    pub async fn create(self: &Arc<Self>, owner: &str, req: CreateSandbox) -> BayResult<SandboxView> {
        let profile =
            self.profile(&req.profile).ok_or_else(|| BayError::validation(format!("Invalid profile: {}", crate::error::echo(&req.profile))))?.clone();
        // Held until the sandbox is stored (a warm claim counts as a create).
        let new_cargo_mb = req.cargo_id.is_none().then_some(self.config.cargo.default_size_limit_mb);
        let _admission = self.quotas.admit_sandbox(&self.db, owner, new_cargo_mb).await?;
        if req.cargo_id.is_none()
            && let Some(claimed) = self.claim_warm(owner, &profile, req.ttl).await?
        {
            // As for any create, the status is reported without the session.
            return Ok(self.view(&claimed, None, now_micros()));
        }
        let now = now_micros();
        let sandbox_id = ids::sandbox_id();
        let expires_at = expiry_for_ttl(now, req.ttl)?;

        let (cargo, created_volume) = match &req.cargo_id {
            Some(cargo_id) => {
                let cargo = self
                    .db
                    .cargo_for_owner(cargo_id, owner)
                    .await?
                    .ok_or_else(|| BayError::not_found(format!("Cargo not found: {}", crate::error::echo(cargo_id))))?;
                (cargo, false)
            }
            None => (self.new_cargo(owner, Some(&sandbox_id), self.config.cargo.default_size_limit_mb).await?, true),
        };
        let sandbox = Sandbox {
            id: sandbox_id,
            owner: owner.to_owned(),
            profile_id: profile.id.clone(),
            cargo_id: cargo.id.clone(),
            current_session_id: None,
            expires_at,
            idle_expires_at: None,
            deleted_at: None,
            created_at: now,
            last_active_at: now,
            is_warm_pool: 0,
        };
        let stored = async {
            let mut tx = self.db.begin().await?;
            if created_volume {
                self.db.insert_cargo(&mut *tx, &cargo).await?;
            }
            self.db.insert_sandbox(&mut *tx, &sandbox).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = stored {
            if created_volume {
                let _ = self.driver.delete_volume(&cargo.driver_ref).await;
            }
            return Err(e.into());
        }
        tracing::info!(sandbox_id = %sandbox.id, owner, profile = %profile.id, cargo_id = %cargo.id, "sandbox created");
        if profile.start_on_create.unwrap_or(self.config.sessions.warmup_on_create) {
            self.warmup.push(&sandbox.id);
        }
        // Like Shipyard Neo, create reports the stored state without looking at
        // the (just queued) session: `idle`, or `expired` for a past TTL.
        Ok(self.view(&sandbox, None, now))
    }

    fn view(&self, s: &Sandbox, session_state: Option<SessionState>, now: Micros) -> SandboxView {
        SandboxView {
            id: s.id.clone(),
            status: SandboxStatus::compute(s, session_state, now),
            profile: s.profile_id.clone(),
            cargo_id: s.cargo_id.clone(),
            capabilities: self.profile(&s.profile_id).map(|p| p.capability_set()).unwrap_or_default(),
            created_at: format_ts(s.created_at),
            expires_at: format_opt_ts(s.expires_at),
            idle_expires_at: format_opt_ts(s.idle_expires_at),
            containers: None,
        }
    }

    async fn session_state(&self, sandbox: &Sandbox) -> BayResult<Option<SessionState>> {
        if self.active.contains_key(&sandbox.id) {
            return Ok(Some(SessionState::Running));
        }
        Ok(match &sandbox.current_session_id {
            Some(id) => self.db.session(id).await?.map(|s| s.observed()),
            None => None,
        })
    }

    /// `GET /v1/sandboxes/{id}`: with the `containers` block when ready.
    pub async fn get(&self, owner: &str, id: &str) -> BayResult<SandboxView> {
        let sandbox = self.find(owner, id).await?;
        let state = self.session_state(&sandbox).await?;
        let mut view = self.view(&sandbox, state, now_micros());
        if view.status == SandboxStatus::Ready
            && let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone())
        {
            view.containers = Some(self.container_views(&active).await);
        }
        Ok(view)
    }

    /// Versions from `/meta`, health probed concurrently within a 2 s budget.
    async fn container_views(&self, active: &ActiveSession) -> Vec<ContainerRuntimeView> {
        let single = active.containers.len() == 1;
        let probes = active.containers.iter().map(|c| async move {
            tokio::time::timeout(Duration::from_secs(2), c.adapter.health(&c.link)).await.ok().and_then(|r| r.ok()).map(|h| h.healthy)
        });
        let health = futures::future::join_all(probes).await;
        active
            .containers
            .iter()
            .zip(health)
            .map(|(c, healthy)| ContainerRuntimeView {
                // Single-container sessions are reported as Shipyard Neo does:
                // named after the runtime type, with no capability list.
                name: if single { c.runtime_type.clone() } else { c.name.clone() },
                runtime_type: c.runtime_type.clone(),
                status: "running".into(),
                version: c.version.clone(),
                capabilities: if single { vec![] } else { c.profile_capabilities.clone() },
                healthy,
            })
            .collect()
    }

    /// `GET /v1/sandboxes` (Shipyard Neo's contract, docs/compatibility.md): ordered by id, cursor = last id.
    pub async fn list(&self, owner: &str, limit: usize, cursor: Option<&str>, status: Option<SandboxStatus>) -> BayResult<SandboxPage> {
        let batch = (limit * 5).clamp(50, 500);
        let budget = (limit * 20).max(1000);
        let now = now_micros();
        let mut items = Vec::new();
        let mut scanned = 0usize;
        let mut after = cursor.map(str::to_owned);
        loop {
            let rows = self.db.list_sandboxes(owner, after.as_deref(), batch as i64).await?;
            let exhausted = rows.len() < batch;
            let session_ids: Vec<String> = rows.iter().filter_map(|r| r.current_session_id.clone()).collect();
            let states: HashMap<String, SessionState> =
                self.db.sessions_by_ids(&session_ids).await?.into_iter().map(|s| (s.id.clone(), s.observed())).collect();
            for (i, row) in rows.iter().enumerate() {
                scanned += 1;
                let state = if self.active.contains_key(&row.id) {
                    Some(SessionState::Running)
                } else {
                    row.current_session_id.as_ref().and_then(|id| states.get(id).copied())
                };
                let view = self.view(row, state, now);
                if status.is_none_or(|s| s == view.status) {
                    items.push(view);
                    if items.len() == limit {
                        let more = i + 1 < rows.len() || !self.db.list_sandboxes(owner, Some(&row.id), 1).await?.is_empty();
                        let next_cursor = more.then(|| row.id.clone());
                        return Ok(SandboxPage { items, next_cursor });
                    }
                }
                if scanned >= budget {
                    // Scan budget spent: hand back where we stopped.
                    let last = rows.last().map(|r| r.id.clone());
                    return Ok(SandboxPage { items, next_cursor: if exhausted && i + 1 == rows.len() { None } else { last.or(after) } });
                }
            }
            if exhausted {
                return Ok(SandboxPage { items, next_cursor: None });
            }
            after = rows.last().map(|r| r.id.clone());
        }
    }

    /// `POST …/extend_ttl` (Shipyard Neo's contract, docs/compatibility.md): `expires_at = max(old, now) + extend_by`.
    /// Answers like create (status computed without the session).
    pub async fn extend_ttl(&self, owner: &str, id: &str, extend_by: i64) -> BayResult<SandboxView> {
        if extend_by <= 0 {
            return Err(BayError::validation("extend_by must be a positive integer"));
        }
        let sandbox = self.find(owner, id).await?;
        let _guard = self.locks.lock(&sandbox.id).await;
        let sandbox = self.find(owner, id).await?;
        let now = now_micros();
        let Some(expires_at) = sandbox.expires_at else {
            return Err(BayError::new(ErrorCode::SandboxTtlInfinite, format!("Sandbox {id} has no TTL to extend")).with("sandbox_id", id));
        };
        if expires_at < now {
            return Err(BayError::new(ErrorCode::SandboxExpired, format!("Sandbox {id} has expired"))
                .with("sandbox_id", id)
                .with("expires_at", format_ts(expires_at)));
        }
        let new_expiry = ids::checked_after(expires_at.max(now), extend_by).ok_or_else(|| {
            BayError::request_validation(
                &["body", "extend_by"],
                format!("Input should be at most {} and keep the expiry before {}", ids::MAX_TTL_SECS, format_ts(ids::LATEST_TIMESTAMP)),
                "less_than_equal",
            )
        })?;
        self.db.set_sandbox_expiry(&sandbox.id, Some(new_expiry)).await?;
        let updated = Sandbox { expires_at: Some(new_expiry), ..sandbox };
        Ok(self.view(&updated, None, now))
    }

    /// `POST …/keepalive`: pushes the idle deadline out; starts nothing.
    /// On a paused sandbox it pushes out when the paused session is stopped.
    pub async fn keepalive(&self, owner: &str, id: &str) -> BayResult<()> {
        let sandbox = self.find(owner, id).await?;
        let profile = self.profile_of(&sandbox)?;
        let paused = self.session_state(&sandbox).await? == Some(SessionState::Paused);
        let now = now_micros();
        let keep = if paused { profile.paused_timeout } else { profile.idle_timeout };
        self.db.touch_sandbox(&sandbox.id, now, Some(now + ids::secs(keep))).await?;
        Ok(())
    }

    /// `POST …/stop`: removes the compute, keeps the cargo. Idempotent.
    pub async fn stop(&self, owner: &str, id: &str) -> BayResult<()> {
        let sandbox = self.find(owner, id).await?;
        let _guard = self.locks.lock(&sandbox.id).await;
        // A warmup queued by the create, or waiting for this lock, would
        // start the session again right after.
        self.warmup.cancel(&sandbox.id);
        self.teardown_sessions(&sandbox.id).await?;
        self.db.clear_sandbox_session(&sandbox.id).await?;
        tracing::info!(sandbox_id = %sandbox.id, "sandbox stopped");
        Ok(())
    }

    pub(crate) async fn teardown_sessions(&self, sandbox_id: &str) -> BayResult<()> {
        self.active.remove(sandbox_id);
        for session in self.db.sessions_of_sandbox(sandbox_id).await? {
            self.db.update_session_state(&session.id, SessionState::Stopped, SessionState::Stopping, now_micros()).await?;
            self.destroy_session(&session).await;
        }
        Ok(())
    }

    /// `DELETE /v1/sandboxes/{id}`: removes the containers, the managed cargo
    /// (volume and row) and soft-deletes the sandbox. A second delete is a no-op.
    pub async fn delete(&self, owner: &str, id: &str) -> BayResult<()> {
        let Some(sandbox) = self.db.sandbox_for_owner_any_state(id, owner).await? else {
            return Err(BayError::sandbox_not_found(id));
        };
        if sandbox.deleted_at.is_some() {
            return Ok(());
        }
        let guard = self.locks.lock(&sandbox.id).await;
        self.destroy_sandbox(&sandbox).await?;
        drop(guard);
        self.locks.forget(&sandbox.id);
        Ok(())
    }

    /// Deletes a sandbox; the caller holds its lock.
    pub(crate) async fn destroy_sandbox(&self, sandbox: &Sandbox) -> BayResult<()> {
        self.teardown_sessions(&sandbox.id).await?;
        // Sessions whose rows are gone (a crash mid-start, a replica killed
        // before recording) would keep the volume in use: remove whatever
        // carries the sandbox's label.
        let by_label = crate::driver::Labels::from([(crate::driver::labels::SANDBOX_ID.to_owned(), sandbox.id.clone())]);
        for s in self.driver.list_sessions(&by_label).await.unwrap_or_default() {
            if let Err(e) = self.driver.destroy_session(&s.session_id).await {
                tracing::warn!(session_id = %s.session_id, error = %e, "cannot remove session");
            }
        }
        self.db.soft_delete_sandbox(&sandbox.id, now_micros()).await?;
        if let Some(shared) = &self.shared_browser
            && self.profile(&sandbox.profile_id).is_none_or(|p| p.capability_set().iter().any(|c| c == "browser") && shared.serves(p))
        {
            shared.forget(&sandbox.id).await;
        }
        if let Some(cargo) = self.db.cargo(&sandbox.cargo_id).await?
            && cargo.is_managed()
            && cargo.managed_by_sandbox_id.as_deref() == Some(sandbox.id.as_str())
        {
            self.driver.delete_volume(&cargo.driver_ref).await.map_err(|e| BayError::internal(format!("cannot delete the cargo volume: {e}")))?;
            self.db.delete_cargo_row(&cargo.id).await?;
        }
        tracing::info!(sandbox_id = %sandbox.id, "sandbox deleted");
        Ok(())
    }

    /// Runs one capability call on a sandbox: starts its session if needed,
    /// routes to the container serving the capability, applies the runtime
    /// (level 2) capability check, and calls the adapter plugin. A call that
    /// finds its runtime dead is retried once on a new session when it cannot
    /// have run (see [`recovery`]).
    pub async fn call(&self, sandbox: &Sandbox, profile: &ProfileConfig, call: CapabilityCall) -> BayResult<(CapabilityOutcome, String)> {
        if call.capability() == "browser"
            && let Some(shared) = self.shared_browser.as_ref().filter(|s| s.serves(profile))
        {
            let outcome = shared.call(sandbox, call).await?;
            return Ok((outcome, sandbox.current_session_id.clone().unwrap_or_default()));
        }
        let spare = call.try_clone();
        match self.call_once(sandbox, profile, call).await? {
            Ok(done) => Ok(done),
            Err((err, recovery)) => match (recovery, spare) {
                (recovery::Recovery::Retry, Some(again)) => match self.call_once(sandbox, profile, again).await? {
                    Ok(done) => Ok(done),
                    Err((err, _)) => Err(err),
                },
                (recovery::Recovery::Retry, None) => {
                    Err(BayError::session_not_ready("The runtime had stopped; a new one is starting, retry the upload", &sandbox.id, 1000))
                }
                (recovery::Recovery::Failed(e), _) => Err(e),
                (recovery::Recovery::Alive, _) => Err(err),
            },
        }
    }

    /// The running session for a call, held for it (shared) so idle GC never
    /// stops or pauses a session mid-call. A session paused between finding it
    /// and holding it is no longer the sandbox's active one: found again
    /// (which resumes it).
    pub(crate) async fn session_for_call(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        for_python: bool,
    ) -> BayResult<(Arc<ActiveSession>, tokio::sync::OwnedRwLockReadGuard<()>)> {
        for attempt in 1.. {
            let active = self.ensure_running(sandbox, profile, for_python).await?;
            let in_use = active.usage.clone().read_owned().await;
            if attempt == 3 || self.active.get(&sandbox.id).is_some_and(|a| Arc::ptr_eq(&a, &active)) {
                return Ok((active, in_use));
            }
        }
        unreachable!("the loop returns by its third attempt")
    }

    /// One attempt; a failure to reach the runtime comes back with its diagnosis.
    async fn call_once(
        &self,
        sandbox: &Sandbox,
        profile: &ProfileConfig,
        call: CapabilityCall,
    ) -> BayResult<Result<(CapabilityOutcome, String), (BayError, recovery::Recovery)>> {
        let capability = call.capability().to_owned();
        let (active, _in_use) = self.session_for_call(sandbox, profile, capability == "python").await?;
        let container = route(&active, profile, &capability)?;
        // A session's first Python call starts its kernel: admit it like a
        // session start, so a burst of new sandboxes does not start every
        // kernel at once on a few cores.
        let _kernel_slot = if capability == "python" && !active.python_started.load(std::sync::atomic::Ordering::Relaxed) {
            let slot = self.start_slots.acquire().await.map_err(|_| BayError::internal("shutting down"))?;
            Some(slot)
        } else {
            None
        };
        self.record_activity(&active, profile).await?;
        let started = now_micros();
        // The plugin serving the runtime type now (hot reload), else the one
        // the session started with.
        let adapter = self.plugins.adapter(&container.runtime_type).unwrap_or_else(|| container.adapter.clone());
        match adapter.invoke(&container.link, call).await {
            Ok(outcome) => {
                if capability == "python" {
                    active.python_started.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(Ok((outcome, active.session_id.clone())))
            }
            Err(e @ (crate::adapter::AdapterError::Unreachable(_) | crate::adapter::AdapterError::NotConnected(_))) => {
                let never_connected = matches!(e, crate::adapter::AdapterError::NotConnected(_));
                let recovery = self.diagnose(&sandbox.id, &active.session_id, &container.container_id, started, never_connected).await;
                Ok(Err((e.into(), recovery)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The container serving `capability` in a running session, after the
/// runtime-level check (Shipyard Neo's level 2: the runtime's `/meta` lists it).
pub(crate) fn route<'a>(active: &'a ActiveSession, profile: &ProfileConfig, capability: &str) -> BayResult<&'a ActiveContainer> {
    let container = active.container_for(profile, capability).ok_or_else(|| {
        BayError::capability_not_supported(format!("No container provides capability: {capability}"), capability, &profile.capability_set())
    })?;
    if !container.runtime_capabilities.iter().any(|c| c == capability) {
        return Err(BayError::capability_not_supported(
            format!("Runtime does not support capability: {capability}"),
            capability,
            &container.runtime_capabilities,
        ));
    }
    Ok(container)
}
