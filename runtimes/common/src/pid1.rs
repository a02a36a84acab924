//! PID 1 duty. In a container the runtime server is PID 1, which (a)
//! receives no default-action signals, so SIGTERM would be ignored without a
//! handler, and (b) inherits every orphan: background processes of shell
//! commands (Ship), agent-browser's daemon and Chromium (Gull) are
//! reparented to it and must be reaped or they stay zombies. A tiny
//! supervisor keeps these concerns out of the server.
//!
//! Why not `tini` (`docker run --init`)? The Docker engine Bay runs on may
//! have no `docker-init` binary, and the runtimes must not depend on how the
//! container was started; this is ~50 lines with no moving parts.

use std::sync::atomic::{AtomicI32, Ordering};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(child, sig);
        }
    }
}

/// Returns immediately unless this process is PID 1. As PID 1 it forks: the
/// child returns and runs the server; the parent forwards SIGTERM, SIGINT and
/// SIGHUP to it, reaps orphans, and exits with the server's status.
///
/// Must be called before any thread exists (fork in a multi-threaded process
/// is unsafe), i.e. before the tokio runtime is built.
pub fn supervise_if_pid1() {
    // SAFETY: plain syscalls; no threads exist yet (see above).
    unsafe {
        if libc::getpid() != 1 {
            return;
        }
        let child = libc::fork();
        if child < 0 {
            tracing::error!("fork failed; running without a PID 1 supervisor");
            return;
        }
        if child == 0 {
            return;
        }
        CHILD.store(child, Ordering::SeqCst);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        loop {
            let mut status: libc::c_int = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    1
                };
                std::process::exit(code);
            }
            if pid < 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // ECHILD: the server is gone without us noticing.
                std::process::exit(1);
            }
            // Any other pid: a reaped orphan.
        }
    }
}
