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
        self.query("UPDATE cargos SET last_accessed_at = $1 WHERE id = $2").bind(now).bind(id).execute(self.pool()).await?;
        Ok(())
    }
}

macro_rules! select_cargo {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, backend, driver_ref, managed, managed_by_sandbox_id, size_limit_mb, created_at, last_accessed_at FROM cargos ",
            $rest
        )
    };
}

impl Db {
    /// A page of `owner`'s cargos with the given `managed` flag after `cursor`, by id.
    pub async fn list_cargos(&self, owner: &str, managed: bool, after: Option<&str>, limit: i64) -> sqlx::Result<Vec<Cargo>> {
        sqlx::query_as(self.sql(select_cargo!("WHERE owner = $1 AND managed = $2 AND id > $3 ORDER BY id ASC LIMIT $4")))
            .bind(owner)
            .bind(managed as i64)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.pool())
            .await
    }

    /// Ids of live sandboxes mounting a cargo.
    pub async fn sandboxes_using_cargo(&self, cargo_id: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(self.sql("SELECT id FROM sandboxes WHERE cargo_id = $1 AND deleted_at IS NULL ORDER BY id"))
            .bind(cargo_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

impl Db {
    /// Managed cargos whose managing sandbox is gone or soft-deleted.
    pub async fn orphan_managed_cargos(&self) -> sqlx::Result<Vec<Cargo>> {
        sqlx::query_as(self.sql(select_cargo!(
            "WHERE managed = 1 AND (managed_by_sandbox_id IS NULL OR NOT EXISTS (SELECT 1 FROM sandboxes s WHERE s.id = cargos.managed_by_sandbox_id AND s.deleted_at IS NULL))"
        )))
        .fetch_all(self.pool())
        .await
    }
}

impl Db {
    /// A claimed warm sandbox's cargo follows it to its new owner.
    pub async fn reown_cargo(&self, id: &str, owner: &str) -> sqlx::Result<()> {
        self.query("UPDATE cargos SET owner = $1 WHERE id = $2").bind(owner).bind(id).execute(self.pool()).await?;
        Ok(())
    }
}
