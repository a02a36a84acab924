//! The `cargos` table: the persistent `/workspace` volumes.

use sqlx::FromRow;

use super::Db;
use crate::ids::Micros;

#[derive(Debug, Clone, FromRow)]
pub struct Cargo {
    pub id: String,
    pub owner: String,
    pub backend: String,
    pub driver_ref: String,
    pub managed: i64,
    pub managed_by_sandbox_id: Option<String>,
    pub size_limit_mb: i64,
    pub created_at: Micros,
    pub last_accessed_at: Micros,
}

impl Cargo {
    pub fn is_managed(&self) -> bool {
        self.managed != 0
    }
}

impl Db {
    pub async fn insert_cargo<'c, E>(&self, exec: E, c: &Cargo) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        self.query(
            "INSERT INTO cargos (id, owner, backend, driver_ref, managed, managed_by_sandbox_id, size_limit_mb, created_at, last_accessed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.id)
        .bind(&c.owner)
        .bind(&c.backend)
        .bind(&c.driver_ref)
        .bind(c.managed)
        .bind(&c.managed_by_sandbox_id)
        .bind(c.size_limit_mb)
        .bind(c.created_at)
        .bind(c.last_accessed_at)
        .execute(exec)
        .await?;
        Ok(())
    }

    pub async fn cargo(&self, id: &str) -> sqlx::Result<Option<Cargo>> {
        sqlx::query_as(self.sql("SELECT id, owner, backend, driver_ref, managed, managed_by_sandbox_id, size_limit_mb, created_at, last_accessed_at FROM cargos WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn cargo_for_owner(&self, id: &str, owner: &str) -> sqlx::Result<Option<Cargo>> {
        sqlx::query_as(self.sql("SELECT id, owner, backend, driver_ref, managed, managed_by_sandbox_id, size_limit_mb, created_at, last_accessed_at FROM cargos WHERE id = $1 AND owner = $2"))
            .bind(id)
            .bind(owner)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn delete_cargo_row(&self, id: &str) -> sqlx::Result<()> {
        self.query("DELETE FROM cargos WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn touch_cargo(&self, id: &str, now: Micros) -> sqlx::Result<()> {
        self.query("UPDATE cargos SET last_accessed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
