//! Noticing dead runtimes and recovering from them.
//!
//! A runtime can die under Bay (killed, OOM-killed, crashed). Two mechanisms
//! keep that invisible to agents:
//! - the engine's event feed: when a session's container exits, its cached
//!   session is dropped and the session marked failed, so the next call
//!   starts a fresh one (files are on the cargo, so nothing is lost);
//! - a call that fails to reach its runtime checks the container: if it died
//!   before the call started, the call never ran and is retried once on a new
//!   session; if it died during the call, the agent gets a 503
//!   `session_not_ready` with `retry_after_ms` and the cause (exit code, OOM).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::SandboxManager;
use crate::db::sessions::SessionState;
use crate::driver::{ContainerExit, ContainerState, ContainerStatus, Labels, finished_micros, labels};
use crate::error::BayError;
use crate::ids::{Micros, now_micros};

/// What to do after a call failed to reach its runtime.
pub(crate) enum Recovery {
    /// The runtime died before the call: start a new session and retry.
    Retry,
    /// The runtime died during the call.
    Failed(BayError),
    /// The runtime is alive: report the original error.
    Alive,
}

impl SandboxManager {
    /// Follows the engine's container exits for the rest of the process.
    pub fn watch_exits(self: &Arc<Self>) {
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(manager) = this.upgrade() else {
                    return;
                };
                let Some(mut exits) = manager.driver.container_exits(&l) else {
                    return;
                };
                drop(manager);
                while let Some(exit) = exits.next().await {
                    let Some(manager) = this.upgrade() else {
                        return;
                    };
                    manager.on_exit(exit).await;
                }
                // The feed broke (engine restart): reconnect.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn on_exit(&self, exit: ContainerExit) {
        let Some(sandbox_id) = exit.labels.get(labels::SANDBOX_ID) else {
            return;
        };
        let removed = self.active.remove_if(sandbox_id, |_, a| {
            a.containers.iter().any(|c| exit.container_id.starts_with(&c.container_id) || c.container_id.starts_with(&exit.container_id))
        });
        if removed.is_some() {
            tracing::warn!(sandbox_id, container_id = %exit.container_id, oom = exit.oom, "runtime container exited; its session will be replaced on the next call");
            if let Some(session_id) = exit.labels.get(labels::SESSION_ID) {
                let _ = self.db.update_session_state(session_id, SessionState::Running, SessionState::Failed, now_micros()).await;
            }
        }
    }

    /// Decides how to recover from a call that could not reach `container_id`.
    pub(crate) async fn diagnose(
        &self,
        sandbox_id: &str,
        session_id: &str,
        container_id: &str,
        call_started: Micros,
        never_connected: bool,
    ) -> Recovery {
        // A container being killed can still report `running` for a moment
        // after its port stopped answering: give the engine a second to settle.
        let mut status = None;
        for _ in 0..10 {
            let found = match self.driver.session_status(session_id).await {
                Ok(containers) => containers.into_iter().find(|c| c.id == container_id).map(|c| c.status).unwrap_or_else(ContainerStatus::not_found),
                Err(_) => return Recovery::Alive,
            };
            // Paused (by another replica, mid-call): alive, its memory kept.
            if found.state == ContainerState::Paused {
                return Recovery::Alive;
            }
            if found.state == ContainerState::Running {
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                status = Some(found);
                break;
            }
        }
        let Some(status) = status else {
            return Recovery::Alive;
        };
        // Drop the dead session so the next call (or the retry) starts a new one.
        self.active.remove_if(sandbox_id, |_, a| a.session_id == session_id);
        let _ = self.db.update_session_state(session_id, SessionState::Running, SessionState::Failed, now_micros()).await;
        let died_before = finished_micros(&status).is_some_and(|t| t <= call_started) || status.state == ContainerState::NotFound;
        if never_connected || died_before {
            tracing::warn!(sandbox_id, container_id, cause = %status.describe(), "runtime was dead before the call; retrying on a new session");
            Recovery::Retry
        } else {
            Recovery::Failed(BayError::session_not_ready(
                format!("The runtime stopped during the call ({}); a new one starts on the next call", status.describe()),
                sandbox_id,
                1000,
            ))
        }
    }
}
