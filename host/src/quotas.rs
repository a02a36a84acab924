//! Per-owner quotas (`quotas:`; docs/security.md, "Quotas"): live sandboxes,
//! external cargos and the total `size_limit_mb` of an owner's cargos.
//! Exceeding one is 429 `quota_exceeded` naming the quota, the usage and the
//! maximum.
//!
//! A check and the insert it admits run under a per-owner lock held by the
//! caller (the returned [`Admission`]), so concurrent creates of one owner on
//! one Bay cannot overshoot. Replicas sharing a database check against the
//! same rows but do not share the lock: concurrent creates of one owner
//! through different replicas may overshoot by the number in flight.
//! Quotas at 0 (the default) cost nothing: no lock, no query.

use std::sync::Arc;

use dashmap::DashMap;

use crate::config::QuotasConfig;
use crate::db::Db;
use crate::error::{BayError, BayResult, ErrorCode};

/// Held from the check to the insert it admitted.
pub(crate) type Admission = Option<tokio::sync::OwnedMutexGuard<()>>;

pub(crate) struct Quotas {
    config: QuotasConfig,
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

fn exceeded(quota: &str, current: u64, maximum: u64, requested: Option<u64>) -> BayError {
    let mut err = BayError::new(ErrorCode::QuotaExceeded, format!("Quota exceeded: {quota} (in use: {current}, maximum: {maximum})"))
        .with("quota", quota)
        .with("current", current)
        .with("maximum", maximum);
    if let Some(r) = requested {
        err = err.with("requested", r);
    }
    err
}

/// Refuses when `current + adding` would pass `maximum` (0: unlimited).
fn check(quota: &str, current: u64, adding: u64, maximum: u64, requested: Option<u64>) -> BayResult<()> {
    if maximum > 0 && current.saturating_add(adding) > maximum {
        return Err(exceeded(quota, current, maximum, requested));
    }
    Ok(())
}

impl Quotas {
    pub(crate) fn new(config: QuotasConfig) -> Quotas {
        Quotas { config, locks: DashMap::new() }
    }

    async fn lock(&self, owner: &str) -> Admission {
        let lock = self.locks.entry(owner.to_owned()).or_default().clone();
        Some(lock.lock_owned().await)
    }

    /// Admits one more sandbox of `owner`; `new_cargo_mb` is the size of the
    /// managed cargo it brings (`None` when it mounts an existing cargo).
    pub(crate) async fn admit_sandbox(&self, db: &Db, owner: &str, new_cargo_mb: Option<i64>) -> BayResult<Admission> {
        let c = &self.config;
        let cargo_mb = new_cargo_mb.map(|mb| mb.max(0) as u64);
        if c.max_sandboxes == 0 && (c.max_cargo_mb == 0 || cargo_mb.is_none()) {
            return Ok(None);
        }
        let admission = self.lock(owner).await;
        if c.max_sandboxes > 0 {
            check("max_sandboxes", live_sandboxes(db, owner).await?, 1, c.max_sandboxes, None)?;
        }
        if let Some(mb) = cargo_mb.filter(|_| c.max_cargo_mb > 0) {
            check("max_cargo_mb", cargo_mb_in_use(db, owner).await?, mb, c.max_cargo_mb, Some(mb))?;
        }
        Ok(admission)
    }

    /// Admits one more external cargo of `size_mb` for `owner`.
    pub(crate) async fn admit_cargo(&self, db: &Db, owner: &str, size_mb: i64) -> BayResult<Admission> {
        let c = &self.config;
        if c.max_cargos == 0 && c.max_cargo_mb == 0 {
            return Ok(None);
        }
        let admission = self.lock(owner).await;
        if c.max_cargos > 0 {
            check("max_cargos", external_cargos(db, owner).await?, 1, c.max_cargos, None)?;
        }
        if c.max_cargo_mb > 0 {
            let mb = size_mb.max(0) as u64;
            check("max_cargo_mb", cargo_mb_in_use(db, owner).await?, mb, c.max_cargo_mb, Some(mb))?;
        }
        Ok(admission)
    }
}

async fn count(db: &Db, sql: &'static str, owner: &str) -> BayResult<u64> {
    let (n,): (i64,) = sqlx::query_as(db.sql(sql)).bind(owner).fetch_one(db.pool()).await?;
    Ok(n.max(0) as u64)
}

/// Live sandboxes the owner holds (warm-pool sandboxes belong to the pool).
async fn live_sandboxes(db: &Db, owner: &str) -> BayResult<u64> {
    count(db, "SELECT COUNT(*) FROM sandboxes WHERE owner = $1 AND deleted_at IS NULL AND is_warm_pool = 0", owner).await
}

async fn external_cargos(db: &Db, owner: &str) -> BayResult<u64> {
    count(db, "SELECT COUNT(*) FROM cargos WHERE owner = $1 AND managed = 0", owner).await
}

async fn cargo_mb_in_use(db: &Db, owner: &str) -> BayResult<u64> {
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back.
    count(db, "SELECT CAST(COALESCE(SUM(size_limit_mb), 0) AS BIGINT) FROM cargos WHERE owner = $1", owner).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::cargos::Cargo;
    use crate::db::sandboxes::Sandbox;

    fn cargo(id: &str, owner: &str, managed: bool, mb: i64) -> Cargo {
        Cargo {
            id: id.into(),
            owner: owner.into(),
            backend: "docker_volume".into(),
            driver_ref: format!("bay-cargo-{id}"),
            managed: managed as i64,
            managed_by_sandbox_id: managed.then(|| format!("sb-{id}")),
            size_limit_mb: mb,
            created_at: 0,
            last_accessed_at: 0,
        }
    }

    fn sandbox(id: &str, owner: &str, cargo_id: &str, warm: bool, deleted: bool) -> Sandbox {
        Sandbox {
            id: id.into(),
            owner: owner.into(),
            profile_id: "p".into(),
            cargo_id: cargo_id.into(),
            current_session_id: None,
            expires_at: None,
            idle_expires_at: None,
            deleted_at: deleted.then_some(1),
            created_at: 0,
            last_active_at: 0,
            is_warm_pool: warm as i64,
        }
    }

    #[test]
    fn zero_is_unlimited_and_errors_name_the_quota() {
        assert!(check("max_sandboxes", 1_000_000, 1, 0, None).is_ok());
        assert!(check("max_sandboxes", 1, 1, 2, None).is_ok());
        let e = check("max_sandboxes", 2, 1, 2, None).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code.as_str()), (429, "quota_exceeded"));
        assert_eq!(e.details["quota"], "max_sandboxes");
        assert_eq!((e.details["current"].as_u64(), e.details["maximum"].as_u64()), (Some(2), Some(2)));
        assert!(check("max_cargo_mb", u64::MAX, u64::MAX, 10, Some(u64::MAX)).is_err());
    }

    #[tokio::test]
    async fn usage_is_counted_per_owner() {
        let db = crate::db::test_db().await;
        for c in [cargo("a1", "alice", true, 100), cargo("a2", "alice", false, 50), cargo("b1", "bob", false, 10)] {
            db.insert_cargo(db.pool(), &c).await.unwrap();
        }
        for s in [sandbox("s1", "alice", "a1", false, false), sandbox("s2", "alice", "a1", false, true), sandbox("s3", "alice", "a1", true, false)] {
            db.insert_sandbox(db.pool(), &s).await.unwrap();
        }
        assert_eq!(live_sandboxes(&db, "alice").await.unwrap(), 1);
        assert_eq!(external_cargos(&db, "alice").await.unwrap(), 1);
        assert_eq!(cargo_mb_in_use(&db, "alice").await.unwrap(), 150);
        assert_eq!(cargo_mb_in_use(&db, "nobody").await.unwrap(), 0);

        let q = Quotas::new(QuotasConfig { max_sandboxes: 2, max_cargos: 1, max_cargo_mb: 200 });
        assert!(q.admit_sandbox(&db, "alice", Some(50)).await.unwrap().is_some());
        let e = q.admit_sandbox(&db, "alice", Some(51)).await.unwrap_err();
        assert_eq!(e.details["quota"], "max_cargo_mb");
        assert!(q.admit_sandbox(&db, "alice", None).await.is_ok(), "an existing cargo adds no MB");
        let e = q.admit_cargo(&db, "alice", 1).await.unwrap_err();
        assert_eq!(e.details["quota"], "max_cargos");
        assert_eq!(q.admit_cargo(&db, "bob", 1).await.unwrap_err().details["quota"], "max_cargos");
        assert!(q.admit_cargo(&db, "carol", 200).await.is_ok());
        assert_eq!(q.admit_cargo(&db, "carol", 201).await.unwrap_err().details["requested"], 201);
        let unlimited = Quotas::new(QuotasConfig::default());
        assert!(unlimited.admit_sandbox(&db, "alice", Some(i64::MAX)).await.unwrap().is_none());
    }
}
