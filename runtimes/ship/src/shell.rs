//! Shell commands: `bash -c` as the server's own (unprivileged) user.
//!
//! Shipyard Neo runs `bash -lc`. A login shell reads `/etc/profile`, whose
//! only effects here are PATH and PS1 but which forks `id` on every command
//! (≈ 9 ms of a 12 ms `true`). Ship sets PATH itself and runs a non-login
//! shell, still reading the user's own `~/.bash_profile` or `~/.profile` in the
//! workspace when one exists, so login customisations keep working.
//!
//! Every command leads its own process group (`setsid`), so a timeout or the
//! server's shutdown kills the whole tree it started, not just bash.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::JoinHandle,
};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::{
    AppState,
    config::{Config, shell_quote},
    error::{ApiJson, AppError},
    paths::resolve_path,
};

/// Cap per captured stream; the rest is drained and dropped.
pub const MAX_CAPTURE: usize = 8 * 1024 * 1024;
pub const TRUNCATED_MARKER: &str = "\n[output truncated]";
/// After the command exits, how long to wait for its pipes to close.
/// A daemon started with `&` may keep them open forever; its output is then
/// drained in the background and the response does not wait for it.
/// PATH of a Debian login shell for an unprivileged user.
const LOGIN_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";
const PIPE_GRACE: Duration = Duration::from_millis(500);

fn default_timeout() -> Option<i64> {
    Some(30)
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct ShellExecRequest {
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
pub struct ShellExecResponse {
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
pub struct ShellManager {
    cfg: Arc<Config>,
    background: StdMutex<Vec<BgEntry>>,
    /// Process groups of all commands still running (for shutdown).
    running: Arc<StdMutex<HashSet<i32>>>,
}

/// Kills a process group.
fn kill_group(pgid: i32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: plain syscall on a process group we created.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Removes a pgid from the running set when the command is done.
struct RunningGuard {
    set: Arc<StdMutex<HashSet<i32>>>,
    pgid: i32,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.pgid);
        }
    }
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
    /// Set once the response is built: keep draining, stop storing.
    detached: bool,
}

/// Reads a pipe to EOF, storing at most [`MAX_CAPTURE`] bytes.
fn spawn_pump<R: AsyncRead + Unpin + Send + 'static>(mut r: R, cap: Arc<StdMutex<Capture>>) -> JoinHandle<()> {
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

fn take_capture(cap: &Arc<StdMutex<Capture>>) -> (String, bool) {
    match cap.lock() {
        Ok(mut c) => {
            c.detached = true;
            let buf = std::mem::take(&mut c.buf);
            (String::from_utf8_lossy(&buf).into_owned(), c.truncated)
        }
        Err(_) => (String::new(), false),
    }
}

/// Minimal POSIX word splitting for `shell: false` (Python's `shlex.split`).
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("No closing quotation".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err("No escaped character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

impl ShellManager {
    pub fn new(cfg: Arc<Config>) -> Self {
        Self { cfg, background: StdMutex::new(Vec::new()), running: Arc::new(StdMutex::new(HashSet::new())) }
    }

    /// SIGKILLs every running command's process group (server shutdown).
    pub fn kill_all(&self) {
        if let Ok(set) = self.running.lock() {
            for pgid in set.iter() {
                kill_group(*pgid, libc::SIGKILL);
            }
        }
    }

    fn build_command(&self, req: &ShellExecRequest, cwd: PathBuf) -> Result<tokio::process::Command, String> {
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
            c.arg("--noprofile").arg("--norc").arg("-c").arg(format!("{prefix}{}", req.command));
            c
        } else {
            let words = split_words(&req.command)?;
            let Some((prog, args)) = words.split_first() else {
                return Err("empty command".into());
            };
            let mut c = tokio::process::Command::new(prog);
            c.args(args);
            c
        };
        // What /etc/profile would set for a non-root login; the profile's and
        // the request's env may still override it.
        cmd.current_dir(cwd)
            .env("PATH", LOGIN_PATH)
            .envs(self.cfg.child_env())
            .env("USER", "shipyard")
            .env("LOGNAME", "shipyard")
            .env("SHELL", "/bin/bash");
        if let Some(env) = &req.env {
            cmd.envs(env);
        }
        cmd.stdin(Stdio::null());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    pub async fn exec(self: Arc<Self>, req: ShellExecRequest) -> ShellExecResponse {
        let cwd = match &req.cwd {
            None => self.cfg.workspace_canon.clone(),
            Some(c) => match resolve_path(&self.cfg.workspace, &self.cfg.workspace_canon, c) {
                Ok(p) => p,
                // Shipyard reports the HTTPException text inside a 200 reply.
                Err(e) => return ShellExecResponse::failed(AppError::from(e).to_string()),
            },
        };
        let mut cmd = match self.build_command(&req, cwd) {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(e),
        };
        if req.background {
            return self.spawn_background(cmd, &req.command);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(format!("Failed to start command: {e}")),
        };
        let pid = child.id();
        let pgid = pid.map(|p| p as i32).unwrap_or(0);
        if let Ok(mut s) = self.running.lock() {
            s.insert(pgid);
        }
        let _guard = RunningGuard { set: self.running.clone(), pgid };
        let out = Arc::new(StdMutex::new(Capture::default()));
        let err = Arc::new(StdMutex::new(Capture::default()));
        let mut pumps = Vec::new();
        if let Some(o) = child.stdout.take() {
            pumps.push(spawn_pump(o, out.clone()));
        }
        if let Some(e) = child.stderr.take() {
            pumps.push(spawn_pump(e, err.clone()));
        }
        debug!(pid, command = %req.command, "shell command started");

        let limit = req.timeout.map(|t| Duration::from_secs(t.max(0) as u64));
        let waited = match limit {
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
        // Let the pipes reach EOF (they usually already have).
        let _ = tokio::time::timeout(PIPE_GRACE, futures::future::join_all(pumps)).await;
        let (mut stdout, out_trunc) = take_capture(&out);
        let (mut stderr, err_trunc) = take_capture(&err);
        stdout = stdout.trim().to_string();
        if out_trunc {
            stdout.push_str(TRUNCATED_MARKER);
        }
        if err_trunc {
            stderr.push_str(TRUNCATED_MARKER);
        }
        if timed_out {
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
        match status {
            Ok(st) => {
                // Like Python's returncode: -N when killed by signal N.
                let code = st.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(&st).map(|s| -s)).unwrap_or(-1);
                ShellExecResponse { success: code == 0, return_code: Some(code), stdout, stderr, pid, process_id: None, error: None }
            }
            Err(e) => ShellExecResponse { stdout, stderr, pid, ..ShellExecResponse::failed(format!("Failed to wait for command: {e}")) },
        }
    }

    fn spawn_background(self: Arc<Self>, mut cmd: tokio::process::Command, command: &str) -> ShellExecResponse {
        // Nobody reads a background command's output: a pipe would fill up
        // and block it, so it goes to /dev/null.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return ShellExecResponse::failed(format!("Failed to start command: {e}")),
        };
        let pid = child.id().unwrap_or(0);
        let process_id = Uuid::new_v4().simple().to_string()[..8].to_string();
        let status = Arc::new(StdMutex::new(BgStatus::Running));
        if let Ok(mut bg) = self.background.lock() {
            bg.push(BgEntry { process_id: process_id.clone(), pid, command: command.to_string(), status: status.clone() });
        }
        let pgid = pid as i32;
        if let Ok(mut s) = self.running.lock() {
            s.insert(pgid);
        }
        let running = self.running.clone();
        let pid_label = process_id.clone();
        tokio::spawn(async move {
            let _guard = RunningGuard { set: running, pgid };
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
    pub fn list(&self) -> Vec<Value> {
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
pub async fn exec_handler(State(state): State<AppState>, ApiJson(req): ApiJson<ShellExecRequest>) -> Result<Json<ShellExecResponse>, AppError> {
    match tokio::spawn(state.shell.clone().exec(req)).await {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            warn!(error = %e, "shell task failed");
            Err(AppError::internal(format!("Failed to execute command: {e}")))
        }
    }
}

pub async fn processes_handler(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "processes": state.shell.list() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_splitting() {
        assert_eq!(split_words("ls -la  /tmp").unwrap(), vec!["ls", "-la", "/tmp"]);
        assert_eq!(split_words(r#"echo 'a b' "c \"d\"" e\ f"#).unwrap(), vec!["echo", "a b", "c \"d\"", "e f"]);
        assert_eq!(split_words("x ''").unwrap(), vec!["x", ""]);
        assert!(split_words("echo 'oops").is_err());
        assert!(split_words("").unwrap().is_empty());
    }

    fn manager() -> (tempfile::TempDir, Arc<ShellManager>) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::from_lookup(|k| match k {
            "SHIP_WORKSPACE" => Some(dir.path().to_string_lossy().into_owned()),
            "BAY_PROFILE_ENV" => Some("PROFILE_VAR=from-profile".into()),
            _ => None,
        });
        cfg.prepare_workspace().unwrap();
        crate::config::write_env_file(&cfg).unwrap();
        (dir, Arc::new(ShellManager::new(Arc::new(cfg))))
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
    async fn timeout_kills_the_group() {
        let (_d, m) = manager();
        let mut q = req("echo started; sleep 30 & sleep 30");
        q.timeout = Some(1);
        let t = std::time::Instant::now();
        let r = m.clone().exec(q).await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(r.return_code, Some(-1));
        assert_eq!(r.error.as_deref(), Some("Command timed out"));
        assert_eq!(r.stdout, "started");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let (_d, m) = manager();
        let r = m.clone().exec(req("head -c 20000000 /dev/zero | tr '\\0' x")).await;
        assert!(r.success);
        assert!(r.stdout.len() <= MAX_CAPTURE + TRUNCATED_MARKER.len());
        assert!(r.stdout.ends_with("[output truncated]"));
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
