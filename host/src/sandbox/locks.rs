//! Per-sandbox mutual exclusion.
//!
//! Starting, stopping and deleting a sandbox's session, and (later) GC, take
//! the sandbox's lock, so concurrent first calls start one container and a
//! stop never races a start. In-process only: several replicas will need a
//! database lease (see the scale-out issue).

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
pub struct SandboxLocks {
    locks: DashMap<String, Arc<Mutex<()>>>,
}

impl SandboxLocks {
    pub async fn lock(&self, sandbox_id: &str) -> OwnedMutexGuard<()> {
        let m = self.locks.entry(sandbox_id.to_owned()).or_default().clone();
        m.lock_owned().await
    }

    /// Forgets a deleted sandbox's lock (holders keep theirs until released).
    pub fn forget(&self, sandbox_id: &str) {
        self.locks.remove(sandbox_id);
    }
}
