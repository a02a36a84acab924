//! Running a child process that leads its own process group, with bounded
//! capture of its stdout/stderr: Ship's shell commands
//! (`runtimes/ship/src/shell.rs`) and Gull's agent-browser CLI runs
//! (`runtimes/gull/src/browser.rs`) work the same way.
//!
//! * The caller spawns the child with `setsid`/`process_group(0)` so a
//!   timeout, a dropped request or the server's shutdown can kill the whole
//!   tree it started, not just its leader.
//! * Each stream is drained to EOF but only [`MAX_CAPTURE`] bytes are kept,
//!   so a flood of output cannot exhaust the server's memory.
//! * After the leader exits the pipes get [`PIPE_GRACE`] to close: a daemon
//!   started with `&` may keep them open forever; its output is then drained
//!   in the background and the answer does not wait for it.

use std::{
    collections::HashSet,
    io,
    process::ExitStatus,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Child,
    task::JoinHandle,
};

pub use crate::limits::{MAX_CAPTURE, TRUNCATED_MARKER};

/// After the leader exits, how long to wait for its pipes to close.
pub const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Sends `sig` to process group `pgid` (never to group 0 or 1).
pub fn kill_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: plain syscall; a negative pid addresses the process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// The process groups of the commands still running, for shutdown.
#[derive(Clone, Default)]
pub struct ProcessGroups(Arc<Mutex<HashSet<i32>>>);

impl ProcessGroups {
    /// Records `pgid` until the returned guard is dropped. With
    /// `kill_on_drop`, dropping the guard before [`GroupGuard::disarm`]
    /// SIGKILLs the group (the request that ran it went away).
    pub fn track(&self, pgid: i32, kill_on_drop: bool) -> GroupGuard {
        if let Ok(mut s) = self.0.lock() {
            s.insert(pgid);
        }
        GroupGuard { groups: self.clone(), pgid, armed: kill_on_drop }
    }

    /// SIGKILLs every tracked group.
    pub fn kill_all(&self) {
        if let Ok(set) = self.0.lock() {
            for pgid in set.iter() {
                kill_group(*pgid, libc::SIGKILL);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().map(|s| s.is_empty()).unwrap_or(true)
    }
}

pub struct GroupGuard {
    groups: ProcessGroups,
    pgid: i32,
    armed: bool,
}

impl GroupGuard {
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid, libc::SIGKILL);
        }
        if let Ok(mut s) = self.groups.0.lock() {
            s.remove(&self.pgid);
        }
    }
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
    /// Set once the answer is built: keep draining, stop storing.
    detached: bool,
}

/// Reads a pipe to EOF, storing at most [`MAX_CAPTURE`] bytes.
fn spawn_pump<R: AsyncRead + Unpin + Send + 'static>(mut r: R, cap: Arc<Mutex<Capture>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let Ok(mut c) = cap.lock() else { return };
            if c.detached || c.truncated {
                continue;
            }
            let room = MAX_CAPTURE - c.buf.len();
            if n <= room {
                c.buf.extend_from_slice(&chunk[..n]);
            } else {
                c.buf.extend_from_slice(&chunk[..room]);
                c.truncated = true;
            }
        }
    })
}

fn take(cap: &Arc<Mutex<Capture>>) -> Captured {
    match cap.lock() {
        Ok(mut c) => {
            c.detached = true;
            Captured { text: String::from_utf8_lossy(&std::mem::take(&mut c.buf)).into_owned(), truncated: c.truncated }
        }
        Err(_) => Captured::default(),
    }
}

/// One captured stream (lossy UTF-8).
#[derive(Debug, Default)]
pub struct Captured {
    pub text: String,
    pub truncated: bool,
}

impl Captured {
    /// The text with [`TRUNCATED_MARKER`] appended when output was dropped.
    pub fn with_marker(mut self) -> String {
        if self.truncated {
            self.text.push_str(TRUNCATED_MARKER);
        }
        self.text
    }
}

/// How a captured run ended.
pub struct Finished {
    pub status: io::Result<ExitStatus>,
    pub timed_out: bool,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// Pumps the child's piped stdout/stderr, waits for it (at most `timeout`;
/// then its group is SIGKILLed) and collects what it printed.
pub async fn wait_captured(child: &mut Child, timeout: Option<Duration>) -> Finished {
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let mut pumps = Vec::new();
    if let Some(o) = child.stdout.take() {
        pumps.push(spawn_pump(o, out.clone()));
    }
    if let Some(e) = child.stderr.take() {
        pumps.push(spawn_pump(e, err.clone()));
    }
    let waited = match timeout {
        Some(d) => tokio::time::timeout(d, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    let (status, timed_out) = match waited {
        Some(s) => (s, false),
        None => {
            kill_group(pgid, libc::SIGKILL);
            (child.wait().await, true)
        }
    };
    let _ = tokio::time::timeout(PIPE_GRACE, async {
        for p in pumps {
            let _ = p.await;
        }
    })
    .await;
    Finished { status, timed_out, stdout: take(&out), stderr: take(&err) }
}

/// Like Python's `returncode`: the exit code, or -N when killed by signal N.
pub fn exit_code(st: &ExitStatus) -> i32 {
    st.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(st).map(|s| -s)).unwrap_or(-1)
}
