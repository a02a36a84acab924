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
//!
//! In shared mode (`shared.rs`) every sandbox has its own session, with its
//! own profile and `HOME` in Gull's private run directory, its own launch
//! gate, and its file arguments staged (`staging.rs`).

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
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

use crate::{
    config::{Config, PROFILE_REL, SharedConfig},
    exec::INVALID_COMMAND_EXIT,
    shared::{self, SandboxTarget},
    staging::{Pending, Stage, private_dir},
};
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
    /// Runs `agent-browser --session <session> <args…>` for the configured
    /// session, or for `target`'s (shared mode; `args` already checked by
    /// `shared::check_args`); a timeout or a failure to start gives
    /// `exit_code` -1.
    async fn run(&self, target: Option<&SandboxTarget>, args: Vec<String>, timeout: Duration) -> RunOutput;
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
    /// Shared mode's per-sandbox bookkeeping.
    sessions: SharedSessions,
}

/// Where and how one CLI process runs.
struct Call {
    session: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    /// Removed from the environment Gull inherited.
    remove: &'static [&'static str],
}

/// Shared mode: what Gull knows about the sandboxes' sessions. Std mutexes,
/// never held across an await.
#[derive(Default)]
struct SharedSessions {
    /// One launch gate per session (see `launch_gate`): a sandbox's first
    /// command waits only for its own session, not for other sandboxes'.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Files each session's browser writes after the command that named
    /// them (recordings, downloads; `staging.rs`).
    pending: Mutex<HashMap<String, Pending>>,
    /// Numbers the staging directories of the calls.
    calls: AtomicU64,
    /// Sessions launching now: counted against `GULL_MAX_SESSIONS` before
    /// their daemon has written its pid file.
    launching: Mutex<HashSet<String>>,
}

/// A poisoned lock only means a panic elsewhere; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Environment that must not reach a shared session's CLI: XDG_RUNTIME_DIR
/// would be one more place for sockets (Gull sets the socket directory
/// itself), AGENT_BROWSER_SESSION another way to pick a session.
const SHARED_ENV_REMOVE: &[&str] = &["XDG_RUNTIME_DIR", "AGENT_BROWSER_SESSION"];

/// Drops a session from `launching` when its launch is over.
struct Launching<'a> {
    set: &'a Mutex<HashSet<String>>,
    session: String,
}

impl Drop for Launching<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.session);
    }
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
        if let Some(ms) = cfg.idle_timeout_ms {
            // Read by the daemon, which inherits the CLI's environment.
            env.push(("AGENT_BROWSER_IDLE_TIMEOUT_MS".into(), ms.to_string()));
        }
        Self {
            cfg,
            ws,
            env,
            launch_gate: tokio::sync::Mutex::new(()),
            running: ProcessGroups::default(),
            shutting_down: AtomicBool::new(false),
            sessions: SharedSessions::default(),
        }
    }

    /// The configured session (single mode, and shared mode without ids).
    fn single_call(&self, session: &str) -> Call {
        Call { session: session.to_string(), cwd: self.cfg.workspace.clone(), env: self.env.clone(), remove: &[] }
    }

    /// A sandbox's session in shared mode: profile, `HOME`, XDG directories
    /// and HTTP cache in Gull's run directory, outside every cargo; working
    /// directory its `HOME` (agent-browser only gets staged absolute paths,
    /// and the daemon it starts keeps that directory); Gull's empty config
    /// file instead of any a home directory holds.
    fn shared_call(&self, sh: &SharedConfig, session: &str) -> Call {
        let home = shared::home_dir(sh, session);
        let cache = home.join(".cache");
        let mut env: Vec<(String, String)> =
            self.env.iter().filter(|(k, _)| k != "AGENT_BROWSER_PROFILE" && k != "AGENT_BROWSER_ARGS").cloned().collect();
        // One disk cache per Chromium: two browsers must not share one, and
        // one sandbox must not see what another one fetched.
        let args: Vec<String> = self
            .cfg
            .chromium_args
            .iter()
            .map(|a| if a.starts_with("--disk-cache-dir=") { format!("--disk-cache-dir={}", cache.join("chromium").display()) } else { a.clone() })
            .collect();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        env.extend([
            ("AGENT_BROWSER_ARGS".to_string(), args.join("\n")),
            ("AGENT_BROWSER_PROFILE".into(), path(&shared::profile_dir(sh, session))),
            ("AGENT_BROWSER_CONFIG".into(), path(&sh.run_dir.join(shared::CONFIG_FILE))),
            ("HOME".into(), path(&home)),
            ("XDG_CONFIG_HOME".into(), path(&home.join(".config"))),
            ("XDG_CACHE_HOME".into(), path(&cache)),
            ("XDG_DATA_HOME".into(), path(&home.join(".local/share"))),
            ("XDG_STATE_HOME".into(), path(&home.join(".local/state"))),
            // agent-browser's recordings put their frames in the temporary
            // directory: one per sandbox, not the container's shared /tmp.
            ("TMPDIR".into(), path(&home.join("tmp"))),
        ]);
        Call { session: session.to_string(), cwd: home, env, remove: SHARED_ENV_REMOVE }
    }

    /// The launch gate of a shared session (entries nobody holds are
    /// dropped on the way).
    fn gate(&self, session: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = lock(&self.sessions.gates);
        gates.retain(|k, g| k == session || Arc::strong_count(g) > 1);
        gates.entry(session.to_string()).or_default().clone()
    }

    /// Names of the sessions whose daemon is alive (from the socket dir).
    fn live_sessions(&self) -> HashSet<String> {
        let Ok(rd) = std::fs::read_dir(&self.cfg.socket_dir) else {
            return HashSet::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".pid").map(str::to_string))
            .filter(|s| self.daemon_pid(s).is_some())
            .collect()
    }

    /// Admits a new shared session (its daemon is not running) within
    /// `GULL_MAX_SESSIONS`. Two sandboxes may name one cargo: their
    /// profiles are their own, and files only reach the cargo through
    /// `staging.rs`.
    fn admit<'a>(&'a self, sh: &SharedConfig, t: &SandboxTarget) -> Result<Launching<'a>, String> {
        let live = self.live_sessions();
        let mut launching = lock(&self.sessions.launching);
        let busy = |s: &String| s != &t.sandbox_id && (live.contains(s) || launching.contains(s));
        let others = live.iter().chain(launching.iter()).filter(|s| busy(s)).collect::<HashSet<_>>().len();
        if others >= sh.max_sessions {
            return Err(format!(
                "Too many browser sessions: this shared browser runtime runs at most {} at a time (GULL_MAX_SESSIONS); \
                 try again when another sandbox's browser has closed",
                sh.max_sessions
            ));
        }
        launching.insert(t.sandbox_id.clone());
        Ok(Launching { set: &self.sessions.launching, session: t.sandbox_id.clone() })
    }

    /// A shared session's command (`Browser::run` with a target).
    async fn run_shared(&self, sh: &SharedConfig, t: &SandboxTarget, args: Vec<String>, timeout: Duration) -> RunOutput {
        let deadline = tokio::time::Instant::now() + timeout;
        let session = t.sandbox_id.as_str();
        let gate = self.gate(session);
        let mut held = None;
        if self.daemon_pid(session).is_none() {
            let Ok(g) = tokio::time::timeout_at(deadline, gate.lock()).await else {
                return RunOutput::failed(-1, format!("Command timed out after {}s", format_secs(timeout.as_secs_f64())));
            };
            if self.daemon_pid(session).is_none() {
                let launching = match self.admit(sh, t) {
                    Ok(l) => l,
                    Err(e) => return RunOutput::failed(INVALID_COMMAND_EXIT, e),
                };
                // The profile lives in Gull's private run directory; the
                // previous container's (or a killed Chromium's) locks go.
                let profile = shared::profile_dir(sh, session);
                if let Err(e) = private_dir(&profile) {
                    return RunOutput::failed(-1, format!("Cannot create {}: {e}", profile.display()));
                }
                match Workspace::open(&profile) {
                    Ok(p) => remove_stale_locks(&p, ""),
                    Err(e) => warn!(session, error = %e, "cannot open the profile to remove stale locks"),
                }
                held = Some((g, launching));
            }
        }
        let call = self.shared_call(sh, session);
        if let Err(e) = private_dir(&call.cwd).and_then(|()| private_dir(&call.cwd.join("tmp"))) {
            return RunOutput::failed(-1, format!("Cannot create {}: {e}", call.cwd.display()));
        }
        // The cargo held open: staged files are copied through it.
        let ws = match Workspace::open(&t.cargo_dir) {
            Ok(ws) => ws,
            Err(e) => return RunOutput::failed(INVALID_COMMAND_EXIT, format!("cargo {} cannot be opened: {e}", t.cargo_id)),
        };
        let n = self.sessions.calls.fetch_add(1, Ordering::Relaxed);
        // Copies in of up to 256 MiB each: off the async workers.
        let (root, cargo_dir) = (shared::staging_dir(sh, session), t.cargo_dir.clone());
        let prepared = tokio::task::spawn_blocking(move || {
            let stage = Stage::prepare(&root, n, &ws, &cargo_dir, args);
            (ws, stage)
        })
        .await;
        let (ws, stage) = match prepared {
            Ok((ws, Ok(s))) => (ws, s),
            Ok((_, Err(e))) => return RunOutput::failed(INVALID_COMMAND_EXIT, e),
            Err(e) => return RunOutput::failed(-1, format!("staging the command's files: {e}")),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let out = self.spawn_cli(&call, &stage.args, left.max(Duration::from_millis(1)), true).await;
        drop(held);
        // Copies of up to 256 MiB each: off the async workers, so other
        // sandboxes' commands are not held up behind them.
        let pending = lock(&self.sessions.pending).remove(session).unwrap_or_default();
        let finished = tokio::task::spawn_blocking(move || {
            let mut pending = pending;
            let out = stage.finish(&ws, out, &mut pending);
            (out, pending)
        })
        .await;
        let out = match finished {
            Ok((out, pending)) => {
                lock(&self.sessions.pending).insert(session.to_string(), pending);
                out
            }
            Err(e) => return RunOutput::failed(-1, format!("copying the command's files: {e}")),
        };
        RunOutput {
            stdout: shared::to_workspace_view(&out.stdout, &t.cargo_dir),
            stderr: shared::to_workspace_view(&out.stderr, &t.cargo_dir),
            exit_code: out.exit_code,
        }
    }

    /// Closes a shared session and forgets it: its profile, `HOME` (auth
    /// vault, saved states, screenshots without a path, HTTP cache) and
    /// staged files go too (a recording never stopped is lost).
    async fn close_shared(&self, sh: &SharedConfig, session: &str, timeout: Duration) -> RunOutput {
        let gate = self.gate(session);
        let _g = gate.lock().await;
        let mut call = self.shared_call(sh, session);
        // `close` needs no working directory, and the home may be gone.
        call.cwd = sh.run_dir.clone();
        // A sandbox's profile is in the run directory; the configured
        // session (requests without ids) has its own in /workspace.
        let profile = match Workspace::open(&shared::profile_dir(sh, session)) {
            Ok(p) => Some((Arc::new(p), "")),
            Err(_) if session == self.cfg.session => Some((self.ws.clone(), PROFILE_REL)),
            Err(_) => None,
        };
        let out = self.end_session(&call, profile.as_ref().map(|(ws, rel)| (&**ws, *rel)), timeout).await;
        lock(&self.sessions.pending).remove(session);
        for dir in [shared::home_dir(sh, session), shared::profile_dir(sh, session), shared::staging_dir(sh, session)] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(session, dir = %dir.display(), error = %e, "cannot remove a session directory");
            }
        }
        out
    }

    /// pid of `session`'s daemon when it is alive (from its pid file).
    pub fn daemon_pid(&self, session: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.cfg.socket_dir.join(format!("{session}.pid"))).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (pid > 0 && process_alive(pid)).then_some(pid)
    }

    /// Removes Chromium's `Singleton*` files from the workspace's profile.
    /// Only call when no browser of this session runs.
    pub fn remove_stale_locks(&self) {
        remove_stale_locks(&self.ws, PROFILE_REL);
    }

    /// SIGKILLs every running CLI process group (server shutdown); their
    /// requests answer at once with an "interrupted" error.
    pub fn kill_inflight(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.running.kill_all();
    }

    /// On shutdown: close the browsers so Chromium writes cookies and
    /// storage to the profiles (`docker stop` allows 10 s in all), all at
    /// once in shared mode.
    pub async fn shutdown(self: &Arc<Self>) {
        let sessions = match &self.cfg.shared {
            None => vec![self.cfg.session.clone()],
            Some(_) => self.live_sessions().into_iter().collect(),
        };
        let mut closing = tokio::task::JoinSet::new();
        for session in sessions.into_iter().filter(|s| self.daemon_pid(s).is_some()) {
            info!(session, "closing the browser");
            let me = self.clone();
            closing.spawn(async move { me.close_session(&session, Duration::from_secs(2)).await });
        }
        while closing.join_next().await.is_some() {}
    }

    async fn close_session(&self, session: &str, timeout: Duration) -> RunOutput {
        match &self.cfg.shared {
            Some(sh) => self.close_shared(sh, session, timeout).await,
            None => {
                let _gate = self.launch_gate.lock().await;
                self.end_session(&self.single_call(session), Some((&self.ws, PROFILE_REL)), timeout).await
            }
        }
    }

    /// `close` through the CLI; when that fails (the daemon is stuck in a
    /// long command: it runs one at a time) SIGTERM its process group, which
    /// also reaches Chromium, whose own SIGTERM handling still saves the
    /// profile; SIGKILL what is left.
    /// The caller holds the session's launch gate; `profile` is the profile
    /// directory, as a directory held open and a path in it (`None`:
    /// unknown, no DevTools fallback).
    async fn end_session(&self, call: &Call, profile: Option<(&Workspace, &str)>, close_timeout: Duration) -> RunOutput {
        let session = call.session.as_str();
        let Some(pid) = self.daemon_pid(session) else {
            return RunOutput::default();
        };
        let out = self.spawn_cli(call, &["close".to_string()], close_timeout, false).await;
        if out.exit_code != 0 {
            warn!(session, exit_code = out.exit_code, stderr = %out.stderr.trim(), "browser close failed");
        }
        if out.exit_code == 0 {
            // The daemon exits on its own (~100 ms after answering).
            wait_gone(pid, 1000).await;
        } else if let Some((ws, rel)) = profile.filter(|_| chromium_child(pid).is_some()) {
            // The daemon runs one command at a time and is still busy with a
            // long one. Ask Chromium itself to close over its DevTools port:
            // only a clean close writes the cookies of the last 30 s (a
            // SIGTERM'd Chromium exits without saving them).
            match tokio::time::timeout(Duration::from_secs(1), cdp_browser_close(ws, rel)).await {
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
    async fn spawn_cli(&self, call: &Call, args: &[String], timeout: Duration, launch: bool) -> RunOutput {
        let mut cmd = tokio::process::Command::new(&self.cfg.agent_browser);
        cmd.arg("--session")
            .arg(&call.session)
            .args(args)
            .current_dir(&call.cwd)
            .env_remove(TOKEN_ENV)
            .envs(call.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for k in call.remove {
            cmd.env_remove(k);
        }
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
    async fn run(&self, target: Option<&SandboxTarget>, args: Vec<String>, timeout: Duration) -> RunOutput {
        if let (Some(sh), Some(t)) = (&self.cfg.shared, target) {
            return self.run_shared(sh, t, args, timeout).await;
        }
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
        let out = self.spawn_cli(&self.single_call(&session), &args, left.max(Duration::from_millis(1)), true).await;
        debug!(ms = t.elapsed().as_millis() as u64, exit_code = out.exit_code, "agent-browser done");
        out
    }

    async fn close(&self, session: &str) -> RunOutput {
        self.close_session(session, Duration::from_secs(10)).await
    }

    /// Shared mode: whether any session's daemon runs, and Chromium under one.
    fn status(&self) -> BrowserStatus {
        let pids: Vec<i32> = match &self.cfg.shared {
            None => self.daemon_pid(&self.cfg.session).into_iter().collect(),
            Some(_) => self.live_sessions().iter().filter_map(|s| self.daemon_pid(s)).collect(),
        };
        BrowserStatus { active: !pids.is_empty(), ready: pids.iter().any(|&p| chromium_child(p).is_some()) }
    }
}

/// Removes Chromium's `Singleton*` files from the profile at `profile` in
/// `ws`. Only call when no browser of that profile's session runs.
fn remove_stale_locks(ws: &Workspace, profile: &str) {
    for name in SINGLETON_FILES {
        let rel = Path::new(profile).join(name).to_string_lossy().into_owned();
        // They are symlinks (to a host name, a socket path, a cookie):
        // the link itself goes (by descriptor), never its target.
        let found = ws.resolve(&rel, Last::NoFollow).and_then(|r| r.lstat()).is_ok_and(|st| st.is_some());
        if found {
            match ws.remove(&rel) {
                Ok(_) => debug!(path = %rel, "removed a stale Chromium lock"),
                Err(e) => warn!(path = %rel, error = %e, "cannot remove a stale Chromium lock"),
            }
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
async fn cdp_browser_close(ws: &Workspace, profile: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let port_file = Path::new(profile).join("DevToolsActivePort").to_string_lossy().into_owned();
    let text = read_small(ws, &port_file).map_err(|e| format!("DevToolsActivePort: {e}"))?;
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
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
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
        let out = ab.run(None, vec!["fill".into(), "@e1".into(), "a b".into()], Duration::from_secs(5)).await;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, format!("✓ --session|✓ sb-1|✓ fill|✓ @e1|✓ a b|1|{}|{}", cfg.profile_dir.display(), cfg.workspace.display()));
        assert_eq!(out.stderr, "--no-sandbox,--disable-gpu,--disable-dev-shm-usage,--disk-cache-dir=/tmp/gull-chromium-cache,");
    }

    #[tokio::test]
    async fn timeout_kills_the_group_and_missing_binary_is_minus_one() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "echo started; sleep 30 & sleep 30");
        let ab = browser_for(cfg);
        let out = ab.run(None, vec!["wait".into()], Duration::from_millis(500)).await;
        assert_eq!(out.exit_code, -1);
        assert_eq!(out.stderr, "Command timed out after 0.5s");
        assert_eq!(out.stdout, "started\n");
        assert!(ab.running.is_empty());

        let mut cfg = (*fake_cli(d.path(), "true")).clone();
        cfg.agent_browser = d.path().join("missing");
        let out = browser_for(Arc::new(cfg)).run(None, vec![], Duration::from_secs(1)).await;
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
        ab.run(None, vec!["get".into(), "title".into()], Duration::from_secs(5)).await;
        assert!(std::fs::symlink_metadata(&lock).is_ok());
        // Dead daemon: the next command clears them first.
        std::fs::write(cfg.socket_dir.join("sb-1.pid"), i32::MAX.to_string()).unwrap();
        assert_eq!(ab.status(), BrowserStatus::default());
        ab.run(None, vec!["open".into(), "about:blank".into()], Duration::from_secs(5)).await;
        assert!(std::fs::symlink_metadata(&lock).is_err());
        // close without a daemon does not run the CLI.
        assert_eq!(ab.close("sb-1").await, RunOutput::default());
    }

    #[tokio::test]
    async fn output_is_capped() {
        let d = tempfile::tempdir().unwrap();
        let cfg = fake_cli(d.path(), "head -c 9000000 /dev/zero | tr '\\0' x");
        let out = browser_for(cfg).run(None, vec![], Duration::from_secs(10)).await;
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout.len(), MAX_CAPTURE + TRUNCATED_MARKER.len());
        assert!(out.stdout.ends_with(TRUNCATED_MARKER));
    }

    /// Shared mode over a fake CLI that plays the daemon: its first command
    /// for a session starts a `sleep` (own process group, so signals sent
    /// to "the daemon" reach nothing else) and writes its pid file, and
    /// `close` kills it.
    fn shared_cli(dir: &Path, max: usize) -> Arc<Config> {
        let bin = dir.join("agent-browser");
        let script = r#"#!/bin/sh
pidf="$AGENT_BROWSER_SOCKET_DIR/$2.pid"
if [ "$3" = close ]; then kill "$(cat "$pidf")"; rm -f "$pidf"; echo "closed ${AGENT_BROWSER_PROFILE:-noprofile} $(pwd)"; exit 0; fi
[ -f "$pidf" ] || { setsid sleep 30 >/dev/null 2>&1 & echo $! > "$pidf"; }
printf '%s|' "$@"; echo
printf '%s\n' "$(pwd)" "$HOME" "$AGENT_BROWSER_PROFILE" "$AGENT_BROWSER_CONFIG" "$(cat "$AGENT_BROWSER_CONFIG")" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "${XDG_RUNTIME_DIR:-none}" "$AGENT_BROWSER_IDLE_TIMEOUT_MS"
echo "$AGENT_BROWSER_ARGS" | grep disk-cache
"#;
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let vars = [
            ("GULL_MODE", "shared".to_string()),
            ("GULL_AGENT_BROWSER_BIN", bin.to_string_lossy().into_owned()),
            ("BAY_WORKSPACE_PATH", dir.join("ws").to_string_lossy().into_owned()),
            ("AGENT_BROWSER_SOCKET_DIR", dir.join("sock").to_string_lossy().into_owned()),
            ("GULL_CARGOS_DIR", dir.join("cargos").to_string_lossy().into_owned()),
            ("GULL_RUN_DIR", dir.join("run").to_string_lossy().into_owned()),
            ("GULL_MAX_SESSIONS", max.to_string()),
        ];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
        cfg.prepare_dirs().unwrap();
        for c in ["c1", "c2", "c3"] {
            std::fs::create_dir_all(dir.join("cargos").join(format!("bay-cargo-{c}"))).unwrap();
        }
        Arc::new(cfg)
    }

    fn target(cfg: &Config, sandbox: &str, cargo: &str) -> SandboxTarget {
        shared::resolve_target(cfg.shared.as_ref().unwrap(), Some(sandbox), Some(cargo)).unwrap().unwrap()
    }

    /// Kills the fake daemons a test left.
    fn kill_fake_daemons(cfg: &Config) {
        for e in std::fs::read_dir(&cfg.socket_dir).unwrap().flatten() {
            if let Some(pid) = std::fs::read_to_string(e.path()).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
                kill_group(pid, libc::SIGKILL);
            }
        }
    }

    #[tokio::test]
    async fn shared_session_argv_cwd_and_environment() {
        let d = tempfile::tempdir().unwrap();
        let cfg = shared_cli(d.path(), 4);
        let ab = browser_for(cfg.clone());
        let t = target(&cfg, "sb-a", "c1");
        let out = ab.run(Some(&t), vec!["screenshot".into(), t.cargo_dir.join("a.png").to_string_lossy().into_owned()], Duration::from_secs(5)).await;
        kill_fake_daemons(&cfg);
        assert_eq!(out.exit_code, 0, "{out:?}");
        let home = d.path().join("run/homes/sb-a");
        let lines: Vec<&str> = out.stdout.lines().collect();
        // The cargo path reads as /workspace in the answer.
        assert_eq!(lines[0], "--session|sb-a|screenshot|/workspace/a.png|");
        assert_eq!(lines[1], home.display().to_string()); // working directory
        assert_eq!(lines[2], home.display().to_string());
        let profile = d.path().join("run/profiles/sb-a");
        assert_eq!(lines[3], profile.display().to_string());
        assert_eq!(lines[4], d.path().join("run/agent-browser.json").display().to_string());
        assert_eq!(lines[5], "{}");
        assert_eq!(lines[6], home.join(".config").display().to_string());
        assert_eq!(lines[7], home.join(".cache").display().to_string());
        assert_eq!(lines[8], "none");
        assert_eq!(lines[9], "600000");
        assert!(lines[10].contains(&format!("--disk-cache-dir={}", home.join(".cache/chromium").display())), "{}", lines[10]);
        // Nothing of the browser's in the cargo; its directories are private.
        assert!(!t.cargo_dir.join(".browser").exists());
        use std::os::unix::fs::PermissionsExt;
        for dir in [&profile, &home] {
            assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
        }
    }

    #[tokio::test]
    async fn shared_sessions_are_limited_and_may_share_a_cargo() {
        let d = tempfile::tempdir().unwrap();
        let cfg = shared_cli(d.path(), 2);
        let ab = browser_for(cfg.clone());
        let run = |sb: &str, cargo: &str| {
            let t = target(&cfg, sb, cargo);
            let ab = &ab;
            async move { ab.run(Some(&t), vec!["get".into(), "title".into()], Duration::from_secs(5)).await }
        };
        assert_eq!(run("a", "c1").await.exit_code, 0);
        assert!(ab.status().active);
        // Profiles are per sandbox, not per cargo: two sandboxes may name
        // one cargo, and a sandbox another cargo later.
        assert_eq!(run("b", "c1").await.exit_code, 0);
        assert_eq!(run("a", "c2").await.exit_code, 0);
        // Two live sessions: a third sandbox is refused, the live ones run.
        let out = run("c", "c3").await;
        assert_eq!(out.exit_code, 2);
        assert!(out.stderr.starts_with("Too many browser sessions"), "{}", out.stderr);
        assert!(out.stderr.contains("at most 2"), "{}", out.stderr);
        assert_eq!(run("a", "c1").await.exit_code, 0);
        // Closing one frees its slot, its home and its profile.
        let (home, profile) = (d.path().join("run/homes/a"), d.path().join("run/profiles/a"));
        assert!(home.is_dir() && profile.is_dir());
        let out = ab.close("a").await;
        // `close` runs without the launch environment, outside the cargo.
        assert_eq!(out.stdout.trim(), format!("closed noprofile {}", d.path().join("run").display()));
        assert!(!home.exists() && !profile.exists());
        assert_eq!(run("c", "c3").await.exit_code, 0);
        // Without a daemon, close runs nothing.
        assert_eq!(ab.close("zzz").await, RunOutput::default());
        kill_fake_daemons(&cfg);
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
        let err = cdp_browser_close(&ab.ws, PROFILE_REL).await.unwrap_err();
        assert!(err.contains("outside workspace"), "{err}");
        // And a new container refuses such a profile directory.
        assert!(cfg.prepare_dirs().is_err());
    }
}
