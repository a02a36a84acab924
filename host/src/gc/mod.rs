//! Garbage collection (Shipyard Neo's contract, docs/compatibility.md): reclaims idle sessions, deletes expired
//! sandboxes, and removes cargos and containers nothing refers to.
//!
//! Cycles are serialised; each task works item by item under the sandbox
//! lock and re-checks its condition there, so a concurrent call on the same
//! sandbox either keeps it alive or finds it gone, never half-destroyed. An
//! idle session in use by a running call is skipped; an idle session of a
//! profile with `idle_action: pause` is paused, and stopped once it has been
//! paused for `paused_timeout` (host/src/sandbox/pause.rs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::GcConfig;
use crate::driver::{Labels, labels};
use crate::ids::now_micros;
use crate::sandbox::SandboxManager;

pub const TASKS: [&str; 4] = ["idle_session", "expired_sandbox", "orphan_cargo", "orphan_container"];

#[derive(Debug, Clone, Serialize, Default)]
pub struct TaskResult {
    pub task_name: String,
    pub cleaned_count: u64,
    pub skipped_count: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub results: Vec<TaskResult>,
    pub total_cleaned: u64,
    pub total_errors: u64,
    pub duration_ms: u64,
}

pub struct Gc {
    config: GcConfig,
    manager: Arc<SandboxManager>,
    instance_id: String,
    run_lock: tokio::sync::Mutex<()>,
}

/// A cycle is already running.
#[derive(Debug)]
pub struct Busy;

impl Gc {
    pub fn new(config: GcConfig, manager: Arc<SandboxManager>) -> Arc<Gc> {
        let instance_id = config.effective_instance_id();
        Arc::new(Gc { config, manager, instance_id, run_lock: tokio::sync::Mutex::new(()) })
    }

    fn enabled(&self, task: &str) -> bool {
        match task {
            "idle_session" => self.config.idle_session.enabled,
            "expired_sandbox" => self.config.expired_sandbox.enabled,
            "orphan_cargo" => self.config.orphan_cargo.enabled,
            "orphan_container" => self.config.orphan_container.enabled,
            _ => false,
        }
    }

    /// `GET /v1/admin/gc/status`.
    pub fn status(&self) -> Value {
        let tasks: serde_json::Map<String, Value> = TASKS.iter().map(|t| (t.to_string(), json!({ "enabled": self.enabled(t) }))).collect();
        json!({
            "enabled": self.config.enabled,
            "is_running": self.run_lock.try_lock().is_err(),
            "instance_id": self.instance_id,
            // Bay: which replica answered, and whether it runs the periodic GC.
            "replica_id": self.manager.cluster.replica_id(),
            "leader": self.manager.cluster.is_leader(),
            "interval_seconds": self.config.interval_seconds,
            "tasks": tasks,
        })
    }

    /// Runs one cycle of every enabled task, unless one is already running.
    pub async fn run_once(&self) -> Result<RunResult, Busy> {
        let _running = self.run_lock.try_lock().map_err(|_| Busy)?;
        let started = Instant::now();
        let mut results = Vec::new();
        for task in TASKS {
            if !self.enabled(task) {
                continue;
            }
            let result = match task {
                "idle_session" => self.idle_session().await,
                "expired_sandbox" => self.expired_sandbox().await,
                "orphan_cargo" => self.orphan_cargo().await,
                _ => self.orphan_container().await,
            };
            if result.cleaned_count > 0 || !result.errors.is_empty() {
                tracing::info!(task, cleaned = result.cleaned_count, skipped = result.skipped_count, errors = result.errors.len(), "gc task");
            }
            results.push(result);
        }
        let total_cleaned = results.iter().map(|r| r.cleaned_count).sum();
        let total_errors = results.iter().map(|r| r.errors.len() as u64).sum();
        Ok(RunResult { results, total_cleaned, total_errors, duration_ms: started.elapsed().as_millis() as u64 })
    }

    /// The background loop: one cycle at startup (when configured), then one
    /// per interval.
    pub fn spawn(self: &Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        let gc = self.clone();
        tokio::spawn(async move {
            if gc.config.run_on_startup && gc.manager.cluster.is_leader() {
                let _ = gc.run_once().await;
            }
            let mut tick = tokio::time::interval(Duration::from_secs(gc.config.interval_seconds.max(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                // With several replicas, only the leader collects periodically.
                if gc.manager.cluster.is_leader() {
                    let _ = gc.run_once().await;
                }
            }
        });
    }

    async fn idle_session(&self) -> TaskResult {
        let mut r = TaskResult { task_name: "idle_session".into(), ..Default::default() };
        let m = &self.manager;
        let candidates = match m.db().idle_sandboxes(now_micros()).await {
            Ok(c) => c,
            Err(e) => return failed(r, e),
        };
        for s in candidates {
            let _guard = m.locks.lock(&s.id).await;
            // Re-check under the lock: activity may have pushed the deadline out.
            let s = match m.db().sandbox(&s.id).await {
                Ok(Some(x)) if x.idle_expires_at.is_some_and(|t| t < now_micros()) => x,
                _ => {
                    r.skipped_count += 1;
                    continue;
                }
            };
            // A call in progress keeps the session.
            let active = m.active.get(&s.id).map(|a| a.clone());
            let _exclusive = match &active {
                Some(a) => match a.usage.try_write() {
                    Ok(g) => Some(g),
                    Err(_) => {
                        r.skipped_count += 1;
                        continue;
                    }
                },
                None => None,
            };
            // Paused (`idle_action: pause`) or stopped.
            match m.reclaim_idle(&s).await {
                Ok(()) => r.cleaned_count += 1,
                Err(e) => r.errors.push(format!("sandbox {}: {}", s.id, e.message)),
            }
        }
        r
    }

    async fn expired_sandbox(&self) -> TaskResult {
        let mut r = TaskResult { task_name: "expired_sandbox".into(), ..Default::default() };
        let m = &self.manager;
        let candidates = match m.db().expired_sandboxes(now_micros()).await {
            Ok(c) => c,
            Err(e) => return failed(r, e),
        };
        for s in candidates {
            let guard = m.locks.lock(&s.id).await;
            let current = match m.db().sandbox(&s.id).await {
                Ok(Some(x)) if x.expires_at.is_some_and(|t| t < now_micros()) => x,
                _ => {
                    r.skipped_count += 1;
                    continue;
                }
            };
            match m.destroy_sandbox(&current).await {
                Ok(()) => r.cleaned_count += 1,
                Err(e) => r.errors.push(format!("sandbox {}: {}", s.id, e.message)),
            }
            drop(guard);
            m.locks.forget(&s.id);
        }
        r
    }

    async fn orphan_cargo(&self) -> TaskResult {
        let mut r = TaskResult { task_name: "orphan_cargo".into(), ..Default::default() };
        let m = &self.manager;
        let candidates = match m.db().orphan_managed_cargos().await {
            Ok(c) => c,
            Err(e) => return failed(r, e),
        };
        for c in candidates {
            let mut l = Labels::new();
            l.insert(labels::CARGO_ID.into(), c.id.clone());
            l.insert(labels::MANAGED.into(), "true".into());
            match m.driver.list_sessions(&l).await {
                Ok(users) if !users.is_empty() => {
                    r.skipped_count += 1;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    r.errors.push(format!("cargo {}: {e}", c.id));
                    continue;
                }
            }
            let outcome = async {
                m.driver.delete_volume(&c.driver_ref).await.map_err(|e| e.to_string())?;
                m.db().delete_cargo_row(&c.id).await.map_err(|e| e.to_string())
            }
            .await;
            match outcome {
                Ok(()) => r.cleaned_count += 1,
                Err(e) => r.errors.push(format!("cargo {}: {e}", c.id)),
            }
        }
        r
    }

    async fn orphan_container(&self) -> TaskResult {
        let mut r = TaskResult { task_name: "orphan_container".into(), ..Default::default() };
        let m = &self.manager;
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        let sessions = match m.driver.list_sessions(&l).await {
            Ok(s) => s,
            Err(e) => {
                r.errors.push(format!("Task failed: {e}"));
                return r;
            }
        };
        let required = [labels::SESSION_ID, labels::SANDBOX_ID, labels::CARGO_ID, labels::INSTANCE_ID, labels::MANAGED];
        for s in sessions {
            if !required.iter().all(|k| s.labels.contains_key(*k)) {
                r.skipped_count += 1;
                continue;
            }
            match m.db().session_exists(&s.session_id).await {
                Ok(true) => continue,
                // Counted in containers, as Shipyard Neo does.
                Ok(false) => match m.driver.destroy_session(&s.session_id).await {
                    Ok(()) => r.cleaned_count += s.containers.len().max(1) as u64,
                    Err(e) => r.errors.push(format!("session {}: {e}", s.session_id)),
                },
                Err(e) => r.errors.push(format!("session {}: {e}", s.session_id)),
            }
        }
        r
    }
}

fn failed(mut r: TaskResult, e: impl std::fmt::Display) -> TaskResult {
    r.errors.push(format!("Task failed: {e}"));
    r
}
