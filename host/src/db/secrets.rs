//! Shared secrets (`server_secrets` table): created by the first replica
//! that needs one, then read by all.

use super::Db;

impl Db {
    /// The secret called `name`, stored as `fresh` if there was none yet.
    /// Two replicas racing both read the one that won.
    pub async fn secret_or_insert(&self, name: &str, fresh: &str) -> sqlx::Result<String> {
        use sqlx::Row;
        self.query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh)
            .execute(self.pool())
            .await?;
        let row = self.query("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(self.pool()).await?;
        Ok(row.get::<String, _>("value"))
    }
}
