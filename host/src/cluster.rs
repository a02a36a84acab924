//! Several Bay replicas on one database.
//!
//! With PostgreSQL, any number of Bay processes may serve the same API behind
//! a load balancer. What one process guarantees with in-memory locks, the
//! replicas guarantee with **leases** (rows of the `leases` table, held until
//! they expire unless renewed):
//!
//! - `sandbox:<id>`: starting, stopping, deleting or collecting a sandbox's
//!   session is exclusive across replicas, so concurrent first calls through
//!   two replicas still start one container. Held for [`SANDBOX_LEASE`],
//!   renewed while the work runs; a replica killed mid-start loses it when it
//!   expires and another replica can take over. A lease whose holder was a
//!   process on this host that no longer exists (Bay restarted after a crash)
//!   is taken over at once.
//! - `leader`: one replica at a time runs the periodic background work (GC
//!   and warm-pool maintenance, browser learning). Renewed every [`LEADER_RENEW`]; when the
//!   leader dies another replica takes over within [`LEADER_LEASE`].
//!
//! Idempotency keys and warm-pool claims need no lease: they are single
//! conditional statements (`INSERT` on a primary key, `UPDATE … RETURNING`).
//! With SQLite (one process) all of this is off and costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::ids::{now_micros, secs};

pub const SANDBOX_LEASE: Duration = Duration::from_secs(10);
pub const LEADER_LEASE: Duration = Duration::from_secs(15);
pub const LEADER_RENEW: Duration = Duration::from_secs(5);

pub struct Cluster {
    db: Db,
    enabled: bool,
    replica: String,
    leader: AtomicBool,
    /// Set on shutdown ([`Cluster::resign`]): no more elections.
    resigned: AtomicBool,
    acquisitions: AtomicU64,
}

impl Cluster {
    /// `enabled`: whether other replicas may share the database.
    pub fn new(db: Db, enabled: bool) -> Arc<Cluster> {
        // The kernel's host name (a Pod's name on Kubernetes): with the pid it
        // tells a dead process of this host from a live replica elsewhere.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().replace('#', "_"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "bay".into());
        let replica = format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Arc::new(Cluster {
            db,
            enabled,
            replica,
            leader: AtomicBool::new(!enabled),
            resigned: AtomicBool::new(false),
            acquisitions: AtomicU64::new(0),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    /// Whether this replica runs the periodic background work now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Takes `key` for `holder` if it is free, expired, ours, or held by a
    /// dead process of this host.
    async fn take(&self, key: &str, holder: &str, ttl: Duration) -> sqlx::Result<bool> {
        let now = now_micros();
        let expires = now + secs(ttl.as_secs() as i64);
        if self.db.try_lease(key, holder, now, expires).await? {
            return Ok(true);
        }
        match self.db.lease_holder(key).await? {
            Some((old, _)) if self.is_dead_local_holder(&old) => {
                tracing::info!(key, dead = %old, "taking over the lease of a process that is gone");
                self.db.steal_lease(key, &old, holder, expires).await
            }
            _ => Ok(false),
        }
    }

    /// `host-pid-random[#n]` of a process on this host that has exited.
    pub(crate) fn is_dead_local_holder(&self, holder: &str) -> bool {
        let replica = holder.split('#').next().unwrap_or_default();
        let mut parts = replica.rsplitn(3, '-');
        let (_random, pid, host) = (parts.next(), parts.next(), parts.next());
        let ours = self.replica.rsplitn(3, '-').nth(2);
        match (host, pid.and_then(|p| p.parse::<u32>().ok())) {
            (Some(host), Some(pid)) => Some(host) == ours && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            _ => false,
        }
    }

    /// Tries to take or keep the leader lease once.
    pub async fn elect(&self) -> bool {
        if !self.enabled {
            return true;
        }
        if self.resigned.load(Ordering::Relaxed) {
            return false;
        }
        let ours = match self.take("leader", &self.replica, LEADER_LEASE).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "leader lease");
                false
            }
        };
        // An election that was under way when this replica resigned.
        if ours && self.resigned.load(Ordering::Relaxed) {
            let _ = self.db.release_lease("leader", &self.replica).await;
            return false;
        }
        if ours != self.leader.swap(ours, Ordering::Relaxed) {
            tracing::info!(replica = %self.replica, leader = ours, "leadership changed");
        }
        ours
    }

    /// Shutting down: stops leading and gives the leader lease up, so
    /// another replica takes over at its next election (every
    /// [`LEADER_RENEW`]) instead of after [`LEADER_LEASE`].
    pub async fn resign(&self) {
        self.resigned.store(true, Ordering::Relaxed);
        if self.enabled && self.leader.swap(false, Ordering::Relaxed) {
            match self.db.release_lease("leader", &self.replica).await {
                Ok(()) => tracing::info!(replica = %self.replica, "leader lease released"),
                Err(e) => tracing::warn!(error = %e, "leader lease release (it will expire)"),
            }
        }
    }

    /// Keeps electing in the background.
    pub fn spawn_election(self: &Arc<Self>) {
        if !self.enabled {
            return;
        }
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEADER_RENEW).await;
                let Some(cluster) = this.upgrade() else {
                    return;
                };
                cluster.elect().await;
            }
        });
    }

    /// Waits until this replica holds `key`, then keeps it renewed until the
    /// returned lease is released.
    pub async fn acquire(&self, key: String) -> Lease {
        let holder = format!("{}#{}", self.replica, self.acquisitions.fetch_add(1, Ordering::Relaxed));
        let ttl = secs(SANDBOX_LEASE.as_secs() as i64);
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.take(&key, &holder, SANDBOX_LEASE).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(key, error = %e, "lease"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        let renew = {
            let (db, key, holder) = (self.db.clone(), key.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SANDBOX_LEASE / 3).await;
                    let now = now_micros();
                    match db.try_lease(&key, &holder, now, now + ttl).await {
                        Ok(true) => {}
                        Ok(false) => tracing::error!(key, "a lease was lost while held (expired before renewal)"),
                        Err(e) => tracing::warn!(key, error = %e, "lease renewal"),
                    }
                }
            })
        };
        Lease { db: self.db.clone(), key, holder, renew }
    }
}

/// A held lease; see [`Lease::release`].
pub struct Lease {
    db: Db,
    key: String,
    holder: String,
    renew: JoinHandle<()>,
}

impl Lease {
    /// Gives the lease up in the background; `local` (the in-process lock
    /// taken with it) is released only after, so the next local holder does
    /// not race the release.
    pub fn release(self, local: Option<OwnedMutexGuard<()>>) {
        self.renew.abort();
        let Lease { db, key, holder, .. } = self;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = db.release_lease(&key, &holder).await {
                        tracing::warn!(key, error = %e, "lease release (it will expire)");
                    }
                    drop(local);
                });
            }
            // Shutting down: the lease expires on its own.
            Err(_) => drop(local),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(c: &Cluster) -> String {
        c.replica.rsplitn(3, '-').nth(2).unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_until_released_or_expired() {
        let db = crate::db::test_db().await;
        let now = now_micros();
        assert!(db.try_lease("k", "a", now, now + secs(10)).await.unwrap());
        assert!(!db.try_lease("k", "b", now, now + secs(10)).await.unwrap());
        assert!(db.try_lease("k", "a", now, now + secs(20)).await.unwrap(), "the holder renews");
        assert!(db.try_lease("k", "b", now + secs(21), now + secs(30)).await.unwrap(), "expired: taken over");
        db.release_lease("k", "a").await.unwrap();
        assert_eq!(db.lease_holder("k").await.unwrap().unwrap().0, "b", "a stale holder cannot release it");
    }

    #[tokio::test]
    async fn a_dead_process_of_this_host_loses_its_lease_at_once() {
        let db = crate::db::test_db().await;
        let cluster = Cluster::new(db.clone(), true);
        let host = host_of(&cluster);
        let now = now_micros();
        // No process has this pid (above any pid_max).
        db.try_lease("dead", &format!("{host}-4294967-0bad#3"), now, now + secs(60)).await.unwrap();
        assert!(cluster.take("dead", "me#0", SANDBOX_LEASE).await.unwrap());
        // pid 1 exists: that holder is alive, so it keeps the lease.
        db.try_lease("alive", &format!("{host}-1-0bad#0"), now, now + secs(60)).await.unwrap();
        assert!(!cluster.take("alive", "me#1", SANDBOX_LEASE).await.unwrap());
        // Another host's process is never presumed dead.
        db.try_lease("remote", "elsewhere-4294967-0bad#0", now, now + secs(60)).await.unwrap();
        assert!(!cluster.take("remote", "me#2", SANDBOX_LEASE).await.unwrap());
    }

    #[tokio::test]
    async fn a_resigning_leader_gives_the_lease_to_the_next_replica_at_once() {
        let db = crate::db::test_db().await;
        let (a, b) = (Cluster::new(db.clone(), true), Cluster::new(db.clone(), true));
        assert!(a.elect().await && a.is_leader());
        assert!(!b.elect().await, "one leader at a time");
        a.resign().await;
        assert!(!a.is_leader());
        assert_eq!(db.lease_holder("leader").await.unwrap(), None, "released, not left to expire");
        assert!(b.elect().await, "the next election takes it");
        assert!(!a.elect().await, "a resigned replica does not stand again");
    }
}
