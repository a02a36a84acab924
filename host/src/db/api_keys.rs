//! The `api_keys` table: API keys, stored as SHA-256 hashes only, with their
//! owner and scopes (comma-separated).

use sqlx::FromRow;

use super::Db;
use crate::ids::Micros;

/// An active key as authentication needs it.
#[derive(Debug, Clone, FromRow)]
pub struct ActiveKey {
    pub id: String,
    pub key_hash: String,
    pub owner: String,
    pub scopes: String,
}

/// A key as the admin API lists it (never the hash).
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: String,
    pub key_prefix: String,
    pub owner: String,
    pub scopes: String,
    pub name: Option<String>,
    pub is_active: i64,
    pub created_at: Micros,
    pub deactivated_at: Option<Micros>,
}

/// A key to store.
pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub owner: &'a str,
    pub scopes: &'a str,
    pub name: Option<&'a str>,
    pub created_at: Micros,
}

impl Db {
    pub async fn insert_api_key(&self, key: &NewKeyRow<'_>) -> sqlx::Result<()> {
        self.query(
            "INSERT INTO api_keys (id, key_hash, key_prefix, owner, is_active, created_at, scopes, name) VALUES ($1, $2, $3, $4, 1, $5, $6, $7)",
        )
        .bind(key.id)
        .bind(key.key_hash)
        .bind(key.key_prefix)
        .bind(key.owner)
        .bind(key.created_at)
        .bind(key.scopes)
        .bind(key.name)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn api_key_exists(&self, key_hash: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as(self.sql("SELECT 1 FROM api_keys WHERE key_hash = $1")).bind(key_hash).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// The configured key is an active administrator key whatever happened
    /// to it before (the configuration is its source of truth).
    pub async fn restore_admin_key(&self, key_hash: &str) -> sqlx::Result<()> {
        self.query("UPDATE api_keys SET is_active = 1, deactivated_at = NULL, scopes = 'admin' WHERE key_hash = $1")
            .bind(key_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every active key.
    pub async fn active_api_keys(&self) -> sqlx::Result<Vec<ActiveKey>> {
        sqlx::query_as(self.sql("SELECT id, key_hash, owner, scopes FROM api_keys WHERE is_active = 1")).fetch_all(self.pool()).await
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> sqlx::Result<Vec<KeyRow>> {
        sqlx::query_as(
            self.sql("SELECT id, key_prefix, owner, scopes, name, is_active, created_at, deactivated_at FROM api_keys ORDER BY created_at, id"),
        )
        .fetch_all(self.pool())
        .await
    }

    pub async fn api_key(&self, id: &str) -> sqlx::Result<Option<KeyRow>> {
        sqlx::query_as(self.sql("SELECT id, key_prefix, owner, scopes, name, is_active, created_at, deactivated_at FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// Deactivates a key; false when there is no active key with that id.
    pub async fn revoke_api_key(&self, id: &str, now: Micros) -> sqlx::Result<bool> {
        let done = self
            .query("UPDATE api_keys SET is_active = 0, deactivated_at = $1 WHERE id = $2 AND is_active = 1")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
