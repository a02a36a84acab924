//! Pause and resume: a session frozen by the engine (Docker's pause: the
//! cgroup freezer) keeps its memory — the Python kernel's variables, open
//! browser pages — and uses no CPU; the next capability call, or
//! `POST …/resume`, thaws it. A profile's `idle_action: pause` pauses idle
//! sessions instead of stopping them; `paused_timeout` later stops a session
//! left paused. The idle deadline (`idle_expires_at`) carries both: while a
//! session runs it is when idleness pauses (or stops) it, while it is paused
//! it is when it is stopped.
//!
//! A driver that cannot pause (Kubernetes: a Pod has no freeze) answers
//! `Unsupported`: the API reports a conflict naming the driver's reason, and
//! the idle task stops the session instead.

use crate::config::{IdleAction, ProfileConfig};
use crate::db::sandboxes::Sandbox;
use crate::db::sessions::{Session, SessionState};
use crate::driver::DriverError;
use crate::error::{BayError, BayResult, ErrorCode};
use crate::ids::{self, now_micros};

use super::{SandboxManager, SandboxView};

/// How long a pause waits for calls in progress to end.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn not_running(id: &str, action: &str) -> BayError {
    BayError::new(ErrorCode::Conflict, format!("Sandbox {id} has no running session to {action}; run a command to start one")).with("sandbox_id", id)
}

fn cannot_pause(id: &str, e: DriverError) -> BayError {
    match e {
        DriverError::Unsupported(why) => {
            BayError::new(ErrorCode::Conflict, format!("This Bay's driver cannot pause sessions: {why}")).with("sandbox_id", id)
        }
        // The runtime died since it was recorded running.
        DriverError::NotFound(_) => not_running(id, "pause"),
        DriverError::Engine(m) if m.contains("not running") => not_running(id, "pause"),
        other => super::session::driver_error(other),
    }
}

impl SandboxManager {
    /// `POST …/pause`: freezes the running session (idempotent on a paused
    /// one). Waits for calls in progress to finish first.
    pub async fn pause(&self, owner: &str, id: &str) -> BayResult<SandboxView> {
        let (_guard, sandbox, profile, session) = self.locked_session(owner, id, "pause").await?;
        match session.observed() {
            SessionState::Paused => {}
            SessionState::Running => {
                // Calls and open streams hold the session's usage lock
                // shared: wait a while for them, so none is frozen halfway.
                let active = self.active.get(&sandbox.id).map(|a| a.clone());
                let _exclusive = match &active {
                    Some(a) => Some(tokio::time::timeout(BUSY_WAIT, a.usage.clone().write_owned()).await.map_err(|_| {
                        BayError::new(ErrorCode::Conflict, format!("Sandbox {id} is busy (calls or output streams in progress); retry when they end"))
                            .with("sandbox_id", id)
                    })?),
                    None => None,
                };
                self.freeze(&sandbox, &profile, &session).await.map_err(|e| cannot_pause(id, e))?;
            }
            _ => return Err(not_running(id, "pause")),
        }
        self.get(owner, id).await
    }

    /// `POST …/resume`: thaws a paused session (a running one is left as it
    /// is). Capability calls resume on their own; this is for clients that
    /// want the sandbox warm before their next call.
    pub async fn resume(&self, owner: &str, id: &str) -> BayResult<SandboxView> {
        let (_guard, sandbox, profile, session) = self.locked_session(owner, id, "resume").await?;
        match session.observed() {
            SessionState::Paused => {
                if let Err(e) = self.thaw(&sandbox, &profile, &session).await {
                    // Its containers are gone (an engine restart, a manual
                    // removal): drop the session; the next call starts one.
                    tracing::warn!(sandbox_id = %sandbox.id, session_id = %session.id, error = %e.message, "cannot resume a paused session; removing it");
                    self.destroy_session(&session).await;
                    self.db.clear_sandbox_session(&sandbox.id).await?;
                }
            }
            SessionState::Running => {}
            _ => return Err(not_running(id, "resume")),
        }
        self.get(owner, id).await
    }

    /// Owner's sandbox `id` under its lock (read again once held), its
    /// profile and current session; no session is a conflict for `action`.
    async fn locked_session(&self, owner: &str, id: &str, action: &str) -> BayResult<(super::locks::SandboxGuard, Sandbox, ProfileConfig, Session)> {
        let sandbox = self.find(owner, id).await?;
        let guard = self.locks.lock(&sandbox.id).await;
        let sandbox = self.find(owner, id).await?;
        let profile = self.profile_of(&sandbox)?.clone();
        let session = self.current_session(&sandbox).await?.ok_or_else(|| not_running(id, action))?;
        Ok((guard, sandbox, profile, session))
    }

    /// The sandbox's current session row.
    async fn current_session(&self, sandbox: &Sandbox) -> BayResult<Option<Session>> {
        Ok(match &sandbox.current_session_id {
            Some(sid) => self.db.session(sid).await?,
            None => None,
        })
    }

    /// Pauses a running session; the caller holds the sandbox lock and no
    /// call is using the session.
    ///
    /// The row says paused before the engine pauses (a session recorded
    /// paused but running is harmless: resuming is idempotent); a pause that
    /// fails halfway (one container of several) is undone.
    async fn freeze(&self, sandbox: &Sandbox, profile: &ProfileConfig, session: &Session) -> Result<(), DriverError> {
        let recorded = |e: sqlx::Error| DriverError::Engine(format!("recording the pause: {e}"));
        let now = now_micros();
        self.db.update_session_state(&session.id, SessionState::Running, SessionState::Paused, now).await.map_err(recorded)?;
        self.active.remove_if(&sandbox.id, |_, a| a.session_id == session.id);
        if let Err(e) = self.driver.pause_session(&session.id).await {
            let _ = self.driver.resume_session(&session.id).await;
            self.db.update_session_state(&session.id, SessionState::Running, SessionState::Running, now_micros()).await.map_err(recorded)?;
            return Err(e);
        }
        self.db.set_idle_deadline(&sandbox.id, Some(now + ids::secs(profile.paused_timeout))).await.map_err(recorded)?;
        tracing::info!(sandbox_id = %sandbox.id, session_id = %session.id, "session paused");
        Ok(())
    }

    /// Resumes a paused session and records it running; the caller holds the
    /// sandbox lock. The next call adopts it.
    pub(super) async fn thaw(&self, sandbox: &Sandbox, profile: &ProfileConfig, session: &Session) -> BayResult<()> {
        self.driver.resume_session(&session.id).await.map_err(super::session::driver_error)?;
        let now = now_micros();
        self.db.update_session_state(&session.id, SessionState::Running, SessionState::Running, now).await?;
        self.db.touch_sandbox(&sandbox.id, now, Some(now + ids::secs(profile.idle_timeout))).await?;
        tracing::info!(sandbox_id = %sandbox.id, session_id = %session.id, "session resumed");
        Ok(())
    }

    /// The idle task's step for one sandbox past its idle deadline (lock
    /// held, no call in progress): a running session of a profile with
    /// `idle_action: pause` is paused (stopped when the driver cannot pause);
    /// anything else, a session paused past `paused_timeout` included, is stopped.
    pub(crate) async fn reclaim_idle(&self, sandbox: &Sandbox) -> BayResult<()> {
        let profile = self.profile(&sandbox.profile_id).cloned();
        if let Some(profile) = profile.filter(|p| p.idle_action == IdleAction::Pause)
            && let Some(session) = self.current_session(sandbox).await?
            && session.observed() == SessionState::Running
        {
            match self.freeze(sandbox, &profile, &session).await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::info!(sandbox_id = %sandbox.id, error = %e, "cannot pause an idle session; stopping it"),
            }
        }
        self.teardown_sessions(&sandbox.id).await?;
        self.db.clear_sandbox_session(&sandbox.id).await?;
        Ok(())
    }
}
