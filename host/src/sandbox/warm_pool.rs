//! The warm pool and the warmup queue (Shipyard Neo's contract, docs/compatibility.md).
//!
//! For profiles with `warm_pool_size > 0`, Bay keeps that many sandboxes with
//! a running session, owned by `warm-pool`. A create without a `cargo_id`
//! claims the oldest available one with a conditional update (two creates can
//! never claim the same one), re-owns it and its cargo to the caller and binds
//! the caller's TTL at claim time; its first exec needs no container start.
//! A warm runtime is only handed out if it was started with the profile's
//! current environment (late binding: a changed profile env retires it).
//!
//! The warmup queue is bounded and deduplicated; workers start sessions in the
//! background — for warm sandboxes and right after ordinary creates.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::{ActiveSession, SandboxManager};
use crate::config::{DropPolicy, ProfileConfig, WarmPoolConfig};
use crate::db::sandboxes::Sandbox;
use crate::error::{BayResult, ErrorCode};
use crate::ids::{self, Micros, now_micros};

pub const WARM_OWNER: &str = "warm-pool";

/// Bounded, deduplicated queue of sandbox ids to start in the background.
pub struct WarmupQueue {
    inner: std::sync::Mutex<(VecDeque<String>, HashSet<String>)>,
    /// Sandboxes a worker has taken and not finished, and those of them
    /// stopped meanwhile ([`WarmupQueue::cancel`]): a stop must not be
    /// undone by a warmup that was waiting for the sandbox's lock.
    taken: std::sync::Mutex<(HashSet<String>, HashSet<String>)>,
    ready: Notify,
    max: usize,
    policy: DropPolicy,
    alert_every: u64,
    dropped: AtomicU64,
}

impl WarmupQueue {
    pub fn new(config: &WarmPoolConfig) -> WarmupQueue {
        WarmupQueue {
            inner: Default::default(),
            taken: Default::default(),
            ready: Notify::new(),
            max: config.warmup_queue_max_size.max(1),
            policy: config.warmup_queue_drop_policy,
            alert_every: config.warmup_queue_drop_alert_threshold.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn push(&self, sandbox_id: &str) {
        let mut guard = self.inner.lock().expect("warmup queue");
        let (queue, queued) = &mut *guard;
        if queued.contains(sandbox_id) {
            return;
        }
        if queue.len() >= self.max {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_multiple_of(self.alert_every) {
                tracing::warn!(dropped, policy = ?self.policy, "warmup queue is full; dropping work");
            }
            match self.policy {
                DropPolicy::DropNewest => return,
                DropPolicy::DropOldest => {
                    if let Some(old) = queue.pop_front() {
                        queued.remove(&old);
                    }
                }
            }
        }
        queue.push_back(sandbox_id.to_owned());
        queued.insert(sandbox_id.to_owned());
        drop(guard);
        self.ready.notify_one();
    }

    /// A stop: the sandbox's queued warmup is dropped, and one a worker has
    /// already taken does nothing.
    pub fn cancel(&self, sandbox_id: &str) {
        {
            let mut guard = self.inner.lock().expect("warmup queue");
            let (queue, queued) = &mut *guard;
            if queued.remove(sandbox_id) {
                queue.retain(|id| id != sandbox_id);
            }
        }
        let mut taken = self.taken.lock().expect("warmup queue");
        if taken.0.contains(sandbox_id) {
            taken.1.insert(sandbox_id.to_owned());
        }
    }

    /// A worker is done with `sandbox_id`: whether it was cancelled meanwhile.
    fn finish(&self, sandbox_id: &str) -> bool {
        let mut taken = self.taken.lock().expect("warmup queue");
        taken.0.remove(sandbox_id);
        taken.1.remove(sandbox_id)
    }

    fn cancelled(&self, sandbox_id: &str) -> bool {
        self.taken.lock().expect("warmup queue").1.contains(sandbox_id)
    }

    async fn pop(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut guard = self.inner.lock().expect("warmup queue");
                let (queue, queued) = &mut *guard;
                if let Some(id) = queue.pop_front() {
                    queued.remove(&id);
                    self.taken.lock().expect("warmup queue").0.insert(id.clone());
                    return id;
                }
            }
            notified.await;
        }
    }
}

/// The environment a profile's runtimes start with, hashed.
pub fn env_hash(profile: &ProfileConfig) -> String {
    let mut h = Sha256::new();
    for c in profile.containers() {
        h.update(c.name.as_bytes());
        h.update(c.image.as_bytes());
        for (k, v) in profile.env_for(&c) {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\\0");
        }
    }
    hex::encode(&h.finalize()[..8])
}

impl SandboxManager {
    /// Starts the warmup workers.
    pub fn spawn_warmup_workers(self: &Arc<Self>) {
        for _ in 0..self.config.warm_pool.warmup_queue_workers.max(1) {
            let this = Arc::downgrade(self);
            let queue = self.warmup.clone();
            tokio::spawn(async move {
                loop {
                    let id = queue.pop().await;
                    let Some(manager) = this.upgrade() else {
                        return;
                    };
                    manager.warm_up(&id).await;
                }
            });
        }
    }

    /// Starts a sandbox's session in the background; a warm sandbox becomes available.
    pub(crate) async fn warm_up(&self, sandbox_id: &str) {
        let Ok(Some(sandbox)) = self.db.sandbox(sandbox_id).await else {
            self.warmup.finish(sandbox_id);
            return;
        };
        let Some(profile) = self.profile(&sandbox.profile_id).cloned() else {
            self.warmup.finish(sandbox_id);
            return;
        };
        // Under the sandbox's lock, so a stop either came first (and
        // cancelled this warmup) or comes after the session is up.
        let guard = self.locks.lock(&sandbox.id).await;
        let started = if self.warmup.cancelled(sandbox_id) { None } else { Some(self.ensure_running_locked(&sandbox, &profile, false).await) };
        drop(guard);
        self.warmup.finish(sandbox_id);
        let Some(started) = started else {
            tracing::debug!(sandbox_id, "warmup cancelled by a stop");
            return;
        };
        match started {
            Ok(_) if sandbox.is_warm_pool != 0 => {
                let now = now_micros();
                let rotate_at = now + ids::secs(profile.warm_rotate_ttl.max(1));
                if let Err(e) = self.db.mark_warm_available(&sandbox.id, now, rotate_at, &env_hash(&profile)).await {
                    tracing::warn!(sandbox_id, error = %e, "cannot mark warm sandbox available");
                }
            }
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => tracing::warn!(sandbox_id, error = %e.message, "background warmup failed"),
        }
    }

    /// Claims an available warm sandbox of `profile` for `owner`, binding the
    /// TTL now. `None` when the pool has none ready.
    pub(crate) async fn claim_warm(&self, owner: &str, profile: &ProfileConfig, ttl: Option<i64>) -> BayResult<Option<Sandbox>> {
        if !self.config.warm_pool.enabled || profile.warm_pool_size == 0 {
            return Ok(None);
        }
        let hash = env_hash(profile);
        for _ in 0..3 {
            let now = now_micros();
            let expires_at: Option<Micros> = super::expiry_for_ttl(now, ttl)?;
            let Some(id) = self.db.claim_warm_sandbox(&profile.id, &hash, owner, now, expires_at).await? else {
                return Ok(None);
            };
            let Some(sandbox) = self.db.sandbox(&id).await? else {
                continue;
            };
            self.db.reown_cargo(&sandbox.cargo_id, owner).await?;
            // The cached session still carries the warm owner: re-key it.
            if let Some(active) = self.active.get(&sandbox.id).map(|a| a.clone()) {
                let updated = Arc::new(ActiveSession {
                    session_id: active.session_id.clone(),
                    sandbox_id: active.sandbox_id.clone(),
                    sandbox: sandbox.clone(),
                    containers: active.containers.clone(),
                    last_touch: std::sync::atomic::AtomicI64::new(0),
                    usage: Default::default(),
                    python_started: std::sync::atomic::AtomicBool::new(true),
                });
                self.active.insert(sandbox.id.clone(), updated);
            }
            tracing::info!(sandbox_id = %sandbox.id, owner, profile = %profile.id, "claimed a warm sandbox");
            self.warm_refill.notify_one();
            return Ok(Some(sandbox));
        }
        Ok(None)
    }

    /// One pass of the warm-pool scheduler over every profile.
    pub async fn maintain_warm_pool(&self) -> BayResult<()> {
        let now = now_micros();
        for profile in self.profiles().to_vec() {
            if profile.warm_pool_size == 0 {
                continue;
            }
            let hash = env_hash(&profile);
            for w in self.db.warm_sandboxes(&profile.id).await? {
                let stale_env = w.warm_state.as_deref() == Some("available") && w.warm_env_hash.as_deref() != Some(hash.as_str());
                let rotate = w.warm_rotate_at.is_some_and(|t| t < now);
                if stale_env || rotate || w.warm_state.as_deref() == Some("retiring") {
                    self.retire_warm(&w.id).await;
                } else if w.warm_state.is_none() {
                    self.warmup.push(&w.id);
                } else if !self.active.contains_key(&w.id) && !self.session_running(&w.id).await {
                    // Its runtime died: back to pending, warm it again.
                    self.db.reset_warm(&w.id).await?;
                    self.warmup.push(&w.id);
                }
            }
            let live = self.db.warm_sandboxes(&profile.id).await?.len();
            for _ in live..profile.warm_pool_size as usize {
                let sandbox = self.create_warm(&profile).await?;
                self.warmup.push(&sandbox.id);
            }
        }
        Ok(())
    }

    async fn session_running(&self, sandbox_id: &str) -> bool {
        let Ok(Some(s)) = self.db.sandbox(sandbox_id).await else {
            return false;
        };
        match &s.current_session_id {
            Some(sid) => {
                matches!(self.db.session(sid).await, Ok(Some(sess)) if sess.observed() == crate::db::sessions::SessionState::Running)
            }
            None => false,
        }
    }

    async fn retire_warm(&self, id: &str) {
        let _ = self.db.set_warm_state(id, "retiring").await;
        let guard = self.locks.lock(id).await;
        if let Ok(Some(s)) = self.db.sandbox(id).await
            && s.is_warm_pool != 0
            && let Err(e) = self.destroy_sandbox(&s).await
        {
            tracing::warn!(sandbox_id = id, error = %e.message, "cannot retire warm sandbox");
        }
        drop(guard);
        self.locks.forget(id);
    }

    async fn create_warm(&self, profile: &ProfileConfig) -> BayResult<Sandbox> {
        let now = now_micros();
        let id = ids::sandbox_id();
        let cargo = self.new_cargo(WARM_OWNER, Some(&id), self.config.cargo.default_size_limit_mb).await?;
        let sandbox = Sandbox {
            id,
            owner: WARM_OWNER.into(),
            profile_id: profile.id.clone(),
            cargo_id: cargo.id.clone(),
            current_session_id: None,
            expires_at: None,
            idle_expires_at: None,
            deleted_at: None,
            created_at: now,
            last_active_at: now,
            is_warm_pool: 1,
        };
        let stored = async {
            let mut tx = self.db.begin().await?;
            self.db.insert_cargo(&mut *tx, &cargo).await?;
            self.db.insert_sandbox(&mut *tx, &sandbox).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = stored {
            let _ = self.driver.delete_volume(&cargo.driver_ref).await;
            return Err(e.into());
        }
        Ok(sandbox)
    }

    /// The scheduler: a pass at startup (when configured), then one per
    /// interval or right after a claim.
    pub fn spawn_warm_pool(self: &Arc<Self>) {
        let config = self.config.warm_pool.clone();
        if !config.enabled || self.profiles().iter().all(|p| p.warm_pool_size == 0) {
            return;
        }
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(manager) = this.upgrade() else {
                    return;
                };
                if (!first || config.run_on_startup)
                    && manager.cluster.is_leader()
                    && let Err(e) = manager.maintain_warm_pool().await
                {
                    tracing::warn!(error = %e.message, "warm pool maintenance failed");
                }
                first = false;
                let refill = manager.warm_refill.clone();
                drop(manager);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(config.interval_seconds.max(1))) => {}
                    _ = refill.notified() => {}
                }
            }
        });
    }
}
