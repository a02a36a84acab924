//! The cargo's size limit, as far as Ship's own API is concerned.
//!
//! Bay passes the cargo's limit as `BAY_CARGO_LIMIT_BYTES`. With it set,
//! every write through Ship's API that would take the workspace's apparent
//! size (see `Workspace::apparent_size` in `runtimes/common/src/beneath.rs`:
//! the sizes of all files and links, hard links once, directories not
//! counted) over the limit is refused with 413
//! `Cargo size limit exceeded: <used> + <new> > <limit> bytes`, and the
//! existing file is left as it was:
//!
//! * `write_file` (`<new>`: the encoded content; in mode `w` the file's old
//!   size is not counted in `<used>`, it is being replaced), `create_file`,
//!   `edit_file` (the new content against the old);
//! * `upload`: the streamed bytes are counted as they arrive and the upload
//!   is aborted, its partial file removed, as soon as they cross the limit.
//!
//! Not covered: code the user runs (Python cells, shell commands and their
//! background processes) writes straight to the filesystem and can go past
//! the limit; Ship cannot stop that. Bay (or the volume's own quota) has to
//! enforce the limit for those. Ship's startup chores (the profile env file,
//! built-in skills) are not counted against it either.
//!
//! Walking the tree on every write would make a burst of small writes cost a
//! full walk each, so the figure is cached for [`CACHE_FOR`] and moved by
//! the size change of each of Ship's own writes in between; writes made by
//! user code are picked up at the next walk. Admission and accounting happen
//! under one lock, so two concurrent API writes cannot both take the last
//! free bytes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use runtime_common::{beneath::Workspace, error::AppError};

/// How long a measured figure is trusted.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(5);

pub(crate) struct Quota {
    ws: Arc<Workspace>,
    limit: Option<u64>,
    /// (bytes in use, when they were measured).
    used: Mutex<Option<(u64, Instant)>>,
}

impl Quota {
    pub(crate) fn new(ws: Arc<Workspace>, limit: Option<u64>) -> Self {
        Self { ws, limit, used: Mutex::new(None) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.limit.is_some()
    }

    fn refused(used: u64, new: u64, limit: u64) -> AppError {
        AppError::too_large(format!("Cargo size limit exceeded: {used} + {new} > {limit} bytes"))
    }

    /// Runs `f` with the current usage (measured again when stale).
    fn with_used<T>(&self, f: impl FnOnce(&mut u64) -> T) -> T {
        let mut g = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = g.filter(|(_, at)| at.elapsed() < CACHE_FOR);
        let mut used = match fresh {
            Some((u, _)) => u,
            None => self.ws.apparent_size().unwrap_or(0),
        };
        let out = f(&mut used);
        let at = fresh.map(|(_, at)| at).unwrap_or_else(Instant::now);
        *g = Some((used, at));
        out
    }

    /// Admits a write that adds `new` bytes and replaces `replaced` bytes
    /// (the old content of the file being overwritten), and counts it.
    pub(crate) fn admit(&self, new: u64, replaced: u64) -> Result<(), AppError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        self.with_used(|used| {
            let base = used.saturating_sub(replaced);
            if base.saturating_add(new) > limit {
                return Err(Self::refused(base, new, limit));
            }
            *used = base + new;
            Ok(())
        })
    }

    /// Undoes an [`Quota::admit`] whose write then failed.
    pub(crate) fn refund(&self, new: u64, replaced: u64) {
        if self.limit.is_some() {
            self.with_used(|used| *used = used.saturating_sub(new).saturating_add(replaced));
        }
    }

    /// Starts counting a streamed upload that will replace `replaced` bytes.
    /// May walk the workspace: call it off the async workers.
    pub(crate) fn stream(self: &Arc<Self>, replaced: u64) -> StreamCharge {
        let base = self.limit.map(|_| self.with_used(|u| u.saturating_sub(replaced)));
        StreamCharge { quota: self.clone(), replaced, streamed: 0, base }
    }
}

/// The bytes of one upload, checked as they arrive.
pub(crate) struct StreamCharge {
    quota: Arc<Quota>,
    replaced: u64,
    streamed: u64,
    /// Usage when the upload started, without the file it replaces (`None`
    /// without a limit).
    base: Option<u64>,
}

impl StreamCharge {
    /// Counts `n` more bytes; an error once the upload crosses the limit.
    pub(crate) fn add(&mut self, n: u64) -> Result<(), AppError> {
        self.streamed += n;
        let (Some(limit), Some(base)) = (self.quota.limit, self.base) else {
            return Ok(());
        };
        if base.saturating_add(self.streamed) > limit {
            return Err(Quota::refused(base, self.streamed, limit));
        }
        Ok(())
    }

    pub(crate) fn streamed(&self) -> u64 {
        self.streamed
    }

    /// The upload is in place: count it.
    pub(crate) fn commit(self) {
        if self.quota.enabled() {
            let (new, replaced) = (self.streamed, self.replaced);
            self.quota.with_used(|u| *u = u.saturating_sub(replaced).saturating_add(new));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_and_refuses() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), vec![0u8; 600]).unwrap();
        let ws = Arc::new(Workspace::open(d.path()).unwrap());
        let q = Arc::new(Quota::new(ws.clone(), Some(1000)));
        q.admit(300, 0).unwrap();
        // 900 in use now (cached, not re-walked): 200 more do not fit.
        let e = q.admit(200, 0).unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
        assert_eq!(e.detail, "Cargo size limit exceeded: 900 + 200 > 1000 bytes");
        // Replacing the 600-byte file with 700 bytes fits (900 - 600 + 700).
        q.admit(700, 600).unwrap();
        q.refund(700, 600);
        assert!(q.admit(101, 0).is_err());
        q.admit(100, 0).unwrap();
        // Streams stop as soon as they cross.
        let q = Arc::new(Quota::new(ws, Some(1000)));
        let mut s = q.stream(0);
        s.add(300).unwrap();
        let e = s.add(200).unwrap_err();
        assert_eq!(e.detail, "Cargo size limit exceeded: 600 + 500 > 1000 bytes");
        let mut s = q.stream(600);
        s.add(1000).unwrap();
        s.commit();
        assert!(q.admit(1, 0).is_err());
        // No limit: everything passes.
        let d2 = tempfile::tempdir().unwrap();
        let q = Quota::new(Arc::new(Workspace::open(d2.path()).unwrap()), None);
        q.admit(u64::MAX, 0).unwrap();
    }
}
