//! The `sandboxes` table: the stable resource agents hold on to.

use sqlx::FromRow;

use super::Db;
use crate::ids::Micros;

#[derive(Debug, Clone, FromRow)]
pub struct Sandbox {
    pub id: String,
    pub owner: String,
    pub profile_id: String,
    pub cargo_id: String,
    pub current_session_id: Option<String>,
    pub expires_at: Option<Micros>,
    pub idle_expires_at: Option<Micros>,
    pub deleted_at: Option<Micros>,
    pub created_at: Micros,
    pub last_active_at: Micros,
    pub is_warm_pool: i64,
}

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, profile_id, cargo_id, current_session_id, expires_at, idle_expires_at, deleted_at, created_at, last_active_at, is_warm_pool FROM sandboxes ",
            $rest
        )
    };
}

impl Db {
    pub async fn insert_sandbox<'c, E>(&self, exec: E, s: &Sandbox) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        self.query(
            "INSERT INTO sandboxes (id, owner, profile_id, cargo_id, current_session_id, expires_at, idle_expires_at, deleted_at, created_at, last_active_at, is_warm_pool) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.id)
        .bind(&s.owner)
        .bind(&s.profile_id)
        .bind(&s.cargo_id)
        .bind(&s.current_session_id)
        .bind(s.expires_at)
        .bind(s.idle_expires_at)
        .bind(s.deleted_at)
        .bind(s.created_at)
        .bind(s.last_active_at)
        .bind(s.is_warm_pool)
        .execute(exec)
        .await?;
        Ok(())
    }

    /// A live (not soft-deleted) sandbox of `owner`.
    pub async fn sandbox_for_owner(&self, id: &str, owner: &str) -> sqlx::Result<Option<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE id = $1 AND owner = $2 AND deleted_at IS NULL")))
            .bind(id)
            .bind(owner)
            .fetch_optional(self.pool())
            .await
    }

    /// A sandbox of `owner` including soft-deleted ones (delete is idempotent).
    pub async fn sandbox_for_owner_any_state(&self, id: &str, owner: &str) -> sqlx::Result<Option<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE id = $1 AND owner = $2"))).bind(id).bind(owner).fetch_optional(self.pool()).await
    }

    /// A live sandbox by id, whoever owns it (internal use: locks, GC).
    pub async fn sandbox(&self, id: &str) -> sqlx::Result<Option<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE id = $1 AND deleted_at IS NULL"))).bind(id).fetch_optional(self.pool()).await
    }

    /// A page of `owner`'s live sandboxes after `cursor`, ordered by id.
    pub async fn list_sandboxes(&self, owner: &str, after: Option<&str>, limit: i64) -> sqlx::Result<Vec<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE owner = $1 AND deleted_at IS NULL AND is_warm_pool = 0 AND id > $2 ORDER BY id ASC LIMIT $3")))
            .bind(owner)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.pool())
            .await
    }

    pub async fn set_current_session(&self, id: &str, session_id: Option<&str>) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET current_session_id = $1 WHERE id = $2").bind(session_id).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// Sets when the idle task next looks at a sandbox (a pause is no activity).
    pub async fn set_idle_deadline(&self, id: &str, idle_expires_at: Option<Micros>) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET idle_expires_at = $1 WHERE id = $2").bind(idle_expires_at).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// Records activity: pushes the idle deadline out.
    pub async fn touch_sandbox(&self, id: &str, now: Micros, idle_expires_at: Option<Micros>) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET last_active_at = $1, idle_expires_at = $2 WHERE id = $3")
            .bind(now)
            .bind(idle_expires_at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stop: no current session and no idle deadline.
    pub async fn clear_sandbox_session(&self, id: &str) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET current_session_id = NULL, idle_expires_at = NULL WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn set_sandbox_expiry(&self, id: &str, expires_at: Option<Micros>) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET expires_at = $1 WHERE id = $2").bind(expires_at).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn soft_delete_sandbox(&self, id: &str, now: Micros) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET deleted_at = $1, current_session_id = NULL, idle_expires_at = NULL WHERE id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Db {
    /// Live, non-warm sandboxes whose idle deadline passed.
    pub async fn idle_sandboxes(&self, now: Micros) -> sqlx::Result<Vec<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE deleted_at IS NULL AND is_warm_pool = 0 AND idle_expires_at IS NOT NULL AND idle_expires_at < $1")))
            .bind(now)
            .fetch_all(self.pool())
            .await
    }

    /// Live, non-warm sandboxes whose TTL passed.
    pub async fn expired_sandboxes(&self, now: Micros) -> sqlx::Result<Vec<Sandbox>> {
        sqlx::query_as(self.sql(select!("WHERE deleted_at IS NULL AND is_warm_pool = 0 AND expires_at IS NOT NULL AND expires_at < $1")))
            .bind(now)
            .fetch_all(self.pool())
            .await
    }

    pub async fn session_exists(&self, id: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(self.sql("SELECT 1 FROM sessions WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }
}

/// The warm-pool view of a sandbox row.
#[derive(Debug, Clone, FromRow)]
pub struct WarmSandbox {
    pub id: String,
    pub warm_state: Option<String>,
    pub warm_rotate_at: Option<Micros>,
    pub warm_env_hash: Option<String>,
}

impl Db {
    /// Live warm sandboxes of a profile (pending, available or retiring).
    pub async fn warm_sandboxes(&self, profile_id: &str) -> sqlx::Result<Vec<WarmSandbox>> {
        sqlx::query_as(self.sql(
            "SELECT id, warm_state, warm_rotate_at, warm_env_hash FROM sandboxes WHERE is_warm_pool = 1 AND deleted_at IS NULL AND profile_id = $1 ORDER BY created_at",
        ))
        .bind(profile_id)
        .fetch_all(self.pool())
        .await
    }

    pub async fn mark_warm_available(&self, id: &str, now: Micros, rotate_at: Micros, env_hash: &str) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET warm_state = 'available', warm_ready_at = $1, warm_rotate_at = $2, warm_env_hash = $3 WHERE id = $4 AND is_warm_pool = 1 AND warm_state IS NULL")
            .bind(now)
            .bind(rotate_at)
            .bind(env_hash)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn reset_warm(&self, id: &str) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET warm_state = NULL, warm_ready_at = NULL, warm_rotate_at = NULL WHERE id = $1 AND is_warm_pool = 1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_warm_state(&self, id: &str, state: &str) -> sqlx::Result<()> {
        self.query("UPDATE sandboxes SET warm_state = $1 WHERE id = $2 AND is_warm_pool = 1").bind(state).bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// Claims the oldest available warm sandbox of a profile started with
    /// `env_hash`. The conditional update makes a concurrent claim of the same
    /// row impossible: exactly one claimer gets it back.
    pub async fn claim_warm_sandbox(
        &self,
        profile_id: &str,
        env_hash: &str,
        owner: &str,
        now: Micros,
        expires_at: Option<Micros>,
    ) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(self.sql(
            "UPDATE sandboxes SET is_warm_pool = 0, warm_state = 'claimed', warm_claimed_at = $1, owner = $2, last_active_at = $1, expires_at = $3 \
             WHERE id = (SELECT id FROM sandboxes WHERE is_warm_pool = 1 AND warm_state = 'available' AND deleted_at IS NULL AND profile_id = $4 AND warm_env_hash = $5 ORDER BY warm_ready_at LIMIT 1) \
             AND is_warm_pool = 1 AND warm_state = 'available' RETURNING id",
        ))
        .bind(now)
        .bind(owner)
        .bind(expires_at)
        .bind(profile_id)
        .bind(env_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.0))
    }
}
