//! The Python kernel: IPython's `InteractiveShell` in a child process
//! (`ship_kernel.py`, beside this file), driven over a socket.
//!
//! Design notes:
//! * Started lazily: by the first `/ipython/exec` (which waits for it on the
//!   `slot` lock, no polling), or at boot when `SHIP_KERNEL_PREWARM=1` (see
//!   `main.rs`). Shell and filesystem calls never touch it.
//! * Why not ipykernel over ZeroMQ (what Ship ran before): measured inside
//!   the ship image on this project's 2-core machine, an ipykernel start
//!   costs ~550 ms of CPU and 69 MB RSS (plus ~130 ms of fuse-overlayfs CPU
//!   for its ~950 modules); ipykernel with debugpy, jedi and prompt_toolkit
//!   kept out still ~300 ms and 47 MB; this kernel ~190 ms, 36 MB and ~55 ms
//!   of fuse-overlayfs. What users see stays ipykernel's: the shell keeps
//!   ZMQInteractiveShell's behaviour (cell file names and tracebacks, `!cmd`,
//!   magics, display hooks, inline matplotlib via `MPLBACKEND`, no stdin).
//! * Wire: fd 3 of the kernel is one end of a socketpair carrying JSON lines
//!   (requests in, Jupyter-shaped messages out); fds 1 and 2 are one pipe, so
//!   stdout, stderr and whatever subprocesses print arrive in the order they
//!   were written. The kernel flushes its streams before each message, and
//!   the reader here drains the pipe before handing a message on, so text
//!   and results keep their order (ipykernel's IOPub ordering).
//! * The kernel leads its own process group (`setsid`), so an interrupt is a
//!   SIGINT to the group and a kill takes its subprocesses along.
//! * `PR_SET_PDEATHSIG(SIGKILL)` so a server that dies hard never leaks a kernel.
//! * One reader task per kernel feeds one ordered channel, so waiting on it
//!   is cancel-safe.
//! * Executions are serialized by the `slot` mutex (one kernel, one cell at a
//!   time, like a notebook).

use std::{
    io,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::{fs::DirBuilderExt, net::UnixStream as StdUnixStream},
    },
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex as StdMutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        UnixStream,
        unix::{OwnedWriteHalf, pipe},
    },
    sync::{Mutex, mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};
use uuid::Uuid;

use runtime_common::{
    error::{ApiJson, AppError},
    limits::{MAX_PYTHON_CODE, MAX_PYTHON_IMAGES, MAX_PYTHON_TEXT, TRUNCATED_MARKER},
    text::strip_ansi,
    token::TOKEN_ENV,
};

use crate::AppState;

/// The kernel program, written next to its socket at every start.
const KERNEL_PY: &str = include_str!("ship_kernel.py");
/// The kernel's end of the socketpair (see `ship_kernel.py`).
const KERNEL_PROTOCOL_FD: i32 = 3;
/// How long a kernel may take from spawn to its `ready` message. Generous:
/// kernels start on demand, so a burst of first calls starts them all at
/// once and each start takes as long as the burst (measured: 50 sandboxes
/// on 2 busy cores, ~25 s each); giving up would waste the CPU spent.
/// Bay's `sessions.ready_timeout_seconds` defaults to the same 120 s.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an interrupted execution gets to unwind before the kernel is
/// declared stuck and replaced.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// Backpressure bound of the reader channel (events of at most
/// [`OUTPUT_CHUNK`] bytes of text, or one message).
const CHANNEL_DEPTH: usize = 256;
const OUTPUT_CHUNK: usize = 16 * 1024;
/// Longest message line accepted from the kernel: a result may carry every
/// image and all the text of an execution, JSON-escaped. Longer lines are
/// dropped.
const MAX_MESSAGE_LINE: usize = 2 * (MAX_PYTHON_IMAGES + MAX_PYTHON_TEXT);
/// How much of the kernel's early output is kept to explain a failed start.
const START_OUTPUT_TAIL: usize = 4096;

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
    /// The request it belongs to (`None`: sent outside any execution).
    parent_id: Option<String>,
    content: Value,
}

/// What the reader task hands on, in the order the kernel produced it.
#[derive(Debug)]
enum Event {
    /// Text the kernel (or a subprocess of it) printed.
    Output(String),
    Msg(KMsg),
}

/// A connected, ready kernel.
struct Kernel {
    life: Arc<Life>,
    exit_rx: watch::Receiver<bool>,
    requests: OwnedWriteHalf,
    events: mpsc::Receiver<Event>,
    reader: JoinHandle<()>,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.life.signal(libc::SIGKILL);
        self.reader.abort();
        let _ = std::fs::remove_dir_all(&self.life.dir);
    }
}

impl Kernel {
    fn is_dead(&self) -> bool {
        self.life.is_exited()
    }

    /// Drops what is left over from earlier (abandoned) requests or was
    /// printed between cells; only what is queued now, so an endless stream
    /// from a background thread cannot keep this busy.
    fn drain(&mut self) {
        for _ in 0..self.events.len() {
            if self.events.try_recv().is_err() {
                break;
            }
        }
    }

    /// Feeds events of request `id` into `acc` until the execution is
    /// complete, the deadline passes, or the kernel dies.
    async fn collect(&mut self, id: &str, acc: &mut Accumulator, deadline: Instant) -> Outcome {
        let tap = acc.tap.clone();
        let mut interrupted = false;
        loop {
            if acc.complete() {
                return Outcome::Done;
            }
            // Checked explicitly: under an output flood the channel branch
            // is always ready and could starve the timer branch.
            if Instant::now() >= deadline {
                return Outcome::TimedOut;
            }
            if self.is_dead() {
                // Keep whatever the kernel managed to send before dying.
                while let Ok(e) = self.events.try_recv() {
                    acc.on_event(id, e);
                }
                return if acc.complete() { Outcome::Done } else { Outcome::Died };
            }
            tokio::select! {
                e = self.events.recv() => match e {
                    Some(e) => acc.on_event(id, e),
                    // The reader ends when the kernel closes its socket: it
                    // is exiting; the exit watch says so in a moment.
                    None => {
                        let _ = tokio::time::timeout_at(deadline, wait_exit(&mut self.exit_rx)).await;
                        return if acc.complete() { Outcome::Done } else { Outcome::Died };
                    }
                },
                _ = wait_exit(&mut self.exit_rx) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                // The reader of a streamed cell went away: interrupt it
                // (once), as Ctrl-C in a notebook would.
                _ = reader_gone(&tap), if !interrupted => {
                    interrupted = true;
                    debug!("stream reader gone; interrupting the cell");
                    self.life.signal(libc::SIGINT);
                }
            }
        }
    }
}

/// Completes when a streamed cell's reader has gone; never without one.
async fn reader_gone(tap: &Option<mpsc::UnboundedSender<Value>>) {
    match tap {
        Some(t) => t.closed().await,
        None => std::future::pending().await,
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
    pub(crate) fn failure(error: impl Into<String>) -> Self {
        Self { success: false, execution_count: None, output: ExecOutput::default(), error: Some(error.into()) }
    }
}

/// Assembles the result of one execution from its events, with
/// Shipyard's rules: text is printed output + execute_result text/plain +
/// the text/plain of displays that carry no image, in arrival order,
/// trimmed; images are every image/png; error is the joined traceback.
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
    /// The cell called exit(): the kernel ends after its reply.
    exiting: bool,
    /// Streamed execution: every piece of output is also sent here as it
    /// arrives (`/ipython/exec/stream`); `None` once the reader went away.
    tap: Option<mpsc::UnboundedSender<Value>>,
}

impl Accumulator {
    /// The kernel sends the reply last, after flushing its output (see the
    /// module notes), so the reply completes an execution.
    fn complete(&self) -> bool {
        self.got_reply
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
        // base64 from Python may end in a newline; strict decoders choke on it.
        let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if self.image_bytes + clean.len() > MAX_PYTHON_IMAGES {
            self.text_truncated = true;
            return;
        }
        self.image_bytes += clean.len();
        self.images.push(clean);
    }

    /// A mime bundle (`{"text/plain": ..., "image/png": ...}`).
    fn on_media(&mut self, data: &Value, is_result: bool) {
        let png = data.get("image/png").and_then(Value::as_str);
        if let Some(b64) = png {
            self.push_image(b64);
        }
        // A figure's display carries `<Figure size …>` as text/plain next
        // to the PNG; only execute_result keeps its text alongside images.
        if (is_result || png.is_none())
            && let Some(t) = data.get("text/plain").and_then(Value::as_str)
        {
            self.push_text(t);
        }
    }

    fn on_event(&mut self, id: &str, e: Event) {
        match e {
            // Printed output belongs to the running execution (as with
            // ipykernel, which tags it with the current request).
            Event::Output(s) => {
                self.emit(|| json!({ "type": "stream", "name": "stdout", "data": s }));
                self.push_text(&s)
            }
            Event::Msg(m) => self.feed(id, m),
        }
    }

    /// Hands a streamed event to the reader, if there is one.
    fn emit(&mut self, event: impl FnOnce() -> Value) {
        if let Some(tap) = &self.tap
            && tap.send(event()).is_err()
        {
            self.tap = None;
        }
    }

    /// Handles one message; messages of other requests are ignored.
    fn feed(&mut self, id: &str, m: KMsg) {
        if m.parent_id.as_deref() != Some(id) {
            return;
        }
        let c = &m.content;
        match m.msg_type.as_str() {
            "execute_reply" => {
                self.got_reply = true;
                self.reply_status = c.get("status").and_then(Value::as_str).map(str::to_owned);
                self.execution_count = c.get("execution_count").and_then(Value::as_i64);
                self.exiting = c.get("payload").and_then(Value::as_array).is_some_and(|p| p.iter().any(|p| p["source"] == "ask_exit"));
                if self.reply_status.as_deref() == Some("error") {
                    self.reply_error = Some(error_text(c));
                }
            }
            "execute_result" | "display_data" => {
                let data = c.get("data").unwrap_or(&Value::Null);
                self.emit(|| json!({ "type": m.msg_type, "data": streamed_bundle(data) }));
                self.on_media(data, m.msg_type == "execute_result");
            }
            "error" => {
                let text = error_text(c);
                self.emit(|| json!({ "type": "error", "data": text }));
                self.error = Some(text);
            }
            other => debug!(msg_type = other, "kernel message ignored"),
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

/// A MIME bundle as streamed: base64 images without the line breaks
/// Python's encoder leaves in them (strict decoders refuse those).
fn streamed_bundle(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(m) = data.as_object_mut() {
        for (mime, v) in m.iter_mut() {
            if mime.starts_with("image/")
                && mime != "image/svg+xml"
                && let Some(s) = v.as_str()
            {
                *v = Value::String(s.chars().filter(|c| !c.is_ascii_whitespace()).collect());
            }
        }
    }
    data
}

/// The text of an `error` message or error reply: its traceback, joined.
fn error_text(c: &Value) -> String {
    let traceback: Vec<String> =
        c.get("traceback").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
    format_error(c.get("ename").and_then(Value::as_str).unwrap_or(""), c.get("evalue").and_then(Value::as_str).unwrap_or(""), traceback)
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

    /// Starts the kernel in the background now rather than on the first
    /// `/ipython/exec` (`SHIP_KERNEL_PREWARM=1`, for warm-pool sandboxes).
    /// The status reads `starting` from this call on, so a readiness check
    /// that waits for `alive` cannot see `not_started` first.
    pub fn prewarm(self: &Arc<Self>) {
        self.set_phase(Phase::Starting);
        tokio::spawn(self.clone().ensure_started());
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
        self.execute_streamed(code, timeout_secs, silent, None).await
    }

    /// As [`execute`](Self::execute), also sending each piece of output to
    /// `tap` as it arrives; the cell is interrupted when `tap` closes.
    pub async fn execute_streamed(
        self: Arc<Self>,
        code: String,
        timeout_secs: u64,
        silent: bool,
        tap: Option<mpsc::UnboundedSender<Value>>,
    ) -> ExecResponse {
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

        let id = Uuid::new_v4().simple().to_string();
        let mut line = serde_json::to_vec(&json!({ "id": id, "code": code, "silent": silent })).unwrap_or_default();
        line.push(b'\n');
        drop(code);
        if let Err(e) = kernel.requests.write_all(&line).await {
            *slot = None;
            return ExecResponse::failure(format!("Failed to send code to the kernel: {e}"));
        }
        drop(line);

        let started = Instant::now();
        let mut acc = Accumulator { tap, ..Accumulator::default() };
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
        if acc.exiting
            && let Some(kernel) = slot.as_mut()
        {
            // exit(): the kernel is ending; the next call starts a new one
            // instead of sending its code to this one.
            let _ = tokio::time::timeout(INTERRUPT_GRACE, wait_exit(&mut kernel.exit_rx)).await;
            *slot = None;
        }

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

    /// Spawns a kernel process and waits for its `ready` message.
    async fn launch(&self) -> Result<Kernel, String> {
        let started = Instant::now();
        let s = &self.settings;
        let dir = std::env::temp_dir().join(format!("ship-kernel-{}", Uuid::new_v4().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on the guard removes the dir and kills the process
        // group on every early return.
        let mut guard = LaunchGuard { dir: Some(dir.clone()), life: None };
        let script = dir.join("ship_kernel.py");
        std::fs::write(&script, KERNEL_PY).map_err(|e| format!("cannot write {}: {e}", script.display()))?;

        // Both ends are close-on-exec: no other child inherits them.
        let (ours, theirs) = StdUnixStream::pair().map_err(|e| format!("cannot create the kernel socket: {e}"))?;
        let (out_r, out_w) = io::pipe().map_err(|e| format!("cannot create the kernel output pipe: {e}"))?;
        let out_w2 = out_w.try_clone().map_err(|e| format!("cannot create the kernel output pipe: {e}"))?;

        let mut cmd = tokio::process::Command::new(&s.python);
        cmd.arg(&script)
            .current_dir(&s.cwd)
            .env_remove(TOKEN_ENV)
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // Inline figures; matplotlib itself is imported only by a cell
            // that uses it.
            .env("MPLBACKEND", "module://matplotlib_inline.backend_inline")
            // IPython's profile dir is kernel state, not user data.
            .env("IPYTHONDIR", std::env::temp_dir().join("ship-ipython"))
            .stdin(Stdio::null())
            .stdout(out_w)
            .stderr(out_w2);
        let server_pid = std::process::id() as libc::pid_t;
        let theirs_fd = theirs.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        // PDEATHSIG fires when the *thread* that forked exits; this runs on a
        // tokio worker thread, which lives as long as the runtime.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                if libc::getppid() != server_pid {
                    libc::_exit(1);
                }
                // dup2 clears close-on-exec on the copy, but is a no-op when
                // the socket already has the number.
                if theirs_fd == KERNEL_PROTOCOL_FD {
                    if libc::fcntl(KERNEL_PROTOCOL_FD, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(theirs_fd, KERNEL_PROTOCOL_FD) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        // The command holds the pipe's write ends: only the kernel may keep them.
        drop(cmd);
        drop(theirs);
        let mut child = spawned.map_err(|e| format!("cannot run {}: {e}", s.python.display()))?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let life = Arc::new(Life { pgid: pid, exited: AtomicBool::new(false), dir: dir.clone() });
        guard.life = Some(life.clone());
        if let Ok(mut g) = self.current.lock() {
            *g = Some(life.clone());
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

        ours.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sock = UnixStream::from_std(ours).map_err(|e| format!("cannot register the kernel socket: {e}"))?;
        let out = pipe::Receiver::from_owned_fd(OwnedFd::from(out_r)).map_err(|e| format!("cannot register the kernel output pipe: {e}"))?;
        let (sock_r, requests) = sock.into_split();
        let (tx, events) = mpsc::channel(CHANNEL_DEPTH);
        let reader = tokio::spawn(read_loop(BufReader::new(sock_r), out, tx));
        let mut kernel = Kernel { life: life.clone(), exit_rx: exit_rx.clone(), requests, events, reader };
        // The Kernel's Drop now owns cleanup.
        guard.disarm();

        // Readiness: the kernel says so once its shell is built. What it
        // printed before (warnings, or why it failed) explains a failed start.
        let deadline = started + START_TIMEOUT;
        let mut early = String::new();
        loop {
            let event = tokio::select! {
                e = kernel.events.recv() => e,
                _ = wait_exit(&mut exit_rx) => None,
                _ = tokio::time::sleep_until(deadline) => return Err("kernel did not become ready in time".into()),
            };
            match event {
                Some(Event::Msg(m)) if m.msg_type == "ready" => break,
                Some(Event::Msg(m)) => debug!(msg_type = %m.msg_type, "kernel message before ready ignored"),
                Some(Event::Output(text)) => {
                    early.push_str(&text);
                    if early.len() > START_OUTPUT_TAIL {
                        let mut cut = early.len() - START_OUTPUT_TAIL;
                        while !early.is_char_boundary(cut) {
                            cut += 1;
                        }
                        early.drain(..cut);
                    }
                }
                None => {
                    // Exited: the rest of what it printed is still in the channel.
                    while let Ok(e) = kernel.events.try_recv() {
                        if let Event::Output(text) = e {
                            early.push_str(&text);
                        }
                    }
                    return Err(format!("kernel exited during startup: {}", early.trim()));
                }
            }
        }
        if !early.trim().is_empty() {
            debug!(output = %early.trim(), "kernel start-up output");
        }
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

/// The kernel's messages and printed output, merged into one ordered event
/// stream. A message is handed on only after everything already in the
/// output pipe: the kernel flushed it before sending the message, so it is
/// there by then, and text keeps its place before results and the reply.
/// Ends when the kernel closes its socket (it is exiting).
async fn read_loop<R: AsyncBufRead + Unpin>(mut sock: R, mut out: pipe::Receiver, tx: mpsc::Sender<Event>) {
    let mut lines = LineSplitter::default();
    let mut text = Utf8Stream::default();
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    let mut out_open = true;
    loop {
        tokio::select! {
            biased;
            r = out.read(&mut buf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    if !send_text(&tx, text.push(&buf[..n])).await {
                        return;
                    }
                }
            },
            line = lines.next(&mut sock) => {
                // Whatever was printed before this point is in the pipe now.
                if out_open && !drain_pipe(&out, &mut buf, &mut text, &tx).await {
                    return;
                }
                let Some(line) = line else {
                    let _ = send_text(&tx, text.finish()).await;
                    return;
                };
                match decode(&line) {
                    Some(m) => {
                        if tx.send(Event::Msg(m)).await.is_err() {
                            return;
                        }
                    }
                    None => warn!(bytes = line.len(), "undecodable kernel message dropped"),
                }
            }
        }
    }
}

/// Reads what the pipe holds right now, bypassing tokio's readiness cache
/// (which may not have seen the latest write yet). `false`: the receiver is gone.
async fn drain_pipe(out: &pipe::Receiver, buf: &mut [u8], text: &mut Utf8Stream, tx: &mpsc::Sender<Event>) -> bool {
    loop {
        match rustix::io::read(out.as_fd(), &mut *buf) {
            Ok(0) | Err(_) => return true, // empty (EAGAIN), closed, or failed
            Ok(n) => {
                if !send_text(tx, text.push(&buf[..n])).await {
                    return false;
                }
            }
        }
    }
}

async fn send_text(tx: &mpsc::Sender<Event>, s: String) -> bool {
    s.is_empty() || tx.send(Event::Output(s)).await.is_ok()
}

fn decode(line: &[u8]) -> Option<KMsg> {
    let v: Value = serde_json::from_slice(line).ok()?;
    Some(KMsg {
        msg_type: v.get("msg_type")?.as_str()?.to_owned(),
        parent_id: v.get("id").and_then(Value::as_str).map(str::to_owned),
        content: v.get("content").cloned().unwrap_or(Value::Null),
    })
}

/// Splits a byte stream into lines of at most [`MAX_MESSAGE_LINE`] bytes
/// (longer ones are skipped whole). Cancel-safe: a partial line lives here,
/// not in the future.
#[derive(Default)]
struct LineSplitter {
    line: Vec<u8>,
    oversized: bool,
}

impl LineSplitter {
    /// The next line without its newline; `None` at end of stream.
    async fn next<R: AsyncBufRead + Unpin>(&mut self, r: &mut R) -> Option<Vec<u8>> {
        loop {
            let available = match r.fill_buf().await {
                Ok([]) | Err(_) => return None,
                Ok(b) => b,
            };
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if !self.oversized {
                if self.line.len() + chunk.len() > MAX_MESSAGE_LINE {
                    self.oversized = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = found.unwrap_or(available.len());
            r.consume(used);
            if found.is_some() {
                if std::mem::take(&mut self.oversized) {
                    warn!("oversized kernel message dropped");
                    continue;
                }
                return Some(std::mem::take(&mut self.line));
            }
        }
    }
}

/// Decodes UTF-8 that arrives in arbitrary chunks: a character split
/// between two reads is kept for the next one; invalid bytes become U+FFFD.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let keep = match std::str::from_utf8(&self.pending) {
            Ok(_) => 0,
            // An incomplete sequence at the very end: wait for the rest.
            Err(e) if e.error_len().is_none() => self.pending.len() - e.valid_up_to(),
            Err(_) => incomplete_tail(&self.pending),
        };
        let rest = self.pending.split_off(self.pending.len() - keep);
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        s
    }

    fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// Length of an incomplete (but so far valid) UTF-8 sequence ending `b`.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let lead = b[b.len() - back];
        let need = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            0x80..=0xBF => continue,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
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

    fn msg(msg_type: &str, parent: &str, content: Value) -> Event {
        Event::Msg(KMsg { msg_type: msg_type.into(), parent_id: Some(parent.into()), content })
    }

    fn out(s: &str) -> Event {
        Event::Output(s.into())
    }

    #[test]
    fn output_assembly_follows_shipyard() {
        let mut a = Accumulator::default();
        let id = "req";
        a.on_event(id, out("  hello\n"));
        a.on_event(id, out("warn\n"));
        // A message of another request is ignored.
        a.on_event(id, msg("execute_result", "other", json!({"data": {"text/plain": "NOPE"}})));
        // Figure: image plus text/plain → only the image.
        a.on_event(
            id,
            msg("display_data", id, json!({"data": {"image/png": "iVBORw0K\n", "text/plain": "<Figure size 640x480 with 1 Axes>"}, "metadata": {}})),
        );
        // Text-only display → text.
        a.on_event(id, msg("display_data", id, json!({"data": {"text/plain": "shown"}, "metadata": {}})));
        a.on_event(id, msg("update_display_data", id, json!({"data": {"text/plain": "ignored"}})));
        a.on_event(id, msg("execute_result", id, json!({"execution_count": 3, "data": {"text/plain": "42"}, "metadata": {}})));
        assert!(!a.complete());
        a.on_event(id, msg("execute_reply", id, json!({"status": "ok", "execution_count": 3})));
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
        a.on_event(id, out("before\n"));
        a.on_event(
            id,
            msg(
                "error",
                id,
                json!({"ename": "NameError", "evalue": "name 'y' is not defined",
                       "traceback": ["\x1b[0;31m---------\x1b[0m", "NameError: name 'y' is not defined"]}),
            ),
        );
        a.on_event(
            id,
            msg("execute_reply", id, json!({"status": "error", "execution_count": 4, "ename": "NameError", "evalue": "x", "traceback": []})),
        );
        let (ok, err) = a.verdict();
        assert!(!ok);
        assert_eq!(err.unwrap(), "---------\nNameError: name 'y' is not defined");
        assert_eq!(a.take_output().text, "before");
    }

    #[test]
    fn odd_replies_still_complete() {
        let mut a = Accumulator::default();
        a.on_event("r", msg("execute_reply", "r", json!({"status": "aborted"})));
        assert!(a.complete());
        assert_eq!(a.verdict(), (false, Some("Execution aborted".into())));
        // An error reply without an error message: its own traceback, or name and value.
        let mut a = Accumulator::default();
        a.on_event("r", msg("execute_reply", "r", json!({"status": "error", "ename": "KeyboardInterrupt", "evalue": ""})));
        assert_eq!(a.verdict(), (false, Some("KeyboardInterrupt: ".into())));
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

    #[test]
    fn utf8_split_across_reads_is_kept_whole() {
        let mut u = Utf8Stream::default();
        let bytes = "aé€😀".as_bytes();
        // Every split point, in two reads.
        for cut in 0..=bytes.len() {
            let mut s = u.push(&bytes[..cut]);
            s.push_str(&u.push(&bytes[cut..]));
            assert_eq!(s, "aé€😀", "cut at {cut}");
        }
        // Invalid bytes are replaced; a trailing partial character waits.
        assert_eq!(u.push(b"x\xffy\xe2\x82"), "x\u{fffd}y");
        assert_eq!(u.push(b"\xac"), "€");
        assert_eq!(u.push(b"\xf0\x9f"), "");
        assert_eq!(u.finish(), "\u{fffd}");
    }

    #[tokio::test]
    async fn lines_are_split_and_oversized_ones_skipped() {
        let long = "x".repeat(MAX_MESSAGE_LINE + 1);
        let data = format!("one\n{long}\ntwo\nthree");
        let mut r = BufReader::with_capacity(7, data.as_bytes());
        let mut l = LineSplitter::default();
        assert_eq!(l.next(&mut r).await.as_deref(), Some(&b"one"[..]));
        assert_eq!(l.next(&mut r).await.as_deref(), Some(&b"two"[..]));
        // No newline at the end: not a message.
        assert_eq!(l.next(&mut r).await, None);
    }

    /// Text printed before a message is handed on before it, however the
    /// writes and the reader interleave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn printed_text_precedes_the_message_that_follows_it() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (mut out_tx, out_rx) = pipe::pipe().unwrap();
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let reader = tokio::spawn(read_loop(BufReader::new(ours), out_rx, tx));
        let writer = tokio::spawn(async move {
            for i in 0..2000 {
                out_tx.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
                theirs.write_all(format!("{{\"msg_type\": \"m\", \"id\": \"{i}\"}}\n").as_bytes()).await.unwrap();
            }
        });
        let mut text = String::new();
        let mut seen = 0;
        while let Some(e) = rx.recv().await {
            match e {
                Event::Output(s) => text.push_str(&s),
                Event::Msg(m) => {
                    let i = m.parent_id.unwrap();
                    assert!(text.contains(&format!("line {i}\n")), "message {i} before its line");
                    seen += 1;
                }
            }
        }
        writer.await.unwrap();
        reader.await.unwrap();
        assert_eq!(seen, 2000);
    }
}
