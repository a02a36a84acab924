//! The `api_keys` table: API keys, stored as SHA-256 hashes only.

use super::Db;
use crate::ids::Micros;

impl Db {
    pub async fn insert_api_key(&self, key_hash: &str, key_prefix: &str, owner: &str, now: Micros) -> sqlx::Result<()> {
        self.query("INSERT INTO api_keys (id, key_hash, key_prefix, owner, is_active, created_at) VALUES ($1, $2, $3, $4, 1, $5)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(key_hash)
            .bind(key_prefix)
            .bind(owner)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn api_key_exists(&self, key_hash: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as(self.sql("SELECT 1 FROM api_keys WHERE key_hash = $1")).bind(key_hash).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// `(key_hash, owner)` of every active key.
    pub async fn active_api_keys(&self) -> sqlx::Result<Vec<(String, String)>> {
        sqlx::query_as(self.sql("SELECT key_hash, owner FROM api_keys WHERE is_active = 1")).fetch_all(self.pool()).await
    }
}
