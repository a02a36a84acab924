//! Lease rows (`leases` table): one holder per key until it expires.

use super::Db;

impl Db {
    /// Takes `key` for `holder` until `expires_at` if it is free, expired, or
    /// already held by `holder` (a renewal). True when `holder` has it now.
    pub async fn try_lease(&self, key: &str, holder: &str, now: i64, expires_at: i64) -> sqlx::Result<bool> {
        let r = self
            .query(
                "INSERT INTO leases (lease_key, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (lease_key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
            )
            .bind(key)
            .bind(holder)
            .bind(expires_at)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Moves `key` from `old` (known dead) to `holder`; true when it did.
    pub async fn steal_lease(&self, key: &str, old: &str, holder: &str, expires_at: i64) -> sqlx::Result<bool> {
        let r = self
            .query("UPDATE leases SET holder = $1, expires_at = $2 WHERE lease_key = $3 AND holder = $4")
            .bind(holder)
            .bind(expires_at)
            .bind(key)
            .bind(old)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives `key` up if `holder` still has it.
    pub async fn release_lease(&self, key: &str, holder: &str) -> sqlx::Result<()> {
        self.query("DELETE FROM leases WHERE lease_key = $1 AND holder = $2").bind(key).bind(holder).execute(self.pool()).await?;
        Ok(())
    }

    /// Who holds `key` and until when (for status and tests).
    pub async fn lease_holder(&self, key: &str) -> sqlx::Result<Option<(String, i64)>> {
        use sqlx::Row;
        let row = self.query("SELECT holder, expires_at FROM leases WHERE lease_key = $1").bind(key).fetch_optional(self.pool()).await?;
        Ok(row.map(|r| (r.get::<String, _>("holder"), r.get::<i64, _>("expires_at"))))
    }
}
