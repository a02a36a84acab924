//! State in SQL through sqlx's `Any` driver: SQLite by default, PostgreSQL when
//! the URL says so (Shipyard Neo's contract, docs/compatibility.md: tables, portable schema in `migrations/`).
//!
//! Queries are written once with PostgreSQL's `$1` placeholders; for SQLite
//! they are rewritten to `?1` (SQLite's numbered form) once and cached.

pub mod api_keys;
pub mod blobs;
pub mod cargos;
pub mod history;
pub mod leases;
pub mod sandboxes;
pub mod secrets;
pub mod sessions;

use std::sync::Arc;

use dashmap::DashMap;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseUrl;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    rewritten: Arc<DashMap<&'static str, &'static str>>,
}

pub type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Db {
    /// Connects and applies the embedded migrations.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                    && path != ":memory:"
                {
                    std::fs::create_dir_all(parent)?;
                }
                Dialect::Sqlite
            }
            DatabaseUrl::Postgres(_) => Dialect::Postgres,
        };
        let in_memory = matches!(url, DatabaseUrl::Sqlite(p) if p == ":memory:");
        let pool = AnyPoolOptions::new()
            // One in-memory SQLite database exists per connection.
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
            // Connections a burst opened close after a minute idle (each
            // SQLite one holds its page and statement caches).
            .min_connections(1)
            .idle_timeout(if in_memory { None } else { Some(std::time::Duration::from_secs(60)) })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers proceed during a write; NORMAL sync is
                        // durable across process crashes (not power loss) and
                        // keeps commits off the fsync path.
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url.sqlx_url())
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Db { pool, dialect, rewritten: Arc::new(DashMap::new()) })
    }

    /// A round trip to the database (readiness).
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQL text for this backend.
    pub fn sql(&self, sql: &'static str) -> &'static str {
        if self.dialect == Dialect::Postgres {
            return sql;
        }
        if let Some(s) = self.rewritten.get(sql) {
            return *s;
        }
        let rewritten: &'static str = Box::leak(sql.replace('$', "?").into_boxed_str());
        self.rewritten.insert(sql, rewritten);
        rewritten
    }

    /// A prepared query for this backend.
    pub fn query(&self, sql: &'static str) -> Query<'static> {
        sqlx::query(self.sql(sql))
    }

    pub async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.pool.begin().await
    }
}

#[cfg(test)]
pub(crate) async fn test_db() -> Db {
    Db::connect(&DatabaseUrl::Sqlite(":memory:".into()), 1).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn placeholders_are_rewritten_for_sqlite() {
        let db = test_db().await;
        assert_eq!(db.sql("SELECT $1, $2"), "SELECT ?1, ?2");
        let v: (i64, String) = sqlx::query_as(db.sql("SELECT $2, $1")).bind("a").bind(7_i64).fetch_one(db.pool()).await.unwrap();
        assert_eq!(v, (7, "a".to_owned()));
    }
}
