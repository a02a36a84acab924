//! Giving memory back after bursts of large requests (docs/security.md,
//! "Limits").
//!
//! With glibc's defaults a process that once held large request buffers
//! keeps most of that memory: the mmap threshold rises (up to 32 MiB) after
//! the first large buffer is freed, so later ones come from arenas, and
//! per-thread arenas are only trimmed from their top. Measured with
//! `bay serve` (debug build, 2 cores; docs/security.md has the table):
//!
//! - before the request limits, 20 × 64 MiB bodies plus a 1 GiB body: idle
//!   61 MB, 261 MB after with glibc's defaults, 68 MB with the settings below;
//! - bodies within their limits (60 × 3 MiB, still buffered): 106 MB after
//!   with the defaults, 56–71 MB with these settings (idle 47–58 MB);
//! - mimalloc 0.1 as the global allocator instead: idle 73 MB, 114 MB after
//!   the in-limit burst, 92 MB after the attack burst (glibc tuned: 56, 48).
//!
//! So glibc's own knobs, without a second allocator next to wasmtime's.
//!
//! - `M_MMAP_THRESHOLD` fixed at 128 KiB (this also turns the dynamic
//!   threshold off): large buffers are mapped and unmapped, never kept;
//! - `M_TRIM_THRESHOLD` 128 KiB: free memory at the top of the heap goes back;
//! - `M_ARENA_MAX` 4: fewer per-thread arenas to fragment;
//! - a trimmer task that calls `malloc_trim(0)` (which also releases free
//!   pages inside arenas) when the resident size has grown by a few MiB since
//!   its last run. A burst of 100 sandbox starts leaves ~12 MB of freed but
//!   resident arena pages behind (`./dev bench`); a 16 MiB trigger never saw
//!   them, so the threshold is small: a trim of Bay's few-MiB heap costs well
//!   under a millisecond on a blocking thread, at most every 5 s.

use std::time::Duration;

/// How often the trimmer looks at the resident size.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);
/// Growth since the last trim that makes the trimmer run.
const TRIM_GROWTH_BYTES: u64 = 2 << 20;

/// Sets glibc's allocator options; call first thing in `main`, before any
/// thread is started. Does nothing on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Returns free memory to the system now (glibc), on a blocking thread.
pub async fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim is thread-safe and only releases free memory.
        unsafe { libc::malloc_trim(0) }
    })
    .await;
}

/// The resident set size of this process (`/proc/self/statm`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Starts the trimmer (see the module docs).
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut baseline = resident_bytes().unwrap_or(0);
        let mut tick = tokio::time::interval(TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(now) = resident_bytes() else { return };
            if now > baseline.saturating_add(TRIM_GROWTH_BYTES) {
                trim().await;
                let after = resident_bytes().unwrap_or(now);
                tracing::debug!(before = now, after, "returned free memory to the system");
                baseline = after;
            } else if now < baseline {
                baseline = now;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_size_is_readable() {
        let rss = super::resident_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }
}
