//! Startup reconciliation: re-derive the truth from the engine and the
//! database after Bay (re)starts, whatever state a crash left behind.
//!
//! - A session is kept only if its sandbox is live, still points at it, it
//!   was recorded running with an endpoint, and all its containers run; the
//!   first call then adopts it (no restart, Python state kept).
//! - Any other session (left `starting`/`stopping`/`failed` by a crash, or
//!   whose containers died) has its containers removed, found by label so a
//!   container created just before the crash is found too, and its row
//!   deleted; its sandbox goes back to `idle`.
//! - Containers of this instance whose session row does not exist are removed.
//! - Session networks of this instance whose session is gone are removed.
//! - Volumes of this instance with no cargo row (a crash between creating the
//!   volume and committing the sandbox) are removed.

use serde::Serialize;

use super::SandboxManager;
use crate::db::sessions::SessionState;
use crate::driver::{ContainerState, Labels, labels};

#[derive(Debug, Default, Serialize)]
pub struct ReconcileReport {
    pub sessions_kept: u64,
    pub sessions_reset: u64,
    pub containers_removed: u64,
    pub volumes_removed: u64,
    pub networks_removed: u64,
    pub errors: Vec<String>,
}

impl SandboxManager {
    fn instance_labels(&self) -> Labels {
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        l
    }

    pub async fn reconcile(&self) -> anyhow::Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for listed in self.db.all_sessions().await? {
            let _guard = self.locks.lock(&listed.sandbox_id).await;
            // Read it again under the lock: another replica may have been
            // starting or stopping it while we waited.
            let Some(session) = self.db.session(&listed.id).await? else { continue };
            let sandbox = self.db.sandbox(&session.sandbox_id).await?;
            let mut by_label = Labels::new();
            by_label.insert(labels::SESSION_ID.into(), session.id.clone());
            let containers = self.driver.list_containers(&by_label).await?;
            let mut all_running = !containers.is_empty();
            for c in &containers {
                let alive = matches!(self.driver.container_status(&c.id).await.map(|s| s.state), Ok(ContainerState::Running));
                all_running &= alive;
            }
            let keep = sandbox.as_ref().is_some_and(|s| s.current_session_id.as_deref() == Some(session.id.as_str()))
                && session.observed() == SessionState::Running
                && session.endpoint.is_some()
                && all_running;
            if keep {
                report.sessions_kept += 1;
                continue;
            }
            for c in &containers {
                match self.driver.destroy_container(&c.id).await {
                    Ok(()) => report.containers_removed += 1,
                    Err(e) => report.errors.push(format!("container {}: {e}", c.id)),
                }
            }
            self.destroy_session(&session).await;
            if let Some(s) = &sandbox
                && s.current_session_id.as_deref() == Some(session.id.as_str())
            {
                self.db.set_current_session(&s.id, None).await?;
            }
            report.sessions_reset += 1;
            tracing::info!(session_id = %session.id, sandbox_id = %session.sandbox_id, state = %session.observed_state, "reset a session left behind");
        }

        for c in self.driver.list_containers(&self.instance_labels()).await? {
            let Some(session_id) = c.labels.get(labels::SESSION_ID) else { continue };
            if !self.db.session_exists(session_id).await? {
                match self.driver.destroy_container(&c.id).await {
                    Ok(()) => report.containers_removed += 1,
                    Err(e) => report.errors.push(format!("container {}: {e}", c.id)),
                }
            }
        }

        for n in self.driver.list_networks(&self.instance_labels()).await? {
            let Some(session_id) = n.labels.get(labels::SESSION_ID) else { continue };
            if !self.db.session_exists(session_id).await? {
                match self.driver.remove_network(&n.name).await {
                    Ok(()) => report.networks_removed += 1,
                    Err(e) => report.errors.push(format!("network {}: {e}", n.name)),
                }
            }
        }

        // With other replicas on the database, a volume without a cargo row
        // may be another replica's create in flight: leave volumes alone
        // (the orphan-cargo GC task removes cargos that lost their sandbox).
        if self.cluster.enabled() {
            return Ok(report);
        }
        let mut cargo_labels = Labels::new();
        cargo_labels.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        for v in self.driver.list_volumes(&cargo_labels).await? {
            let Some(cargo_id) = v.labels.get(labels::CARGO_ID) else { continue };
            if self.db.cargo(cargo_id).await?.is_none() {
                match self.driver.delete_volume(&v.name).await {
                    Ok(()) => report.volumes_removed += 1,
                    Err(e) => report.errors.push(format!("volume {}: {e}", v.name)),
                }
            }
        }
        Ok(report)
    }
}
