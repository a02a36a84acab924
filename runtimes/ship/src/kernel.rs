//! The Python kernel: a real `ipykernel` process driven over ZeroMQ.
//!
//! Design notes (measured facts are in /work/shared/reference/build-notes.md):
//! * IPC transport (unix sockets in a private 0700 temp dir): TCP port
//!   reservation raced with the kernel binding its ports.
//! * The kernel leads its own process group (`setsid`), so an interrupt is a
//!   SIGINT to the group (≈10 ms) and a kill takes its subprocesses along.
//! * `PR_SET_PDEATHSIG(SIGKILL)` so a server that dies hard never leaks a kernel.
//! * Raw frames are read from the sockets and decoded here rather than with
//!   `Connection::read`: a message whose content jupyter-protocol cannot
//!   parse (ipykernel's interrupt reply, for one) must not hide its header,
//!   and the end of an execution must be detectable even then.
//! * One reader task per socket feeds an mpsc channel, so waiting on shell
//!   and IOPub together is cancel-safe.
//! * Executions are serialized by the `slot` mutex (one kernel, one cell at a
//!   time, like a notebook).

use std::{
    collections::VecDeque,
    os::unix::fs::DirBuilderExt,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex as StdMutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Json, extract::State, http::StatusCode};
use jupyter_protocol::{
    ConnectionInfo, ExecuteRequest, ExecutionState, JupyterMessage, JupyterMessageContent, KernelInfoRequest, Media, MediaType, Transport,
};
use jupyter_zmq_client::{
    Connection, DealerSendConnection, RawMessage, create_client_iopub_connection, create_client_shell_connection_with_identity,
    peer_identity_for_session,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{Mutex, mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};
use uuid::Uuid;
use zeromq::SocketRecv;

use runtime_common::{
    error::{ApiJson, AppError},
    limits::{MAX_PYTHON_CODE, MAX_PYTHON_IMAGES, MAX_PYTHON_TEXT, TRUNCATED_MARKER},
    text::strip_ansi,
    token::TOKEN_ENV,
};

use crate::AppState;

/// How long a kernel may take from spawn to answering kernel_info.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an interrupted execution gets to unwind before the kernel is
/// declared stuck and replaced.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// Backpressure bound of the reader channels.
const CHANNEL_DEPTH: usize = 1024;

/// Everything needed to spawn a kernel.
#[derive(Debug, Clone)]
pub struct KernelSettings {
    pub python: PathBuf,
    /// Working directory (canonical workspace).
    pub cwd: PathBuf,
    /// Reported by `/ipython/kernel/status`.
    pub workspace_display: String,
    /// Added on top of the inherited environment.
    pub env: Vec<(String, String)>,
}

/// A kernel process' identity, shared with the status endpoint and the
/// shutdown path (which must be able to kill it without the exec lock).
struct Life {
    pgid: i32,
    exited: AtomicBool,
    dir: PathBuf,
}

impl Life {
    fn signal(&self, sig: libc::c_int) {
        if self.pgid > 1 {
            // SAFETY: plain syscall; a negative pid addresses the process group.
            unsafe {
                libc::kill(-self.pgid, sig);
            }
        }
    }
    fn is_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
enum Phase {
    NotStarted,
    Starting,
    Running(Arc<Life>),
    Failed,
}

/// One decoded kernel message (only what Ship needs).
#[derive(Debug)]
struct KMsg {
    msg_type: String,
    parent_id: Option<String>,
    content: Value,
}

/// A connected, ready kernel.
struct Kernel {
    life: Arc<Life>,
    exit_rx: watch::Receiver<bool>,
    shell: DealerSendConnection,
    shell_rx: mpsc::Receiver<KMsg>,
    iopub_rx: mpsc::Receiver<KMsg>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.life.signal(libc::SIGKILL);
        for r in &self.readers {
            r.abort();
        }
        let _ = std::fs::remove_dir_all(&self.life.dir);
    }
}

impl Kernel {
    fn is_dead(&self) -> bool {
        self.life.is_exited()
    }

    /// Drops messages left over from earlier (abandoned) requests.
    fn drain(&mut self) {
        while self.shell_rx.try_recv().is_ok() {}
        while self.iopub_rx.try_recv().is_ok() {}
    }

    /// Feeds messages belonging to request `id` into `acc` until the
    /// execution is complete, the deadline passes, or the kernel dies.
    async fn collect(&mut self, id: &str, acc: &mut Accumulator, deadline: Instant) -> Outcome {
        loop {
            if acc.complete() {
                return Outcome::Done;
            }
            // Checked explicitly: under an output flood the channel branches
            // are always ready and could starve the timer branch.
            if Instant::now() >= deadline {
                return Outcome::TimedOut;
            }
            if self.is_dead() {
                // Keep whatever the kernel managed to send before dying.
                while let Ok(m) = self.iopub_rx.try_recv() {
                    acc.feed(id, m);
                }
                while let Ok(m) = self.shell_rx.try_recv() {
                    acc.feed(id, m);
                }
                return if acc.complete() { Outcome::Done } else { Outcome::Died };
            }
            tokio::select! {
                m = self.iopub_rx.recv() => match m {
                    Some(m) => acc.feed(id, m),
                    None => return Outcome::Died,
                },
                m = self.shell_rx.recv() => match m {
                    Some(m) => acc.feed(id, m),
                    None => return Outcome::Died,
                },
                _ = wait_exit(&mut self.exit_rx) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

async fn wait_exit(rx: &mut watch::Receiver<bool>) {
    // The Ref guard is consumed inside the closure, never held across await.
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    TimedOut,
    Died,
}

/// Response of `POST /ipython/exec` (Shipyard's ExecuteCodeResponse).
#[derive(Debug, Serialize)]
pub struct ExecResponse {
    pub success: bool,
    pub execution_count: Option<i64>,
    pub output: ExecOutput,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct ExecOutput {
    pub text: String,
    pub images: Vec<Value>,
}

impl ExecResponse {
    fn failure(error: impl Into<String>) -> Self {
        Self { success: false, execution_count: None, output: ExecOutput::default(), error: Some(error.into()) }
    }
}

/// Assembles the result of one execution from its messages, with
/// Shipyard's rules: text is stream + execute_result text/plain + the
/// text/plain of displays that carry no image, in arrival order, trimmed;
/// images are every image/png; error is the joined traceback.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    text: String,
    text_truncated: bool,
    images: Vec<String>,
    image_bytes: usize,
    error: Option<String>,
    execution_count: Option<i64>,
    reply_status: Option<String>,
    reply_error: Option<String>,
    got_reply: bool,
    got_idle: bool,
}

impl Accumulator {
    fn complete(&self) -> bool {
        self.got_reply && self.got_idle
    }

    fn push_text(&mut self, s: &str) {
        if self.text_truncated {
            return;
        }
        let room = MAX_PYTHON_TEXT.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
            self.text_truncated = true;
        }
    }

    fn push_image(&mut self, b64: &str) {
        // ipykernel's base64 may end in a newline; strict decoders choke on it.
        let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if self.image_bytes + clean.len() > MAX_PYTHON_IMAGES {
            self.text_truncated = true;
            return;
        }
        self.image_bytes += clean.len();
        self.images.push(clean);
    }

    fn on_media(&mut self, data: &Media, is_result: bool) {
        let mut has_image = false;
        for m in &data.content {
            if let MediaType::Png(b64) = m {
                has_image = true;
                self.push_image(b64);
            }
        }
        // A figure's display carries `<Figure size …>` as text/plain next
        // to the PNG; only execute_result keeps its text alongside images.
        if is_result || !has_image {
            for m in &data.content {
                if let MediaType::Plain(t) = m {
                    self.push_text(t);
                }
            }
        }
    }

    /// Handles one message; messages of other requests are ignored.
    fn feed(&mut self, id: &str, m: KMsg) {
        if m.parent_id.as_deref() != Some(id) {
            return;
        }
        if m.msg_type == "execute_reply" {
            // Read from the raw JSON so a reply jupyter-protocol cannot
            // parse still ends the execution.
            self.got_reply = true;
            let c = &m.content;
            self.reply_status = c.get("status").and_then(Value::as_str).map(str::to_owned);
            if self.execution_count.is_none() {
                self.execution_count = c.get("execution_count").and_then(Value::as_i64);
            }
            if self.reply_status.as_deref() == Some("error") {
                self.reply_error = Some(format_error(
                    c.get("ename").and_then(Value::as_str).unwrap_or(""),
                    c.get("evalue").and_then(Value::as_str).unwrap_or(""),
                    c.get("traceback")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default(),
                ));
            }
            return;
        }
        match JupyterMessageContent::from_type_and_content(&m.msg_type, m.content) {
            Ok(JupyterMessageContent::Status(s)) => {
                if s.execution_state == ExecutionState::Idle {
                    self.got_idle = true;
                }
            }
            Ok(JupyterMessageContent::ExecuteInput(i)) => {
                self.execution_count = Some(i.execution_count.0 as i64);
            }
            Ok(JupyterMessageContent::StreamContent(s)) => self.push_text(&s.text),
            Ok(JupyterMessageContent::ExecuteResult(r)) => self.on_media(&r.data, true),
            Ok(JupyterMessageContent::DisplayData(d)) => self.on_media(&d.data, false),
            Ok(JupyterMessageContent::ErrorOutput(e)) => {
                self.error = Some(format_error(&e.ename, &e.evalue, e.traceback));
            }
            Ok(_) => {}
            Err(e) => debug!(msg_type = %m.msg_type, error = %e, "unparsed kernel message ignored"),
        }
    }

    /// Final `(text, images)`.
    fn take_output(&mut self) -> ExecOutput {
        let mut text = self.text.trim().to_string();
        if self.text_truncated {
            text.push_str(TRUNCATED_MARKER);
        }
        ExecOutput { text, images: self.images.drain(..).map(|b64| json!({ "image/png": b64 })).collect() }
    }

    /// `(success, error)` from what was collected.
    fn verdict(&self) -> (bool, Option<String>) {
        let error = self.error.clone().or_else(|| match self.reply_status.as_deref() {
            Some("error") => self.reply_error.clone(),
            Some("aborted") => Some("Execution aborted".to_string()),
            _ => None,
        });
        let ok = self.reply_status.as_deref() == Some("ok") && error.is_none();
        (ok, error)
    }
}

fn format_error(ename: &str, evalue: &str, traceback: Vec<String>) -> String {
    let text = if traceback.is_empty() { format!("{ename}: {evalue}") } else { traceback.join("\n") };
    strip_ansi(&text)
}

/// Owns the (single) kernel.
pub struct KernelManager {
    settings: KernelSettings,
    slot: Mutex<Option<Kernel>>,
    phase: StdMutex<Phase>,
    /// The most recently spawned process, even before it is ready, so that
    /// restart/shutdown can kill it without waiting for the exec lock.
    current: StdMutex<Option<Arc<Life>>>,
}

impl KernelManager {
    pub fn new(settings: KernelSettings) -> Self {
        Self { settings, slot: Mutex::new(None), phase: StdMutex::new(Phase::NotStarted), current: StdMutex::new(None) }
    }

    fn set_phase(&self, p: Phase) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p;
        }
    }

    fn current_life(&self) -> Option<Arc<Life>> {
        self.current.lock().ok().and_then(|g| g.clone())
    }

    /// `(status, has_kernel)` for the status endpoint; never blocks on a
    /// running execution.
    pub fn status(&self) -> (&'static str, bool) {
        let phase = self.phase.lock().map(|g| g.clone()).unwrap_or(Phase::Failed);
        match phase {
            Phase::NotStarted => ("not_started", false),
            Phase::Starting => ("starting", true),
            Phase::Running(life) if life.is_exited() => ("dead", true),
            Phase::Running(_) => ("alive", true),
            Phase::Failed => ("dead", false),
        }
    }

    /// Starts the kernel unless a live one exists (the pre-warm, and the
    /// replacement after a kernel had to be killed).
    pub async fn ensure_started(self: Arc<Self>) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|k| !k.is_dead()) {
            return;
        }
        if let Err(e) = self.start_locked(&mut slot).await {
            warn!(error = %e, "kernel start failed");
        }
    }

    async fn start_locked(&self, slot: &mut Option<Kernel>) -> Result<(), String> {
        *slot = None;
        self.set_phase(Phase::Starting);
        match self.launch().await {
            Ok(k) => {
                self.set_phase(Phase::Running(k.life.clone()));
                *slot = Some(k);
                Ok(())
            }
            Err(e) => {
                self.set_phase(Phase::Failed);
                Err(e)
            }
        }
    }

    /// Kills the current kernel right away (unblocking a running exec),
    /// then starts a new one.
    pub async fn restart(&self) -> Result<(), String> {
        if let Some(life) = self.current_life() {
            life.signal(libc::SIGKILL);
        }
        let mut slot = self.slot.lock().await;
        self.start_locked(&mut slot).await
    }

    /// Stops the kernel; `false` when there was none.
    pub async fn shutdown(&self) -> bool {
        let life = self.current.lock().ok().and_then(|mut g| g.take());
        if let Some(l) = &life {
            l.signal(libc::SIGKILL);
        }
        let mut slot = self.slot.lock().await;
        let existed = slot.take().is_some() || life.is_some();
        self.set_phase(Phase::NotStarted);
        existed
    }

    /// Synchronous last-resort cleanup at server exit.
    pub fn kill_now(&self) {
        if let Some(life) = self.current_life() {
            life.signal(libc::SIGKILL);
            let _ = std::fs::remove_dir_all(&life.dir);
        }
    }

    /// Runs one cell. Never fails at the HTTP level: every problem is
    /// reported in `error` with `success: false`.
    pub async fn execute(self: Arc<Self>, code: String, timeout_secs: u64, silent: bool) -> ExecResponse {
        let mut slot = self.slot.lock().await;
        let mut restarted = false;
        if slot.as_ref().is_none_or(|k| k.is_dead()) {
            restarted = slot.is_some();
            if restarted {
                warn!("kernel process had exited; restarting it");
            }
            if let Err(e) = self.start_locked(&mut slot).await {
                return ExecResponse::failure(format!("Failed to start Python kernel: {e}"));
            }
        }
        let Some(kernel) = slot.as_mut() else {
            return ExecResponse::failure("Python kernel unavailable");
        };
        kernel.drain();

        let request = JupyterMessage::new(
            ExecuteRequest { code, silent, store_history: !silent, user_expressions: None, allow_stdin: false, stop_on_error: true },
            None,
        );
        let id = request.header.msg_id.clone();
        if let Err(e) = kernel.shell.send(request).await {
            *slot = None;
            return ExecResponse::failure(format!("Failed to send code to the kernel: {e}"));
        }

        let started = Instant::now();
        let mut acc = Accumulator::default();
        let deadline = started + Duration::from_secs(timeout_secs);
        let mut error_override = None;
        match kernel.collect(&id, &mut acc, deadline).await {
            Outcome::Done => {}
            Outcome::TimedOut => {
                let t = Instant::now();
                kernel.life.signal(libc::SIGINT);
                let after = kernel.collect(&id, &mut acc, t + INTERRUPT_GRACE).await;
                let mut msg = format!("Code execution timed out after {timeout_secs} seconds");
                if after == Outcome::Done {
                    info!(interrupt_ms = t.elapsed().as_millis() as u64, "execution interrupted after timeout");
                } else {
                    warn!("kernel did not respond to the interrupt; replacing it");
                    msg.push_str(" (the kernel did not respond to the interrupt and was restarted; its state was lost)");
                    *slot = None;
                    tokio::spawn(self.clone().ensure_started());
                }
                error_override = Some(msg);
            }
            Outcome::Died => {
                error_override = Some("Kernel died during execution; it will be restarted on the next call and its state was lost".to_string());
            }
        }
        debug!(ms = started.elapsed().as_millis() as u64, "execution finished");

        let (ok, error) = acc.verdict();
        let mut error = error_override.or(error);
        let success = ok && error.is_none();
        if restarted && !success {
            let e = error.get_or_insert_with(String::new);
            e.push_str(
                "\n[note: the Python kernel had died and was restarted before this call; \
                 variables from earlier calls are gone]",
            );
        }
        ExecResponse { success, execution_count: acc.execution_count, output: acc.take_output(), error }
    }

    /// Spawns a kernel process and waits until it answers.
    async fn launch(&self) -> Result<Kernel, String> {
        let started = Instant::now();
        let s = &self.settings;
        let dir = std::env::temp_dir().join(format!("ship-kernel-{}", Uuid::new_v4().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on the guard removes the dir and kills the process
        // group on every early return.
        let mut guard = LaunchGuard { dir: Some(dir.clone()), life: None };

        let info = ConnectionInfo {
            ip: dir.join("k").to_string_lossy().into_owned(),
            transport: Transport::IPC,
            shell_port: 1,
            iopub_port: 2,
            stdin_port: 3,
            control_port: 4,
            hb_port: 5,
            key: Uuid::new_v4().simple().to_string(),
            signature_scheme: "hmac-sha256".into(),
            kernel_name: Some("python3".into()),
        };
        let conn_file = dir.join("connection.json");
        let conn_json = serde_json::to_vec(&info).map_err(|e| e.to_string())?;
        std::fs::write(&conn_file, conn_json).map_err(|e| format!("cannot write connection file: {e}"))?;

        let mut cmd = tokio::process::Command::new(&s.python);
        cmd.arg("-m")
            .arg("ipykernel_launcher")
            .arg("-f")
            .arg(&conn_file)
            .arg("--InteractiveShell.colors=NoColor")
            // No history sqlite (and no lock contention on it) in the workspace.
            .arg("--HistoryManager.hist_file=:memory:")
            .current_dir(&s.cwd)
            .env_remove(TOKEN_ENV)
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("MPLBACKEND", "module://matplotlib_inline.backend_inline")
            // IPython's profile dir is kernel state, not user data.
            .env("IPYTHONDIR", std::env::temp_dir().join("ship-ipython"))
            // debugpy (pulled in by ipykernel) warns about frozen modules at
            // every start otherwise.
            .env("PYDEVD_DISABLE_FILE_VALIDATION", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let server_pid = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        // PDEATHSIG fires when the *thread* that forked exits; this runs on a
        // tokio worker thread, which lives as long as the runtime.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                if libc::getppid() != server_pid {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", s.python.display()))?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let life = Arc::new(Life { pgid: pid, exited: AtomicBool::new(false), dir: dir.clone() });
        guard.life = Some(life.clone());
        if let Ok(mut g) = self.current.lock() {
            *g = Some(life.clone());
        }

        // Kernel stdout/stderr: logged at debug; the stderr tail explains a
        // failed start ("No module named ipykernel_launcher").
        let tail = Arc::new(StdMutex::new(VecDeque::<String>::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, None));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(log_lines(err, Some(tail.clone())));
        }
        let (exit_tx, mut exit_rx) = watch::channel(false);
        {
            let life = life.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                life.exited.store(true, Ordering::SeqCst);
                match status {
                    Ok(st) => info!(pid, status = %st, "kernel process exited"),
                    Err(e) => warn!(pid, error = %e, "waiting for kernel failed"),
                }
                let _ = exit_tx.send(true);
            });
        }
        let stderr_tail = || tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
        let deadline = started + START_TIMEOUT;

        // 1. Wait for all five sockets to be bound.
        let socket_paths: Vec<PathBuf> = (1..=5).map(|p| PathBuf::from(format!("{}-{p}", info.ip))).collect();
        loop {
            if socket_paths.iter().all(|p| p.exists()) {
                break;
            }
            if life.is_exited() {
                // Give the stderr reader a moment to collect the reason.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!("kernel exited during startup: {}", stderr_tail()));
            }
            if Instant::now() >= deadline {
                return Err("kernel did not open its sockets in time".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        debug!(ms = started.elapsed().as_millis() as u64, "kernel sockets bound");
        // 2. Connect IOPub first so its subscription settles while shell connects.
        let session = Uuid::new_v4().to_string();
        let iopub = retry(|| create_client_iopub_connection(&info, "", &session)).await?;
        let identity = peer_identity_for_session(&session).map_err(|e| e.to_string())?;
        let shell = retry(|| create_client_shell_connection_with_identity(&info, &session, identity.clone())).await?;
        let (shell_tx, shell_rx_conn) = shell.split();
        let (stx, shell_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (itx, iopub_rx) = mpsc::channel(CHANNEL_DEPTH);
        let readers = vec![tokio::spawn(read_loop(shell_rx_conn, stx, "shell")), tokio::spawn(read_loop(iopub, itx, "iopub"))];
        let mut kernel = Kernel { life: life.clone(), exit_rx: exit_rx.clone(), shell: shell_tx, shell_rx, iopub_rx, readers };
        // The Kernel's Drop now owns cleanup.
        guard.disarm();

        // 3. Readiness: kernel_info until the reply arrives on shell AND the
        //    request's status shows up on IOPub (i.e. the subscription is
        //    live, so the first cell's output cannot be lost).
        loop {
            if Instant::now() >= deadline {
                return Err("kernel did not become ready in time".into());
            }
            let req = JupyterMessage::new(KernelInfoRequest {}, None);
            let id = req.header.msg_id.clone();
            kernel.shell.send(req).await.map_err(|e| format!("kernel_info_request failed: {e}"))?;
            let reply = recv_matching(&mut kernel.shell_rx, &mut exit_rx, &id, Duration::from_secs(3)).await;
            debug!(ms = started.elapsed().as_millis() as u64, got = matches!(reply, Wait::Got), "kernel_info reply");
            match reply {
                Wait::Exited => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(format!("kernel exited during startup: {}", stderr_tail()));
                }
                Wait::Timeout => continue,
                Wait::Got => {}
            }
            match recv_matching(&mut kernel.iopub_rx, &mut exit_rx, &id, Duration::from_millis(500)).await {
                Wait::Got => break,
                Wait::Exited => {
                    return Err(format!("kernel exited during startup: {}", stderr_tail()));
                }
                Wait::Timeout => continue,
            }
        }
        kernel.drain();
        info!(pid, ms = started.elapsed().as_millis() as u64, "python kernel ready");
        Ok(kernel)
    }
}

/// Kills and cleans up a half-started kernel on early return.
struct LaunchGuard {
    dir: Option<PathBuf>,
    life: Option<Arc<Life>>,
}

impl LaunchGuard {
    fn disarm(&mut self) {
        self.dir = None;
        self.life = None;
    }
}

impl Drop for LaunchGuard {
    fn drop(&mut self) {
        if let Some(l) = &self.life {
            l.signal(libc::SIGKILL);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

enum Wait {
    Got,
    Timeout,
    Exited,
}

/// Waits for a message whose parent is `id` (others are dropped).
async fn recv_matching(rx: &mut mpsc::Receiver<KMsg>, exit_rx: &mut watch::Receiver<bool>, id: &str, within: Duration) -> Wait {
    let deadline = Instant::now() + within;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) if m.parent_id.as_deref() == Some(id) => return Wait::Got,
                Some(_) => {}
                None => return Wait::Exited,
            },
            _ = wait_exit(exit_rx) => return Wait::Exited,
            _ = tokio::time::sleep_until(deadline) => return Wait::Timeout,
        }
    }
}

/// Connecting right after the socket file appears can race the kernel's
/// `listen()`; retry briefly.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = jupyter_zmq_client::Result<T>>,
{
    let mut last = String::new();
    for _ in 0..40 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("cannot connect to the kernel: {last}"))
}

/// Reads raw frames, verifies the signature, and forwards the parts Ship
/// needs. Undecodable frames are logged and skipped.
async fn read_loop<S: SocketRecv + Send>(mut conn: Connection<S>, tx: mpsc::Sender<KMsg>, channel: &'static str) {
    loop {
        let frame = match conn.socket.recv().await {
            Ok(f) => f,
            Err(e) => {
                debug!(channel, error = %e, "kernel socket closed");
                return;
            }
        };
        let raw = match RawMessage::from_multipart(frame, &conn.mac) {
            Ok(r) => r,
            Err(e) => {
                warn!(channel, error = %e, "bad kernel frame dropped");
                continue;
            }
        };
        let Some(msg) = decode(&raw) else {
            warn!(channel, "undecodable kernel message dropped");
            continue;
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

fn decode(raw: &RawMessage) -> Option<KMsg> {
    let header: Value = serde_json::from_slice(raw.jparts.first()?).ok()?;
    let parent: Value = serde_json::from_slice(raw.jparts.get(1)?).unwrap_or(Value::Null);
    let content: Value = serde_json::from_slice(raw.jparts.get(3)?).ok()?;
    Some(KMsg {
        msg_type: header.get("msg_type")?.as_str()?.to_owned(),
        parent_id: parent.get("msg_id").and_then(Value::as_str).map(str::to_owned),
        content,
    })
}

async fn log_lines<R: tokio::io::AsyncRead + Unpin>(r: R, tail: Option<Arc<StdMutex<VecDeque<String>>>>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        debug!(target: "ship::kernel_output", "{line}");
        if let Some(t) = &tail
            && let Ok(mut t) = t.lock()
        {
            if t.len() >= 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP handlers
// ---------------------------------------------------------------------------

fn default_timeout() -> i64 {
    30
}

#[derive(Debug, Deserialize)]
pub struct ExecRequest {
    pub code: String,
    #[serde(default = "default_timeout")]
    pub timeout: i64,
    #[serde(default)]
    pub silent: bool,
}

/// `POST /ipython/exec`. The execution runs in its own task so a client
/// that disconnects mid-cell does not leave the kernel in an unknown state:
/// the cell still finishes (or is interrupted at its timeout).
pub async fn exec_handler(State(state): State<AppState>, ApiJson(req): ApiJson<ExecRequest>) -> Result<Json<ExecResponse>, AppError> {
    if req.code.len() > MAX_PYTHON_CODE {
        return Err(AppError::too_large(format!(
            "Code is too large ({} bytes > {MAX_PYTHON_CODE} bytes); write it to a file and run that",
            req.code.len()
        )));
    }
    let timeout = req.timeout.clamp(1, 7 * 24 * 3600) as u64;
    let task = tokio::spawn(state.kernel.clone().execute(req.code, timeout, req.silent));
    match task.await {
        Ok(r) => Ok(Json(r)),
        Err(e) => Err(AppError::internal(format!("Failed to execute code: {e}"))),
    }
}

pub async fn status_handler(State(state): State<AppState>) -> Json<Value> {
    let (status, has_kernel) = state.kernel.status();
    Json(json!({
        "status": status,
        "has_kernel": has_kernel,
        "workspace": state.kernel.settings.workspace_display,
    }))
}

pub async fn restart_handler(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    match state.kernel.restart().await {
        Ok(()) => Ok(Json(json!({"success": true, "message": "Kernel restarted successfully"}))),
        Err(e) => Err(AppError::internal(format!("Failed to restart kernel: {e}"))),
    }
}

pub async fn delete_handler(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    if state.kernel.shutdown().await {
        Ok(Json(json!({"success": true, "message": "Kernel shutdown successfully"})))
    } else {
        Err(AppError::new(StatusCode::NOT_FOUND, "Kernel not found"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(msg_type: &str, parent: &str, content: Value) -> KMsg {
        KMsg { msg_type: msg_type.into(), parent_id: Some(parent.into()), content }
    }

    #[test]
    fn output_assembly_follows_shipyard() {
        let mut a = Accumulator::default();
        let id = "req";
        a.feed(id, msg("status", id, json!({"execution_state": "busy"})));
        a.feed(id, msg("execute_input", id, json!({"code": "x", "execution_count": 3})));
        a.feed(id, msg("stream", id, json!({"name": "stdout", "text": "  hello\n"})));
        a.feed(id, msg("stream", id, json!({"name": "stderr", "text": "warn\n"})));
        // A message of another request is ignored.
        a.feed(id, msg("stream", "other", json!({"name": "stdout", "text": "NOPE"})));
        // Figure: image plus text/plain → only the image.
        a.feed(
            id,
            msg("display_data", id, json!({"data": {"image/png": "iVBORw0K\n", "text/plain": "<Figure size 640x480 with 1 Axes>"}, "metadata": {}})),
        );
        // Text-only display → text.
        a.feed(id, msg("display_data", id, json!({"data": {"text/plain": "shown"}, "metadata": {}})));
        a.feed(id, msg("execute_result", id, json!({"execution_count": 3, "data": {"text/plain": "42"}, "metadata": {}})));
        assert!(!a.complete());
        a.feed(id, msg("execute_reply", id, json!({"status": "ok", "execution_count": 3})));
        a.feed(id, msg("status", id, json!({"execution_state": "idle"})));
        assert!(a.complete());
        let (ok, err) = a.verdict();
        assert!(ok);
        assert!(err.is_none());
        assert_eq!(a.execution_count, Some(3));
        let out = a.take_output();
        assert_eq!(out.text, "hello\nwarn\nshown42");
        assert_eq!(out.images, vec![json!({"image/png": "iVBORw0K"})]);
    }

    #[test]
    fn errors_join_traceback_and_fail() {
        let mut a = Accumulator::default();
        let id = "r";
        a.feed(id, msg("stream", id, json!({"name": "stdout", "text": "before\n"})));
        a.feed(
            id,
            msg(
                "error",
                id,
                json!({"ename": "NameError", "evalue": "name 'y' is not defined",
                       "traceback": ["\x1b[0;31m---------\x1b[0m", "NameError: name 'y' is not defined"]}),
            ),
        );
        a.feed(
            id,
            msg(
                "execute_reply",
                id,
                json!({"status": "error", "execution_count": 4, "ename": "NameError",
                                            "evalue": "x", "traceback": []}),
            ),
        );
        a.feed(id, msg("status", id, json!({"execution_state": "idle"})));
        let (ok, err) = a.verdict();
        assert!(!ok);
        assert_eq!(err.unwrap(), "---------\nNameError: name 'y' is not defined");
        assert_eq!(a.take_output().text, "before");
    }

    #[test]
    fn unparseable_reply_still_completes() {
        let mut a = Accumulator::default();
        // A reply with an odd shape is still recognised from raw JSON.
        a.feed("r", msg("execute_reply", "r", json!({"status": "aborted"})));
        a.feed("r", msg("status", "r", json!({"execution_state": "idle"})));
        assert!(a.complete());
        assert_eq!(a.verdict(), (false, Some("Execution aborted".into())));
    }

    #[test]
    fn text_is_capped() {
        let mut a = Accumulator::default();
        let big = "é".repeat(MAX_PYTHON_TEXT); // 2 bytes each: overflows
        a.push_text(&big);
        a.push_text("more");
        let out = a.take_output();
        assert!(out.text.len() <= MAX_PYTHON_TEXT + TRUNCATED_MARKER.len());
        assert!(out.text.ends_with("[output truncated]"));
    }

    #[test]
    fn images_are_capped_per_execution() {
        let mut a = Accumulator::default();
        let ten_mib = "A".repeat(10 * 1024 * 1024);
        a.push_image(&ten_mib);
        a.push_image(&ten_mib); // 20 MiB in all: over the 16 MiB cap, dropped
        a.push_image("iVBORw0K");
        let out = a.take_output();
        assert_eq!(out.images.len(), 2);
        assert!(out.text.ends_with("[output truncated]"));
        assert_eq!(MAX_PYTHON_IMAGES, 16 * 1024 * 1024);
    }
}
