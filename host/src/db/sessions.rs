//! The `sessions` table: a sandbox's current compute (its container group).
//!
//! `desired_state` is what Bay wants, `observed_state` what it last saw.
//! Transitional states (`starting`, `stopping`) are only ever held while the
//! sandbox lock is held; one found without the lock is a crash leftover.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::Db;
use crate::ids::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Pending,
    Starting,
    Running,
    /// Frozen by the engine with its memory kept (`POST …/pause`, or idle
    /// with `idle_action: pause`); the next call resumes it.
    Paused,
    Degraded,
    Stopping,
    Stopped,
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Starting => "starting",
            SessionState::Running => "running",
            SessionState::Paused => "paused",
            SessionState::Degraded => "degraded",
            SessionState::Stopping => "stopping",
            SessionState::Stopped => "stopped",
            SessionState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> SessionState {
        match s {
            "pending" => SessionState::Pending,
            "starting" => SessionState::Starting,
            "running" => SessionState::Running,
            "paused" => SessionState::Paused,
            "degraded" => SessionState::Degraded,
            "stopping" => SessionState::Stopping,
            "stopped" => SessionState::Stopped,
            _ => SessionState::Failed,
        }
    }
}

/// One container of a session, as stored in `sessions.containers` (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionContainer {
    pub name: String,
    pub container_id: String,
    pub endpoint: Option<String>,
    pub status: String,
    pub runtime_type: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub id: String,
    pub sandbox_id: String,
    pub runtime_type: String,
    pub profile_id: String,
    pub container_id: Option<String>,
    pub endpoint: Option<String>,
    pub containers: Option<String>,
    pub desired_state: String,
    pub observed_state: String,
    pub last_observed_at: Option<Micros>,
    pub created_at: Micros,
    pub last_active_at: Micros,
    /// The secret its runtimes require (`X-Bay-Token`); `None` for sessions
    /// started before Bay had one.
    pub runtime_token: Option<String>,
}

impl Session {
    pub fn observed(&self) -> SessionState {
        SessionState::parse(&self.observed_state)
    }

    pub fn container_list(&self) -> Vec<SessionContainer> {
        self.containers.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
    }
}

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, sandbox_id, runtime_type, profile_id, container_id, endpoint, containers, desired_state, observed_state, last_observed_at, created_at, last_active_at, runtime_token FROM sessions ",
            $rest
        )
    };
}

impl Db {
    pub async fn insert_session(&self, s: &Session) -> sqlx::Result<()> {
        self.query(
            "INSERT INTO sessions (id, sandbox_id, runtime_type, profile_id, container_id, endpoint, containers, desired_state, observed_state, last_observed_at, created_at, last_active_at, runtime_token) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&s.id)
        .bind(&s.sandbox_id)
        .bind(&s.runtime_type)
        .bind(&s.profile_id)
        .bind(&s.container_id)
        .bind(&s.endpoint)
        .bind(&s.containers)
        .bind(&s.desired_state)
        .bind(&s.observed_state)
        .bind(s.last_observed_at)
        .bind(s.created_at)
        .bind(s.last_active_at)
        .bind(&s.runtime_token)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, id: &str) -> sqlx::Result<Option<Session>> {
        sqlx::query_as(self.sql(select!("WHERE id = $1"))).bind(id).fetch_optional(self.pool()).await
    }

    pub async fn all_sessions(&self) -> sqlx::Result<Vec<Session>> {
        sqlx::query_as(self.sql(select!("ORDER BY created_at"))).fetch_all(self.pool()).await
    }

    pub async fn sessions_of_sandbox(&self, sandbox_id: &str) -> sqlx::Result<Vec<Session>> {
        sqlx::query_as(self.sql(select!("WHERE sandbox_id = $1 ORDER BY created_at"))).bind(sandbox_id).fetch_all(self.pool()).await
    }

    /// Sessions of many sandboxes at once (list endpoints avoid N+1 queries).
    pub async fn sessions_by_ids(&self, ids: &[String]) -> sqlx::Result<Vec<Session>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let mut sql = format!(select!("WHERE id IN ({})"), placeholders.join(", "));
        if self.dialect() == super::Dialect::Sqlite {
            sql = sql.replace('$', "?");
        }
        // Only numbered placeholders are interpolated, never data.
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(self.pool()).await
    }

    pub async fn update_session_state(&self, id: &str, desired: SessionState, observed: SessionState, now: Micros) -> sqlx::Result<()> {
        self.query("UPDATE sessions SET desired_state = $1, observed_state = $2, last_observed_at = $3 WHERE id = $4")
            .bind(desired.as_str())
            .bind(observed.as_str())
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the started containers and marks the session running.
    pub async fn mark_session_running(
        &self,
        id: &str,
        container_id: &str,
        endpoint: &str,
        containers: Option<&str>,
        now: Micros,
    ) -> sqlx::Result<()> {
        self.query("UPDATE sessions SET container_id = $1, endpoint = $2, containers = $3, desired_state = 'running', observed_state = 'running', last_observed_at = $4, last_active_at = $4 WHERE id = $5")
            .bind(container_id)
            .bind(endpoint)
            .bind(containers)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id: &str) -> sqlx::Result<()> {
        self.query("DELETE FROM sessions WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }
}
