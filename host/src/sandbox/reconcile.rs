//! Startup reconciliation: re-derive the truth from the engine and the
//! database after Bay (re)starts, whatever state a crash left behind.
//!
//! - A session is kept only if its sandbox is live, still points at it, it
//!   was recorded running (or paused) with an endpoint, and all its
//!   containers run (or are paused); the first call then adopts (or resumes)
//!   it: no restart, Python state kept.
//! - Any other session (left `starting`/`stopping`/`failed` by a crash, or
//!   whose containers died) is destroyed on the engine — the driver finds its
//!   objects by label, so what a launch created just before the crash goes
//!   too — and its row deleted; its sandbox goes back to `idle`.
//! - Sessions of this instance on the engine with no row are destroyed.
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
    /// Sessions on the engine that the database did not know.
    pub orphan_sessions_removed: u64,
    pub volumes_removed: u64,
    pub errors: Vec<String>,
}

impl SandboxManager {
    pub(crate) fn instance_labels(&self) -> Labels {
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
            let Some(session) = self.db.session(&listed.id).await? else {
                continue;
            };
            let sandbox = self.db.sandbox(&session.sandbox_id).await?;
            let containers = self.driver.session_status(&session.id).await?;
            let all_in = |state| !containers.is_empty() && containers.iter().all(|c| c.status.state == state);
            let alive = match session.observed() {
                SessionState::Running => all_in(ContainerState::Running),
                SessionState::Paused => all_in(ContainerState::Paused),
                _ => false,
            };
            let keep =
                sandbox.as_ref().is_some_and(|s| s.current_session_id.as_deref() == Some(session.id.as_str())) && session.endpoint.is_some() && alive;
            if keep {
                report.sessions_kept += 1;
                continue;
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

        for s in self.driver.list_sessions(&self.instance_labels()).await? {
            if !self.db.session_exists(&s.session_id).await? {
                match self.driver.destroy_session(&s.session_id).await {
                    Ok(()) => report.orphan_sessions_removed += 1,
                    Err(e) => report.errors.push(format!("session {}: {e}", s.session_id)),
                }
            }
        }

        // A volume without a cargo row is a create that died before storing
        // the row. With other replicas on the database it may also be
        // another replica's create in flight: then only volumes whose
        // creator is a process of this host that has exited are removed
        // (the orphan-cargo GC task removes cargos that lost their sandbox).
        let mut cargo_labels = Labels::new();
        cargo_labels.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        for v in self.driver.list_volumes(&cargo_labels).await? {
            let Some(cargo_id) = v.labels.get(labels::CARGO_ID) else {
                continue;
            };
            let creator_gone = v.labels.get(labels::REPLICA).is_some_and(|r| self.cluster.is_dead_local_holder(r));
            if self.cluster.enabled() && !creator_gone {
                continue;
            }
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
