//! Running the `agent-browser` CLI.
//!
//! agent-browser is a CLI plus a per-session daemon: the first command of a
//! session starts the daemon (detached, its own process session), which
//! launches Chromium and keeps it across CLI calls; `close` closes Chromium
//! and ends the daemon. Gull runs one CLI process per command, without a
//! shell, and never starts the browser on its own (no pre-warm): an idle
//! browser sandbox costs only this server.
//!
//! Launch options go to the CLI as environment variables, not flags: the CLI
//! then includes them in the `launch` message it sends before every command
//! (the daemon reuses a live browser and relaunches a dead one with the same
//! profile), and it never prints the "--profile ignored: daemon already
//! running" warning it gives for flags.

use std::{
    io::Read,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use runtime_common::{
    beneath::{Last, Workspace},
    capture::{ProcessGroups, exit_code, kill_group, wait_captured},
    text::{format_secs, strip_ansi},
    token::TOKEN_ENV,
};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use crate::config::{Config, PROFILE_REL};
/// Files Chromium leaves in a profile to claim it for one process on one
/// host. A new container has a new host name, and Chromium then refuses to
/// start ("profile appears to be in use by another Chromium process").
const SINGLETON_FILES: &[&str] = &["SingletonLock", "SingletonSocket", "SingletonCookie"];
/// Environment variables that make the CLI (re)launch a browser; removed for
/// Gull's own `close`, which must not start Chromium just to close it.
const LAUNCH_ENV: &[&str] = &["AGENT_BROWSER_EXECUTABLE_PATH", "AGENT_BROWSER_ARGS", "AGENT_BROWSER_PROFILE", "AGENT_BROWSER_USER_AGENT"];

/// What one CLI run produced (the `/exec` response body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl RunOutput {
    pub fn failed(exit_code: i32, stderr: impl Into<String>) -> Self {
        Self { stdout: String::new(), stderr: stderr.into(), exit_code }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrowserStatus {
    /// The session's agent-browser daemon is running.
    pub active: bool,
    /// ...and Chromium is running under it.
    pub ready: bool,
}

/// The browser as the HTTP handlers see it; tests use a fake.
#[async_trait]
pub trait Browser: Send + Sync {
    /// Runs `agent-browser --session <session> <args…>`; a timeout or a
    /// failure to start gives `exit_code` -1.
    async fn run(&self, args: Vec<String>, timeout: Duration) -> RunOutput;
    /// Closes `session`'s browser and daemon (nothing to do when not running).
    async fn close(&self, session: &str) -> RunOutput;
    /// Cheap: reads `/proc`, never starts anything.
    fn status(&self) -> BrowserStatus;
}

/// The real thing: the agent-browser binary.
pub(crate) struct AgentBrowser {
    cfg: Arc<Config>,
    /// The workspace, held open: the profile's files are touched through it.
    ws: Arc<Workspace>,
    env: Vec<(String, String)>,
    /// Held while a command may launch the daemon, so concurrent first
    /// commands neither race to start two daemons nor remove the lock files
    /// of a Chromium that is just starting.
    launch_gate: tokio::sync::Mutex<()>,
    /// Process groups of the CLI processes still running (for shutdown).
    running: ProcessGroups,
    shutting_down: AtomicBool,
}

impl AgentBrowser {
    pub(crate) fn new(cfg: Arc<Config>, ws: Arc<Workspace>) -> Self {
        let mut env = vec![
            // agent-browser's colour switch (any value disables colours).
            ("NO_COLOR".to_string(), "1".to_string()),
            ("AGENT_BROWSER_SOCKET_DIR".into(), cfg.socket_dir.to_string_lossy().into_owned()),
            ("AGENT_BROWSER_EXECUTABLE_PATH".into(), cfg.chromium.to_string_lossy().into_owned()),
            // Split by agent-browser at newlines (and commas).
            ("AGENT_BROWSER_ARGS".into(), cfg.chromium_args.join("\n")),
            ("AGENT_BROWSER_PROFILE".into(), cfg.profile_dir.to_string_lossy().into_owned()),
        ];
        if let Some(ua) = &cfg.user_agent {
            env.push(("AGENT_BROWSER_USER_AGENT".into(), ua.clone()));
        }
        Self { cfg, ws, env, launch_gate: tokio::sync::Mutex::new(()), running: ProcessGroups::default(), shutting_down: AtomicBool::new(false) }
    }

    /// pid of `session`'s daemon when it is alive (from its pid file).
    pub fn daemon_pid(&self, session: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.cfg.socket_dir.join(format!("{session}.pid"))).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (pid > 0 && process_alive(pid)).then_some(pid)
    }

    /// Removes Chromium's `Singleton*` files from the profile. Only call when
    /// no browser of this session runs.
    pub fn remove_stale_locks(&self) {
        for name in SINGLETON_FILES {
            let rel = format!("{PROFILE_REL}/{name}");
            // They are symlinks (to a host name, a socket path, a cookie):
            // the link itself goes (by descriptor), never its target.
            let found = self.ws.resolve(&rel, Last::NoFollow).and_then(|r| r.lstat()).is_ok_and(|st| st.is_some());
            if found {
                match self.ws.remove(&rel) {
                    Ok(_) => debug!(path = %rel, "removed a stale Chromium lock"),
                    Err(e) => warn!(path = %rel, error = %e, "cannot remove a stale Chromium lock"),
                }
            }
        }
    }

    /// SIGKILLs every running CLI process group (server shutdown); their
    /// requests answer at once with an "interrupted" error.
    pub fn kill_inflight(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.running.kill_all();
    }

    /// On shutdown: close the browser so Chromium writes cookies and storage
    /// to the profile (`docker stop` allows 10 s in all).
    pub async fn shutdown(&self) {
        let session = self.cfg.session.clone();
        if self.daemon_pid(&session).is_some() {
            info!(session, "closing the browser");
            self.end_session(&session, Duration::from_secs(2)).await;
        }
    }

    /// `close` through the CLI; when that fails (the daemon is stuck in a
    /// long command: it runs one at a time) SIGTERM its process group, which
    /// also reaches Chromium, whose own SIGTERM handling still saves the
    /// profile; SIGKILL what is left.
    async fn end_session(&self, session: &str, close_timeout: Duration) -> RunOutput {
        let Some(pid) = self.daemon_pid(session) else {
            return RunOutput::default();
        };
        let out = {
            let _gate = self.launch_gate.lock().await;
            self.spawn_cli(session, &["close".to_string()], close_timeout, false).await
        };
        if out.exit_code != 0 {
            warn!(session, exit_code = out.exit_code, stderr = %out.stderr.trim(), "browser close failed");
        }
        if out.exit_code == 0 {
            // The daemon exits on its own (~100 ms after answering).
            wait_gone(pid, 1000).await;
        } else if chromium_child(pid).is_some() {
            // The daemon runs one command at a time and is still busy with a
            // long one. Ask Chromium itself to close over its DevTools port:
            // only a clean close writes the cookies of the last 30 s (a
            // SIGTERM'd Chromium exits without saving them).
            match tokio::time::timeout(Duration::from_secs(1), cdp_browser_close(&self.ws)).await {
                Ok(Ok(())) => info!("asked Chromium to close over DevTools"),
                Ok(Err(e)) => warn!(error = %e, "cannot close Chromium over DevTools"),
                Err(_) => warn!("closing Chromium over DevTools timed out"),
            }
            // Chromium and its helpers are in the daemon's process group.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(3000);
            while tokio::time::Instant::now() < deadline && group_has_others(pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for (sig, wait) in [(libc::SIGTERM, 1000), (libc::SIGKILL, 500)] {
            if !process_alive(pid) {
                break;
            }
            warn!(pid, sig, "browser daemon still running; signalling its process group");
            kill_group(pid, sig);
            wait_gone(pid, wait).await;
        }
        out
    }

    /// One CLI run: own process group, no stdin, bounded output capture,
    /// killed (the whole group) at the timeout or when the request is dropped.
    async fn spawn_cli(&self, session: &str, args: &[String], timeout: Duration, launch: bool) -> RunOutput {
        let mut cmd = tokio::process::Command::new(&self.cfg.agent_browser);
        cmd.arg("--session")
            .arg(session)
            .args(args)
            .current_dir(&self.cfg.workspace)
            .env_remove(TOKEN_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if !launch {
            for k in LAUNCH_ENV {
                cmd.env_remove(k);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return RunOutput::failed(-1, format!("agent-browser not found at {}. Is it installed?", self.cfg.agent_browser.display()));
            }
            Err(e) => return RunOutput::failed(-1, format!("Failed to execute command: {e}")),
        };
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        // Kills the group if this future is dropped (client went away) and
        // forgets it when the command is done.
        let mut guard = self.running.track(pgid, true);
        debug!(pid = pgid, ?args, "agent-browser started");
        let done = wait_captured(&mut child, Some(timeout)).await;
        guard.disarm();
        // The daemon the CLI may have started does not inherit the pipes.
        let stdout = strip_ansi(&done.stdout.with_marker());
        let stderr = strip_ansi(&done.stderr.with_marker());
        let (status, timed_out) = (done.status, done.timed_out);
        if self.shutting_down.load(Ordering::SeqCst) && !matches!(&status, Ok(st) if st.success()) {
            return RunOutput { stdout, stderr: "Command interrupted: the browser runtime is shutting down".into(), exit_code: -1 };
        }
        if timed_out {
            return RunOutput { stdout, stderr: format!("Command timed out after {}s", format_secs(timeout.as_secs_f64())), exit_code: -1 };
        }
        let exit_code = match status {
            // Like Python's returncode: -N when killed by signal N.
            Ok(st) => exit_code(&st),
            Err(e) => {
                return RunOutput { stdout, stderr: format!("Failed to wait for command: {e}"), exit_code: -1 };
            }
        };
        RunOutput { stdout, stderr, exit_code }
    }
}

#[async_trait]
impl Browser for AgentBrowser {
    async fn run(&self, args: Vec<String>, timeout: Duration) -> RunOutput {
        let session = self.cfg.session.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        // When no daemon runs, this command starts one (and Chromium): do it
        // alone, after clearing the previous container's profile locks.
        let _gate = if self.daemon_pid(&session).is_none() {
            let Ok(gate) = tokio::time::timeout_at(deadline, self.launch_gate.lock()).await else {
                return RunOutput::failed(-1, format!("Command timed out after {}s", format_secs(timeout.as_secs_f64())));
            };
            if self.daemon_pid(&session).is_none() {
                self.remove_stale_locks();
                Some(gate)
            } else {
                None
            }
        } else {
            None
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let t = std::time::Instant::now();
        let out = self.spawn_cli(&session, &args, left.max(Duration::from_millis(1)), true).await;
        debug!(ms = t.elapsed().as_millis() as u64, exit_code = out.exit_code, "agent-browser done");
        out
    }

    async fn close(&self, session: &str) -> RunOutput {
        self.end_session(session, Duration::from_secs(10)).await
    }

    fn status(&self) -> BrowserStatus {
        match self.daemon_pid(&self.cfg.session) {
            None => BrowserStatus::default(),
            Some(pid) => BrowserStatus { active: true, ready: chromium_child(pid).is_some() },
        }
    }
}

/// Alive and not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => proc_state(&stat).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/<pid>/stat` line (after the `(comm)`).
fn proc_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Parent pid and command name from a `/proc/<pid>/stat` line.
fn proc_ppid_comm(stat: &str) -> Option<(i32, &str)> {
    let open = stat.find('(')?;
    let (comm_part, rest) = stat.rsplit_once(')')?;
    let comm = &comm_part[open + 1..];
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// The live Chromium (browser process) that is a child of `pid` (the daemon).
fn chromium_child(pid: i32) -> Option<i32> {
    let rd = std::fs::read_dir("/proc").ok()?;
    rd.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).find(|child| {
        std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
            proc_state(&stat).is_some_and(|s| s != 'Z' && s != 'X')
                && proc_ppid_comm(&stat).is_some_and(|(ppid, comm)| ppid == pid && comm.contains("chrom"))
        })
    })
}

/// Sends `Browser.close` to the Chromium using `profile_dir`, through the
/// DevTools WebSocket it announces in `DevToolsActivePort` (a minimal client:
/// handshake, one masked text frame).
async fn cdp_browser_close(ws: &Workspace) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let text = read_small(ws, &format!("{PROFILE_REL}/DevToolsActivePort")).map_err(|e| format!("DevToolsActivePort: {e}"))?;
    let mut lines = text.lines();
    let port: u16 = lines.next().and_then(|l| l.trim().parse().ok()).ok_or("no DevTools port")?;
    let path = lines.next().map(str::trim).filter(|p| p.starts_with('/')).ok_or("no DevTools path")?;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: Z3VsbC1jbG9zZS1ub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err("no WebSocket handshake".into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!("handshake refused: {}", String::from_utf8_lossy(&head).lines().next().unwrap_or("")));
    }
    s.write_all(&ws_text_frame(br#"{"id":1,"method":"Browser.close"}"#, [0x67, 0x75, 0x6c, 0x6c])).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// A final, masked WebSocket text frame (client to server) of a short payload.
fn ws_text_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Whether a live process other than `pgid`'s leader is in process group
/// `pgid` (the daemon leads its group; Chromium and its helpers are in it).
fn group_has_others(pgid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).filter(|p| *p != pgid).any(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .is_ok_and(|stat| proc_state(&stat).is_some_and(|s| s != 'Z' && s != 'X') && proc_pgrp(&stat) == Some(pgid))
    })
}

/// Process group from a `/proc/<pid>/stat` line.
fn proc_pgrp(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
}

/// Waits up to `ms` for `pid` to exit (or become a zombie).
async fn wait_gone(pid: i32, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while process_alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small text file of the workspace, read by descriptor.
fn read_small(ws: &Workspace, rel: &str) -> Result<String, String> {
    let (f, _, _) = ws.open_read(rel).map_err(|e| e.to_string())?;
    let mut s = String::new();
    f.take(64 * 1024).read_to_string(&mut s).map_err(|e| e.to_string())?;
    Ok(s)
}

/// For `/health`: the CLI is there and runnable.
pub fn binary_ok(path: &Path) -> bool {
    crate::config::is_executable(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_common::limits::{MAX_CAPTURE, TRUNCATED_MARKER};
    use std::os::unix::fs::PermissionsExt;

    fn browser_for(cfg: Arc<Config>) -> AgentBrowser {
        let ws = Arc::new(Workspace::open(&cfg.workspace).unwrap());
        AgentBrowser::new(cfg, ws)
    }

    #[test]
    fn websocket_frame() {
        let f = ws_text_frame(b"Hi", [1, 2, 3, 4]);
        assert_eq!(f, [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
    }

    #[test]
    fn proc_stat_parsing() {
        let stat = "4242 (chromium (x)) S 17 4242 4242 0 -1 4194560 123";
        assert_eq!(proc_state(stat), Some('S'));
        assert_eq!(proc_ppid_comm(stat), Some((17, "chromium (x)")));
        assert_eq!(proc_pgrp(stat), Some(4242));
        assert_eq!(proc_state("1 (a) Z 0"), Some('Z'));
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(i32::MAX));
    }

    /// A stand-in for agent-browser: a script that prints its argv and
    /// selected environment (so tests need no browser).
    fn fake_cli(dir: &Path, body: &str) -> Arc<Config> {
        let bin = dir.join("agent-browser");
        std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = dir.join("ws");
        let vars = [
            ("GULL_AGENT_BROWSER_BIN", bin.to_string_lossy().into_owned()),
            ("BAY_WORKSPACE_PATH", ws.to_string_lossy().into_owned()),
            ("AGENT_BROWSER_SOCKET_DIR", dir.join("sock").to_string_lossy().into_owned()),
            ("BAY_SANDBOX_ID", "sb-1".into()),
        ];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()));
        cfg.prepare_dirs().unwrap();
        Arc::new(cfg)
    }

    #[tokio::test]
    async fn runs_the_cli_with_session_env_and_plain_output() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(
            d.path(),
            r#"printf '\033[32m✓\033[0m %s|' "$@"; printf '%s|%s|%s' "$NO_COLOR" "$AGENT_BROWSER_PROFILE" "$(pwd)"; echo "$AGENT_BROWSER_ARGS" | tr '\n' ',' >&2; exit 3"#,
        );
        let ab = browser_for(cfg.clone());
        let out = ab.run(vec!["fill".into(), "@e1".into(), "a b".into()], Duration::from_secs(5)).await;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, format!("✓ --session|✓ sb-1|✓ fill|✓ @e1|✓ a b|1|{}|{}", cfg.profile_dir.display(), cfg.workspace.display()));
        assert_eq!(out.stderr, "--no-sandbox,--disable-gpu,--disable-dev-shm-usage,--disk-cache-dir=/tmp/gull-chromium-cache,");
    }

    #[tokio::test]
    async fn timeout_kills_the_group_and_missing_binary_is_minus_one() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "echo started; sleep 30 & sleep 30");
        let ab = browser_for(cfg);
        let out = ab.run(vec!["wait".into()], Duration::from_millis(500)).await;
        assert_eq!(out.exit_code, -1);
        assert_eq!(out.stderr, "Command timed out after 0.5s");
        assert_eq!(out.stdout, "started\n");
        assert!(ab.running.is_empty());

        let mut cfg = (*fake_cli(d.path(), "true")).clone();
        cfg.agent_browser = d.path().join("missing");
        let out = browser_for(Arc::new(cfg)).run(vec![], Duration::from_secs(1)).await;
        assert_eq!(out.exit_code, -1);
        assert!(out.stderr.contains("not found"), "{}", out.stderr);
    }

    #[tokio::test]
    async fn stale_locks_removed_only_without_a_daemon() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "true");
        let lock = cfg.profile_dir.join("SingletonLock");
        std::os::unix::fs::symlink("old-host-123", &lock).unwrap();
        let ab = browser_for(cfg.clone());
        // A live daemon (this test process) owns the session: locks stay.
        std::fs::write(cfg.socket_dir.join("sb-1.pid"), std::process::id().to_string()).unwrap();
        assert!(ab.status().active);
        ab.run(vec!["get".into(), "title".into()], Duration::from_secs(5)).await;
        assert!(std::fs::symlink_metadata(&lock).is_ok());
        // Dead daemon: the next command clears them first.
        std::fs::write(cfg.socket_dir.join("sb-1.pid"), i32::MAX.to_string()).unwrap();
        assert_eq!(ab.status(), BrowserStatus::default());
        ab.run(vec!["open".into(), "about:blank".into()], Duration::from_secs(5)).await;
        assert!(std::fs::symlink_metadata(&lock).is_err());
        // close without a daemon does not run the CLI.
        assert_eq!(ab.close("sb-1").await, RunOutput::default());
    }

    #[tokio::test]
    async fn output_is_capped() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "head -c 9000000 /dev/zero | tr '\\0' x");
        let out = browser_for(cfg).run(vec![], Duration::from_secs(10)).await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout.len(), MAX_CAPTURE + TRUNCATED_MARKER.len());
        assert!(out.stdout.ends_with(TRUNCATED_MARKER));
    }

    #[tokio::test]
    async fn profile_files_are_not_reached_through_links_out_of_the_workspace() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "true");
        let ab = browser_for(cfg.clone());
        // `.browser` swapped for a link to a directory outside with the same
        // layout: the lock there is left alone, DevToolsActivePort unread.
        let outside = d.path().join("outside");
        std::fs::create_dir_all(outside.join("profile")).unwrap();
        std::fs::write(outside.join("profile/SingletonLock"), "x").unwrap();
        std::fs::write(outside.join("profile/DevToolsActivePort"), "1\n/x\n").unwrap();
        std::fs::remove_dir_all(cfg.workspace.join(".browser")).unwrap();
        std::os::unix::fs::symlink(&outside, cfg.workspace.join(".browser")).unwrap();
        ab.remove_stale_locks();
        assert!(outside.join("profile/SingletonLock").exists());
        let err = cdp_browser_close(&ab.ws).await.unwrap_err();
        assert!(err.contains("outside workspace"), "{err}");
        // And a new container refuses such a profile directory.
        assert!(cfg.prepare_dirs().is_err());
    }
}
