//! Pseudo-terminals for the background processes started with `pty: true`
//! (`processes.rs`) and for the web terminal (`terminal.rs`).
//!
//! The pair comes from `openpty` (glibc, through `libc`). The child gets the
//! slave as stdin, stdout and stderr and, being a session leader (`setsid`,
//! done by the caller's earlier `pre_exec`), makes it its controlling
//! terminal with `TIOCSCTTY`, so `stty`, job control, `SIGWINCH` and `^C`
//! work as in a real terminal. Ship keeps only the master, non-blocking,
//! registered with tokio: reading it returns `EIO` once every slave
//! descriptor is closed, which is the end of the output.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Stdio,
};

use tokio::io::unix::AsyncFd;

/// The master side of a PTY, readable and writable from async code.
pub(crate) type Master = AsyncFd<OwnedFd>;

/// Largest terminal size accepted (cols and rows).
pub(crate) const MAX_SIZE: u16 = 1000;

/// Checks a requested terminal size.
pub(crate) fn check_size(cols: u32, rows: u32) -> Result<(u16, u16), String> {
    let ok = |n: u32| n >= 1 && n <= u32::from(MAX_SIZE);
    if ok(cols) && ok(rows) {
        Ok((cols as u16, rows as u16))
    } else {
        Err(format!("Invalid terminal size {cols}x{rows}: cols and rows must be 1..={MAX_SIZE}"))
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Opens a PTY of `cols`×`rows`; both descriptors close on exec, the master
/// is non-blocking and registered with the tokio reactor.
pub(crate) fn open(cols: u16, rows: u16) -> io::Result<(Master, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    let ws = winsize(cols, rows);
    // SAFETY: openpty fills both descriptors on success; each is owned once.
    let (master, slave) = unsafe {
        if libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) != 0 {
            return Err(io::Error::last_os_error());
        }
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    };
    for fd in [&master, &slave] {
        // SAFETY: plain fcntl on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: as above.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        if flags == -1 || libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: an OwnedFd stays open, and the same descriptor, until the
    // AsyncFd that owns it is dropped.
    let master = unsafe { AsyncFd::register(master) }?;
    Ok((master, slave))
}

/// Makes `cmd` run on `slave`: its stdin, stdout and stderr, and its
/// controlling terminal. `cmd` must already become a session leader in an
/// earlier `pre_exec` (`shell.rs` and `terminal.rs` call `setsid`); std sets
/// up the standard descriptors before any `pre_exec` runs.
pub(crate) fn attach(cmd: &mut tokio::process::Command, slave: &OwnedFd) -> io::Result<()> {
    cmd.stdin(Stdio::from(slave.try_clone()?)).stdout(Stdio::from(slave.try_clone()?)).stderr(Stdio::from(slave.try_clone()?));
    // SAFETY: ioctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Sets the terminal size (the kernel sends `SIGWINCH` to its foreground
/// process group).
pub(crate) fn resize(master: &Master, cols: u16, rows: u16) -> io::Result<()> {
    let ws = winsize(cols, rows);
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    if unsafe { libc::ioctl(master.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what the terminal printed; `Ok(0)` at the end (every slave
/// descriptor closed: `EIO` on Linux).
pub(crate) async fn read(master: &Master, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = master.readable().await?;
        let res = guard.try_io(|fd| {
            // SAFETY: reads at most buf.len() bytes into buf.
            let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match res {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Types `data` into the terminal (waits while its input queue is full).
pub(crate) async fn write_all(master: &Master, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        let res = guard.try_io(|fd| {
            // SAFETY: writes at most data.len() bytes from data.
            let n = unsafe { libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match res {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// SIGKILLs every process of session `sid` (the terminal's shell and all
/// its jobs, which an interactive shell puts in process groups of their
/// own), found in `/proc`. A process that left the session (`setsid`) is
/// not found; two passes catch what forked during the first.
pub(crate) fn kill_session(sid: i32) {
    if sid <= 1 {
        return;
    }
    runtime_common::capture::kill_group(sid, libc::SIGKILL);
    for _ in 0..2 {
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            if session_of(pid) == Some(sid) {
                // SAFETY: plain syscall.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// The session id of `pid` (field 6 of `/proc/<pid>/stat`).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_of_this_process() {
        // SAFETY: plain syscall.
        let sid = unsafe { libc::getsid(0) };
        assert_eq!(session_of(std::process::id() as i32), Some(sid));
        assert_eq!(check_size(80, 24), Ok((80, 24)));
        assert!(check_size(0, 24).is_err() && check_size(80, 1001).is_err());
    }
}
