//! Shell commands: `bash -c` as the server's own (unprivileged) user.
//!
//! Shipyard Neo runs `bash -lc`. A login shell reads `/etc/profile`, whose
//! only effects here are PATH and PS1 but which forks `id` on every command
//! (≈ 9 ms of a 12 ms `true`). Ship sets PATH itself and runs a non-login
//! shell, still reading the user's own `~/.bash_profile` or `~/.profile` in the
//! workspace when one exists, so login customisations keep working.
//!
//! Every command leads its own process group (`setsid`), so a timeout or the
//! server's shutdown kills the whole tree it started, not just bash
//! (`runtimes/common/src/capture.rs`). Its working directory is resolved by
//! descriptor in the workspace and entered with `fchdir`, so it cannot be
//! swapped for a symlink between the check and the start.

use std::{
    collections::HashMap,
    io::Write,
    os::fd::{AsRawFd, OwnedFd},
    process::Stdio,
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use axum::{Json, extract::State};
use runtime_common::{
    beneath::Workspace,
    capture::{GroupGuard, ProcessGroups, exit_code, wait_captured},
    error::{ApiJson, AppError},
    limits::MAX_SHELL_COMMAND,
    text::split_command,
    token::TOKEN_ENV,
};
use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::{
    AppState,
    config::{Config, shell_quote},
};

/// PATH of a Debian login shell for an unprivileged user.
const LOGIN_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";
/// Commands up to this size go to bash as its `-c` argument, like Shipyard
/// does. Linux caps one `execve` argument at 128 KiB (`MAX_ARG_STRLEN`), so
/// longer ones are read by bash from a pipe on descriptor 3 and `eval`ed
/// ([`PIPED_SCRIPT`]): same `$0` (`bash`), no positional parameters, same
/// cwd, environment and exit status.
const ARG_COMMAND_MAX: usize = 96 * 1024;
/// Reads the command from fd 3 into `$1`, closes fd 3 (so nothing the command
/// starts inherits it), and evaluates it after dropping `$1` again.
const PIPED_SCRIPT: &str = r#"set -- "$(</dev/fd/3)"; exec 3<&-; eval "shift; $1""#;

fn default_timeout() -> Option<i64> {
    Some(30)
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShellExecRequest {
    pub command: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: Option<HashMap<String, String>>,
    /// `null` means no timeout (as in Shipyard).
    #[serde(default = "default_timeout")]
    pub timeout: Option<i64>,
    #[serde(default = "default_true")]
    pub shell: bool,
    #[serde(default)]
    pub background: bool,
}

#[derive(Debug, Serialize, Default, PartialEq)]
pub(crate) struct ShellExecResponse {
    pub success: bool,
    pub return_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub pid: Option<u32>,
    pub process_id: Option<String>,
    pub error: Option<String>,
}

impl ShellExecResponse {
    fn failed(error: impl Into<String>) -> Self {
        Self { success: false, return_code: Some(-1), error: Some(error.into()), ..Default::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BgStatus {
    Running,
    Completed,
    Failed,
}

struct BgEntry {
    process_id: String,
    pid: u32,
    command: String,
    status: Arc<StdMutex<BgStatus>>,
}

/// Registry of background commands and of running process groups.
pub(crate) struct ShellManager {
    cfg: Arc<Config>,
    ws: Arc<Workspace>,
    background: StdMutex<Vec<BgEntry>>,
    /// Process groups of all commands still running (for shutdown).
    running: ProcessGroups,
}

/// The part of a command that must reach bash through a pipe.
pub(crate) struct Piped {
    write: OwnedFd,
    script: Vec<u8>,
}

impl Piped {
    /// Feeds the command to bash (which reads it all before running it);
    /// a blocking thread, as a pipe holds only 64 KiB at a time.
    pub(crate) fn feed(self) {
        tokio::task::spawn_blocking(move || {
            let mut w = std::fs::File::from(self.write);
            // EPIPE: bash died before reading; its exit status says why.
            let _ = w.write_all(&self.script);
        });
    }
}

/// Why a command could not be set up ([`ShellManager::prepare`]).
#[derive(Debug)]
pub(crate) struct PrepareError {
    /// As an HTTP error (403/400 for the cwd, 400 for the command).
    pub error: AppError,
    /// Shipyard reports a bad cwd as the text of its HTTPException
    /// (`"403: Access denied…"`) inside a 200 reply.
    http_exception: bool,
}

impl PrepareError {
    fn start(detail: String) -> Self {
        Self { error: AppError::bad_request(detail), http_exception: false }
    }

    /// The text `/shell/exec` reports in its `error` field.
    pub(crate) fn exec_text(&self) -> String {
        if self.http_exception { self.error.to_string() } else { self.error.detail.clone() }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors on success; each is owned once.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        use std::os::fd::FromRawFd;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

impl ShellManager {
    pub(crate) fn new(cfg: Arc<Config>, ws: Arc<Workspace>) -> Self {
        Self { cfg, ws, background: StdMutex::new(Vec::new()), running: ProcessGroups::default() }
    }

    /// SIGKILLs every running command's process group (server shutdown).
    pub(crate) fn kill_all(&self) {
        self.running.kill_all();
    }

    /// The environment of every command (also of the background processes
    /// and the terminal, `processes.rs`, `terminal.rs`): what /etc/profile
    /// would set for a non-root login, without the runtime token; the
    /// profile's and the request's env may still override it.
    pub(crate) fn apply_env(&self, cmd: &mut tokio::process::Command) {
        cmd.env_remove(TOKEN_ENV)
            .env("PATH", LOGIN_PATH)
            .envs(self.cfg.child_env())
            .env("USER", "shipyard")
            .env("LOGNAME", "shipyard")
            .env("SHELL", "/bin/bash");
    }

    /// The command, started in `cwd` (a directory descriptor: the child
    /// `fchdir`s to it, so the directory checked is the directory used).
    fn build_command(&self, req: &ShellExecRequest, cwd: OwnedFd) -> Result<(tokio::process::Command, Option<Piped>), String> {
        let mut piped = None;
        let mut pipe_read: Option<OwnedFd> = None;
        let mut cmd = if req.shell {
            let env_file = self.cfg.env_file();
            let mut prefix = String::new();
            for profile in [".bash_profile", ".profile"] {
                let path = self.cfg.workspace.join(profile);
                if path.is_file() {
                    prefix = format!(". {} 2>/dev/null; ", shell_quote(&path.to_string_lossy()));
                    break;
                }
            }
            if env_file.exists() {
                prefix.push_str(&format!(". {} 2>/dev/null; ", shell_quote(&env_file.to_string_lossy())));
            }
            let mut c = tokio::process::Command::new("bash");
            c.arg("--noprofile").arg("--norc").arg("-c");
            if req.command.len() <= ARG_COMMAND_MAX {
                c.arg(format!("{prefix}{}", req.command));
            } else {
                let (r, w) = pipe().map_err(|e| format!("Failed to start command: {e}"))?;
                c.arg(format!("{prefix}{PIPED_SCRIPT}"));
                pipe_read = Some(r);
                piped = Some(Piped { write: w, script: req.command.clone().into_bytes() });
            }
            c
        } else {
            let words = split_command(&req.command)?;
            let Some((prog, args)) = words.split_first() else {
                return Err("empty command".into());
            };
            let mut c = tokio::process::Command::new(prog);
            c.args(args);
            c
        };
        self.apply_env(&mut cmd);
        if let Some(env) = &req.env {
            cmd.envs(env);
        }
        cmd.stdin(Stdio::null());
        // The closure owns the descriptors, so they stay open until spawn.
        // SAFETY: only async-signal-safe calls (fchdir, dup2, fcntl, setsid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::fchdir(cwd.as_raw_fd()) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(r) = &pipe_read {
                    let r = r.as_raw_fd();
                    // dup2 onto itself keeps O_CLOEXEC: clear it explicitly.
                    let ok = if r == 3 { libc::fcntl(3, libc::F_SETFD, 0) != -1 } else { libc::dup2(r, 3) != -1 };
                    if !ok {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok((cmd, piped))
    }

    /// Records a running command's process group until the guard is
    /// dropped, for [`ShellManager::kill_all`] (also the streamed commands,
    /// background processes and terminals of `stream.rs`, `processes.rs`
    /// and `terminal.rs`).
    pub(crate) fn track(&self, pgid: i32, kill_on_drop: bool) -> GroupGuard {
        self.running.track(pgid, kill_on_drop)
    }

    /// Resolves the request's cwd in the workspace and builds its command
    /// (stdin `/dev/null`, stdout/stderr unset, leading its own session).
    pub(crate) async fn prepare(&self, req: &ShellExecRequest) -> Result<(tokio::process::Command, Option<Piped>), PrepareError> {
        let cwd = {
            let (ws, c) = (self.ws.clone(), req.cwd.clone().unwrap_or_else(|| ".".into()));
            tokio::task::spawn_blocking(move || ws.open_existing(&c, OFlags::PATH | OFlags::DIRECTORY)).await
        };
        let cwd = match cwd {
            Ok(Ok((fd, _))) => fd,
            Ok(Err(e @ (runtime_common::beneath::PathError::OutsideWorkspace | runtime_common::beneath::PathError::Invalid(_)))) => {
                return Err(PrepareError { error: AppError::from(e), http_exception: true });
            }
            Ok(Err(e)) => return Err(PrepareError::start(format!("Failed to start command: {e}"))),
            Err(e) => return Err(PrepareError::start(format!("Failed to start command: {e}"))),
        };
        self.build_command(req, cwd).map_err(PrepareError::start)
    }

    pub(crate) async fn exec(self: Arc<Self>, req: ShellExecRequest) -> ShellExecResponse {
        let (mut cmd, piped) = match self.prepare(&req).await {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(e.exec_text()),
        };
        if req.background {
            return self.spawn_background(cmd, piped, &req.command);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned = cmd.spawn();
        // The child has its copies of the descriptors now.
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(format!("Failed to start command: {e}")),
        };
        if let Some(p) = piped {
            p.feed();
        }
        let pid = child.id();
        let pgid = pid.map(|p| p as i32).unwrap_or(0);
        // Not killed on drop: the request runs in its own task (see
        // `exec_handler`), and what a finished command left running in the
        // background is the user's.
        let _guard = self.running.track(pgid, false);
        debug!(pid, command = %req.command, "shell command started");

        let limit = req.timeout.map(|t| Duration::from_secs(t.max(0) as u64));
        let done = wait_captured(&mut child, limit).await;
        let mut stdout = done.stdout.text.trim().to_string();
        if done.stdout.truncated {
            stdout.push_str(runtime_common::limits::TRUNCATED_MARKER);
        }
        let stderr = done.stderr.with_marker();
        if done.timed_out {
            return ShellExecResponse {
                success: false,
                return_code: Some(-1),
                stdout,
                stderr,
                pid,
                process_id: None,
                error: Some("Command timed out".into()),
            };
        }
        match done.status {
            Ok(st) => {
                let code = exit_code(&st);
                ShellExecResponse { success: code == 0, return_code: Some(code), stdout, stderr, pid, process_id: None, error: None }
            }
            Err(e) => ShellExecResponse { stdout, stderr, pid, ..ShellExecResponse::failed(format!("Failed to wait for command: {e}")) },
        }
    }

    fn spawn_background(self: Arc<Self>, mut cmd: tokio::process::Command, piped: Option<Piped>, command: &str) -> ShellExecResponse {
        // Nobody reads a background command's output: a pipe would fill up
        // and block it, so it goes to /dev/null.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let spawned = cmd.spawn();
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(format!("Failed to start command: {e}")),
        };
        if let Some(p) = piped {
            p.feed();
        }
        let pid = child.id().unwrap_or(0);
        let process_id = Uuid::new_v4().simple().to_string()[..8].to_string();
        let status = Arc::new(StdMutex::new(BgStatus::Running));
        if let Ok(mut bg) = self.background.lock() {
            bg.push(BgEntry { process_id: process_id.clone(), pid, command: command.to_string(), status: status.clone() });
        }
        let guard = self.running.track(pid as i32, false);
        let pid_label = process_id.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let result = child.wait().await;
            let new = match &result {
                Ok(st) if st.success() => BgStatus::Completed,
                _ => BgStatus::Failed,
            };
            if let Ok(mut s) = status.lock() {
                *s = new;
            }
            info!(process_id = %pid_label, ?result, "background command finished");
        });
        info!(pid, %process_id, command, "background command started");
        ShellExecResponse {
            success: true,
            return_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            pid: Some(pid),
            process_id: Some(process_id),
            error: None,
        }
    }

    /// Lists background commands; finished ones are reported once, then
    /// forgotten (the registry must not grow forever).
    pub(crate) fn list(&self) -> Vec<Value> {
        let Ok(mut bg) = self.background.lock() else {
            return Vec::new();
        };
        let listed: Vec<(Value, bool)> = bg
            .iter()
            .map(|e| {
                let st = e.status.lock().map(|s| *s).unwrap_or(BgStatus::Failed);
                let label = match st {
                    BgStatus::Running => "running",
                    BgStatus::Completed => "completed",
                    BgStatus::Failed => "failed",
                };
                (json!({"process_id": e.process_id, "pid": e.pid, "command": e.command, "status": label}), st == BgStatus::Running)
            })
            .collect();
        let keep: Vec<bool> = listed.iter().map(|(_, r)| *r).collect();
        let mut i = 0;
        bg.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
        listed.into_iter().map(|(v, _)| v).collect()
    }
}

/// `POST /shell/exec`. Runs in its own task so a disconnecting client does
/// not leave a half-handled command behind (the timeout still applies).
pub(crate) async fn exec_handler(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ShellExecRequest>,
) -> Result<Json<ShellExecResponse>, AppError> {
    if req.command.len() > MAX_SHELL_COMMAND {
        return Err(AppError::too_large(format!(
            "Command is too large ({} bytes > {MAX_SHELL_COMMAND} bytes); write it to a file and run that",
            req.command.len()
        )));
    }
    match tokio::spawn(state.shell.clone().exec(req)).await {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            warn!(error = %e, "shell task failed");
            Err(AppError::internal(format!("Failed to execute command: {e}")))
        }
    }
}

pub(crate) async fn processes_handler(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "processes": state.shell.list() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_common::limits::{MAX_CAPTURE, TRUNCATED_MARKER};

    fn manager() -> (tempfile::TempDir, Arc<ShellManager>) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::from_lookup(|k| match k {
            "SHIP_WORKSPACE" => Some(dir.path().to_string_lossy().into_owned()),
            "BAY_PROFILE_ENV" => Some("PROFILE_VAR=from-profile".into()),
            _ => None,
        });
        cfg.prepare_workspace().unwrap();
        let ws = Arc::new(Workspace::open(&cfg.workspace).unwrap());
        crate::config::write_env_file(&cfg, &ws).unwrap();
        (dir, Arc::new(ShellManager::new(Arc::new(cfg), ws)))
    }

    fn req(command: &str) -> ShellExecRequest {
        ShellExecRequest { command: command.into(), cwd: None, env: None, timeout: Some(10), shell: true, background: false }
    }

    #[tokio::test]
    async fn runs_commands_with_env_and_exit_codes() {
        let (_d, m) = manager();
        let r = m.clone().exec(req("echo \"  $PROFILE_VAR  \"; echo err >&2")).await;
        assert!(r.success);
        assert_eq!(r.return_code, Some(0));
        assert_eq!(r.stdout, "from-profile");
        assert_eq!(r.stderr, "err\n");
        let r = m.clone().exec(req("exit 3")).await;
        assert!(!r.success);
        assert_eq!(r.return_code, Some(3));
        let mut q = req("echo $X");
        q.env = Some(HashMap::from([("X".to_string(), "y".to_string())]));
        assert_eq!(m.clone().exec(q).await.stdout, "y");
        let mut q = req("pwd");
        q.cwd = Some("../".into());
        let r = m.clone().exec(q).await;
        assert_eq!(r.error.as_deref(), Some("403: Access denied: path outside workspace"));
    }

    #[tokio::test]
    async fn cwd_is_resolved_in_the_workspace() {
        let (d, m) = manager();
        let canon = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(canon.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", canon.join("alias")).unwrap();
        std::os::unix::fs::symlink("/tmp", canon.join("out")).unwrap();
        let mut q = req("pwd -P");
        q.cwd = Some("alias/sub".into());
        assert_eq!(m.clone().exec(q).await.stdout, canon.join("real/sub").to_string_lossy());
        let mut q = req("pwd -P");
        q.cwd = Some("out".into());
        assert_eq!(m.clone().exec(q).await.error.as_deref(), Some("403: Access denied: path outside workspace"));
        let mut q = req("pwd");
        q.cwd = Some("missing".into());
        let r = m.clone().exec(q).await;
        assert!(!r.success);
        assert!(r.error.unwrap().starts_with("Failed to start command"));
        // Default: the workspace root; shell=false runs there too.
        let mut q = req("pwd -P");
        q.shell = false;
        q.command = "/bin/pwd -P".into();
        assert_eq!(m.clone().exec(q).await.stdout, canon.to_string_lossy());
    }

    /// Commands longer than one execve argument may be (128 KiB) run the
    /// same way as short ones: same `$0`, cwd, environment, exit status.
    #[tokio::test]
    async fn long_commands_run_like_short_ones() {
        let (d, m) = manager();
        let canon = d.path().canonicalize().unwrap();
        std::fs::create_dir(canon.join("sub")).unwrap();
        let body = "echo \"$0|$#|$(pwd -P)|$PROFILE_VAR|$X\"; echo tail >&2; exit 7";
        for pad in [0, 200 * 1024, MAX_SHELL_COMMAND - body.len() - 2] {
            let command = format!("#{}\n{body}", "x".repeat(pad.saturating_sub(2)));
            assert!(command.len() <= MAX_SHELL_COMMAND);
            let mut q = req(&command);
            q.cwd = Some("sub".into());
            q.env = Some(HashMap::from([("X".to_string(), "y".to_string())]));
            let r = m.clone().exec(q).await;
            assert_eq!(r.stdout, format!("bash|0|{}|from-profile|y", canon.join("sub").display()), "command of {} bytes", command.len());
            assert_eq!((r.stderr.as_str(), r.return_code), ("tail\n", Some(7)));
        }
        // A 1 MiB command of real work, and in the background.
        let big = format!("n=0\n{}echo $n", "n=$((n+1))\n".repeat(90_000));
        assert!(big.len() > 900 * 1024 && big.len() <= MAX_SHELL_COMMAND);
        assert_eq!(m.clone().exec(req(&big)).await.stdout, "90000");
        let mut q = req(&format!("{big} > bg.txt"));
        q.background = true;
        assert!(m.clone().exec(q).await.success);
        let mut q = req("for i in $(seq 100); do [ -s bg.txt ] && break; sleep 0.1; done; cat bg.txt");
        q.timeout = Some(30);
        assert_eq!(m.clone().exec(q).await.stdout, "90000");
        // The command's own processes do not inherit the pipe: they see the
        // same descriptors as those of a short command (the test harness may
        // leak some of its own into both).
        let ls = "ls /proc/self/fd | sort -n | tr '\\n' ' '";
        let short = m.clone().exec(req(ls)).await.stdout;
        let long = format!("#{}\n{ls}", "x".repeat(200 * 1024));
        assert_eq!(m.clone().exec(req(&long)).await.stdout, short);
    }

    #[tokio::test]
    async fn the_runtime_token_is_not_inherited() {
        // The server removes it from its own environment at startup; each
        // command removes it again in case it came back. Simulated here by
        // the request's own env (which a client may set deliberately), and
        // checked on what the builder sets up.
        let (_d, m) = manager();
        let cwd = m.ws.root_fd().try_clone_to_owned().unwrap();
        let (cmd, _) = m.build_command(&req("true"), cwd).unwrap();
        let removed = cmd.as_std().get_envs().any(|(k, v)| k == TOKEN_ENV && v.is_none());
        assert!(removed);
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let (_d, m) = manager();
        let mut q = req("echo started; sleep 30 & sleep 30");
        q.timeout = Some(1);
        let r = m.clone().exec(q).await;
        assert_eq!(r.return_code, Some(-1));
        assert_eq!(r.error.as_deref(), Some("Command timed out"));
        assert_eq!(r.stdout, "started");
        assert!(m.running.is_empty());
    }

    #[tokio::test]
    async fn output_is_capped() {
        let (_d, m) = manager();
        let r = m.clone().exec(req("head -c 20000000 /dev/zero | tr '\\0' x; head -c 9000000 /dev/zero >&2")).await;
        assert!(r.success);
        assert_eq!(r.stdout.len(), MAX_CAPTURE + TRUNCATED_MARKER.len());
        assert!(r.stdout.ends_with("[output truncated]"));
        assert_eq!(r.stderr.len(), MAX_CAPTURE + TRUNCATED_MARKER.len());
    }

    #[tokio::test]
    async fn background_registry() {
        let (_d, m) = manager();
        let mut q = req("sleep 0.2");
        q.background = true;
        let r = m.clone().exec(q).await;
        assert!(r.success);
        assert_eq!(r.process_id.as_ref().map(|p| p.len()), Some(8));
        let l = m.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["status"], "running");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let l = m.list();
        assert_eq!(l[0]["status"], "completed");
        assert!(m.list().is_empty());
    }
}
