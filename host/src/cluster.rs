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
//!   expires and another replica can take over.
//! - `leader`: one replica at a time runs the periodic background work (GC
//!   and warm-pool maintenance). Renewed every [`LEADER_RENEW`]; when the
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

pub const SANDBOX_LEASE: Duration = Duration::from_secs(30);
pub const LEADER_LEASE: Duration = Duration::from_secs(15);
pub const LEADER_RENEW: Duration = Duration::from_secs(5);

pub struct Cluster {
    db: Db,
    enabled: bool,
    replica: String,
    leader: AtomicBool,
    acquisitions: AtomicU64,
}

impl Cluster {
    /// `enabled`: whether other replicas may share the database.
    pub fn new(db: Db, enabled: bool) -> Arc<Cluster> {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "bay".into());
        let replica = format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Arc::new(Cluster { db, enabled, replica, leader: AtomicBool::new(!enabled), acquisitions: AtomicU64::new(0) })
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

    /// Tries to take or keep the leader lease once.
    pub async fn elect(&self) -> bool {
        if !self.enabled {
            return true;
        }
        let now = now_micros();
        let ours = match self.db.try_lease("leader", &self.replica, now, now + secs(LEADER_LEASE.as_secs() as i64)).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "leader lease");
                false
            }
        };
        if ours != self.leader.swap(ours, Ordering::Relaxed) {
            tracing::info!(replica = %self.replica, leader = ours, "leadership changed");
        }
        ours
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
                let Some(cluster) = this.upgrade() else { return };
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
            let now = now_micros();
            match self.db.try_lease(&key, &holder, now, now + ttl).await {
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
