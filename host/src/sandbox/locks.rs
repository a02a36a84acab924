//! Per-sandbox mutual exclusion.
//!
//! Starting, stopping and deleting a sandbox's session, and GC, take the
//! sandbox's lock, so concurrent first calls start one container and a stop
//! never races a start. In one process that is an in-memory mutex; with
//! several replicas on one database it is that mutex plus the sandbox's
//! lease (see [`crate::cluster`]), so the guarantee holds across processes.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::cluster::{Cluster, Lease};

pub struct SandboxLocks {
    locks: DashMap<String, Arc<Mutex<()>>>,
    cluster: Option<Arc<Cluster>>,
}

/// Held while a sandbox's lock is; dropping it releases both levels.
pub struct SandboxGuard {
    local: Option<OwnedMutexGuard<()>>,
    lease: Option<Lease>,
}

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release(self.local.take());
        }
    }
}

impl SandboxLocks {
    /// `cluster`: take a database lease too when it is enabled.
    pub fn new(cluster: Option<Arc<Cluster>>) -> SandboxLocks {
        SandboxLocks { locks: DashMap::new(), cluster: cluster.filter(|c| c.enabled()) }
    }

    pub async fn lock(&self, sandbox_id: &str) -> SandboxGuard {
        let m = self.locks.entry(sandbox_id.to_owned()).or_default().clone();
        let local = m.lock_owned().await;
        let lease = match &self.cluster {
            Some(c) => Some(c.acquire(format!("sandbox:{sandbox_id}")).await),
            None => None,
        };
        SandboxGuard { local: Some(local), lease }
    }

    /// Forgets a deleted sandbox's lock (holders keep theirs until released).
    pub fn forget(&self, sandbox_id: &str) {
        self.locks.remove(sandbox_id);
    }
}

impl Default for SandboxLocks {
    fn default() -> Self {
        SandboxLocks::new(None)
    }
}
