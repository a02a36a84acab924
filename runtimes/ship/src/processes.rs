//! Background processes that outlive the request that started them, with a
//! bounded scrollback of their output kept in Ship, stdin, signals and (on a
//! PTY) resizing. The protocol is described in `stream.rs`.
//!
//! Each process is started like a `/shell/exec` command
//! ([`ShellManager::prepare`]: same user, environment, cwd rules, its own
//! session and process group) and watched by a supervisor task: readers
//! append its output to the scrollback as events, the supervisor appends
//! the `exit` event once the leader has exited and its output has ended
//! (or [`PIPE_GRACE`] later, when something it started keeps the output
//! open; the readers of pipes then keep draining without storing, as in
//! `runtimes/common/src/capture.rs`). Readers of the output follow a
//! `watch` channel bumped on every event.

use std::{
    collections::{HashMap, VecDeque},
    process::Stdio,
    sync::{Arc, Mutex as StdMutex},
    time::{Duration, SystemTime},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine;
use runtime_common::{
    capture::{GroupGuard, PIPE_GRACE, exit_code},
    error::{ApiJson, ApiQuery, AppError},
    limits::MAX_SHELL_COMMAND,
    text::Utf8Stream,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdin},
    sync::watch,
    task::JoinHandle,
};
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    AppState,
    pty::{self, Master},
    shell::{ShellExecRequest, ShellManager},
    stream::{Event, Gap, Numbered, line, ndjson_response},
};

/// Exited processes kept for their output; older ones are forgotten.
pub(crate) const KEEP_EXITED: usize = 64;
/// Bytes read from a pipe or PTY at a time (one event at most).
const READ_CHUNK: usize = 16 * 1024;
/// How long a stdin write may wait for the process to take the data.
const STDIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Event data sent per chunk of a follow stream.
const BATCH_BYTES: usize = 256 * 1024;
/// Default PTY size.
const DEFAULT_COLS: u32 = 80;
const DEFAULT_ROWS: u32 = 24;

/// The events of one process, numbered from 1, the oldest dropped once
/// their data exceeds `limit` bytes. The newest output event is always kept
/// (so the bound may be exceeded by one read, [`READ_CHUNK`]), and so is the
/// `exit` event, which has no data and comes last.
struct Scrollback {
    events: VecDeque<(u64, Event)>,
    bytes: usize,
    limit: usize,
    next_seq: u64,
}

/// What one read of the scrollback found.
struct Batch {
    /// `Some(first held seq)` when events from the asked seq on are gone.
    gap: Option<u64>,
    events: Vec<(u64, Event)>,
    next_seq: u64,
    exited: bool,
}

impl Scrollback {
    fn new(limit: usize) -> Self {
        Self { events: VecDeque::new(), bytes: 0, limit, next_seq: 1 }
    }

    fn push(&mut self, event: Event) {
        self.bytes += event.data_len();
        self.events.push_back((self.next_seq, event));
        self.next_seq += 1;
        while self.bytes > self.limit && self.events.len() > 1 {
            let front = self.events.front().map_or(0, |(_, e)| e.data_len());
            if front == self.bytes {
                // The only event with data left: the newest output.
                break;
            }
            self.bytes -= front;
            self.events.pop_front();
        }
    }

    fn first_seq(&self) -> u64 {
        self.events.front().map(|(s, _)| *s).unwrap_or(self.next_seq)
    }

    /// Events with seq ≥ `from` (≥ 1), about `max_bytes` of data at most
    /// (at least one event).
    fn read(&self, from: u64, max_bytes: usize) -> (Option<u64>, Vec<(u64, Event)>) {
        let first = self.first_seq();
        let gap = (from < first).then_some(first);
        let start = from.max(first);
        let mut out = Vec::new();
        let mut bytes = 0;
        for (seq, ev) in self.events.iter().skip((start - first) as usize) {
            if !out.is_empty() && bytes + ev.data_len() > max_bytes {
                break;
            }
            bytes += ev.data_len();
            out.push((*seq, ev.clone()));
        }
        (gap, out)
    }
}

struct ProcState {
    scroll: Scrollback,
    exit_code: Option<i32>,
    ended_at: Option<String>,
    /// Order of exit among all processes (which exited ones to forget).
    exit_order: u64,
}

/// Where stdin goes.
enum Input {
    /// `None` once closed (`eof`) or exited.
    Pipe(Option<ChildStdin>),
    /// Written to the master (`Proc::master`).
    Pty,
}

/// One background process.
pub(crate) struct Proc {
    pub id: String,
    pub pid: u32,
    pub command: String,
    pub pty: bool,
    pub started_at: String,
    state: StdMutex<ProcState>,
    /// Bumped to the next seq on every event.
    changed: watch::Sender<u64>,
    /// Serializes stdin writes.
    input: tokio::sync::Mutex<Input>,
    /// The PTY, until the process has exited.
    master: StdMutex<Option<Arc<Master>>>,
}

impl Proc {
    fn lock(&self) -> std::sync::MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn exited(&self) -> bool {
        self.lock().exit_code.is_some()
    }

    /// Adds an output event, unless the process has already exited (its
    /// `exit` event is the last one).
    fn append(&self, event: Event) {
        let next = {
            let mut st = self.lock();
            if st.exit_code.is_some() {
                return;
            }
            st.scroll.push(event);
            st.scroll.next_seq
        };
        self.changed.send_replace(next);
    }

    fn finish(&self, code: i32, exit_order: u64) {
        let next = {
            let mut st = self.lock();
            st.scroll.push(Event::Exit { exit_code: code });
            st.exit_code = Some(code);
            st.ended_at = Some(rfc3339(SystemTime::now()));
            st.exit_order = exit_order;
            st.scroll.next_seq
        };
        self.changed.send_replace(next);
    }

    fn read(&self, from: u64, max_bytes: usize) -> Batch {
        let st = self.lock();
        let (gap, events) = st.scroll.read(from, max_bytes);
        Batch { gap, events, next_seq: st.scroll.next_seq, exited: st.exit_code.is_some() }
    }

    fn next_seq(&self) -> u64 {
        self.lock().scroll.next_seq
    }

    pub(crate) fn info(&self) -> Value {
        let st = self.lock();
        json!({
            "id": self.id,
            "pid": self.pid,
            "command": self.command,
            "status": if st.exit_code.is_some() { "exited" } else { "running" },
            "exit_code": st.exit_code,
            "started_at": self.started_at,
            "ended_at": st.ended_at,
            "pty": self.pty,
        })
    }

    fn gone(&self) -> AppError {
        AppError::new(StatusCode::CONFLICT, format!("Process {} has exited", self.id))
    }

    /// Writes `data` to its stdin (then closes a pipe stdin with `eof`).
    async fn write_stdin(&self, data: &[u8], eof: bool) -> Result<(), AppError> {
        if self.exited() {
            return Err(self.gone());
        }
        let mut input = self.input.lock().await;
        let timed_out = || AppError::new(StatusCode::GATEWAY_TIMEOUT, format!("Process {} did not read its stdin within 10 s", self.id));
        match &mut *input {
            Input::Pipe(None) => {
                if self.exited() {
                    return Err(self.gone());
                }
                Err(AppError::new(StatusCode::CONFLICT, format!("The stdin of process {} is closed", self.id)))
            }
            Input::Pipe(Some(w)) => {
                let written = tokio::time::timeout(STDIN_TIMEOUT, async {
                    w.write_all(data).await?;
                    w.flush().await
                })
                .await;
                match written {
                    Err(_) => return Err(timed_out()),
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        *input = Input::Pipe(None);
                        return Err(AppError::new(StatusCode::CONFLICT, format!("Process {} no longer reads its stdin", self.id)));
                    }
                    Ok(Err(e)) => return Err(AppError::internal(format!("Failed to write to stdin: {e}"))),
                    Ok(Ok(())) => {}
                }
                if eof {
                    *input = Input::Pipe(None);
                }
                Ok(())
            }
            Input::Pty => {
                if eof {
                    return Err(AppError::bad_request("eof closes a pipe; on a terminal send \"\\u0004\" (Ctrl-D) as data"));
                }
                let master = self.master.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let Some(master) = master else { return Err(self.gone()) };
                match tokio::time::timeout(STDIN_TIMEOUT, pty::write_all(&master, data)).await {
                    Err(_) => Err(timed_out()),
                    Ok(Err(e)) => Err(AppError::internal(format!("Failed to write to the terminal: {e}"))),
                    Ok(Ok(())) => Ok(()),
                }
            }
        }
    }
}

/// `POST /processes` body.
#[derive(Debug, Deserialize)]
pub(crate) struct StartRequest {
    pub command: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: Option<HashMap<String, String>>,
    #[serde(default)]
    pub pty: bool,
    #[serde(default)]
    pub cols: Option<u32>,
    #[serde(default)]
    pub rows: Option<u32>,
}

/// The registry of background processes.
pub(crate) struct ProcessManager {
    shell: Arc<ShellManager>,
    scrollback: usize,
    /// In start order.
    procs: StdMutex<Vec<Arc<Proc>>>,
    exits: std::sync::atomic::AtomicU64,
}

impl ProcessManager {
    pub(crate) fn new(shell: Arc<ShellManager>, scrollback: usize) -> Self {
        Self { shell, scrollback, procs: StdMutex::new(Vec::new()), exits: Default::default() }
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Proc>>> {
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Result<Arc<Proc>, AppError> {
        self.procs().iter().find(|p| p.id == id).cloned().ok_or_else(|| AppError::not_found(format!("Process not found: {id}")))
    }

    pub(crate) fn list(&self) -> Vec<Value> {
        let procs: Vec<Arc<Proc>> = self.procs().clone();
        procs.iter().map(|p| p.info()).collect()
    }

    pub(crate) async fn start(self: &Arc<Self>, req: StartRequest) -> Result<Arc<Proc>, AppError> {
        if req.command.len() > MAX_SHELL_COMMAND {
            return Err(AppError::too_large(format!(
                "Command is too large ({} bytes > {MAX_SHELL_COMMAND} bytes); write it to a file and run that",
                req.command.len()
            )));
        }
        let (cols, rows) = pty::check_size(req.cols.unwrap_or(DEFAULT_COLS), req.rows.unwrap_or(DEFAULT_ROWS)).map_err(AppError::bad_request)?;
        let sreq = ShellExecRequest {
            command: req.command.clone(),
            cwd: req.cwd.clone(),
            env: req.env.clone(),
            timeout: None,
            shell: true,
            background: false,
        };
        let (mut cmd, piped) = self.shell.prepare(&sreq).await.map_err(|e| e.error)?;
        let master = if req.pty {
            let (master, slave) = pty::open(cols, rows).map_err(|e| AppError::internal(format!("Failed to open a terminal: {e}")))?;
            pty::attach(&mut cmd, &slave).map_err(|e| AppError::internal(format!("Failed to open a terminal: {e}")))?;
            if !req.env.as_ref().is_some_and(|e| e.contains_key("TERM")) {
                cmd.env("TERM", "xterm-256color");
            }
            Some(Arc::new(master))
        } else {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        };
        let spawned = cmd.spawn();
        // The child has its copies (of the PTY's slave, too: the output ends
        // when the child's are closed).
        drop(cmd);
        let mut child = spawned.map_err(|e| AppError::bad_request(format!("Failed to start command: {e}")))?;
        if let Some(p) = piped {
            p.feed();
        }
        let pid = child.id().unwrap_or(0);
        let guard = self.shell.track(pid as i32, false);
        let (changed, _) = watch::channel(1);
        let input = match child.stdin.take() {
            Some(w) => Input::Pipe(Some(w)),
            None if req.pty => Input::Pty,
            None => Input::Pipe(None),
        };
        let proc = Arc::new(Proc {
            id: Uuid::new_v4().simple().to_string()[..12].to_string(),
            pid,
            command: req.command,
            pty: req.pty,
            started_at: rfc3339(SystemTime::now()),
            state: StdMutex::new(ProcState { scroll: Scrollback::new(self.scrollback), exit_code: None, ended_at: None, exit_order: 0 }),
            changed,
            input: tokio::sync::Mutex::new(input),
            master: StdMutex::new(master.clone()),
        });
        let mut readers = Vec::new();
        if let Some(m) = master {
            readers.push(tokio::spawn(read_pty(proc.clone(), m)));
        }
        if let Some(o) = child.stdout.take() {
            readers.push(tokio::spawn(read_pipe(proc.clone(), o, false)));
        }
        if let Some(e) = child.stderr.take() {
            readers.push(tokio::spawn(read_pipe(proc.clone(), e, true)));
        }
        self.procs().push(proc.clone());
        tokio::spawn(self.clone().supervise(proc.clone(), child, readers, guard));
        info!(pid, id = %proc.id, pty = proc.pty, command = %proc.command, "background process started");
        Ok(proc)
    }

    async fn supervise(self: Arc<Self>, proc: Arc<Proc>, mut child: Child, mut readers: Vec<JoinHandle<()>>, guard: GroupGuard) {
        let code = match child.wait().await {
            Ok(st) => exit_code(&st),
            Err(e) => {
                warn!(id = %proc.id, error = %e, "cannot wait for a background process");
                -1
            }
        };
        let _ = tokio::time::timeout(PIPE_GRACE, futures::future::join_all(readers.iter_mut())).await;
        if proc.pty {
            // Closing the master hangs up what still holds the terminal.
            for r in &readers {
                r.abort();
            }
            *proc.master.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let order = self.exits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        proc.finish(code, order);
        drop(guard);
        {
            let mut input = proc.input.lock().await;
            if let Input::Pipe(w) = &mut *input {
                *w = None;
            }
        }
        info!(id = %proc.id, exit_code = code, "background process exited");
        self.forget_old();
    }

    /// Keeps the last [`KEEP_EXITED`] exited processes.
    fn forget_old(&self) {
        let mut procs = self.procs();
        let mut exited: Vec<u64> = procs
            .iter()
            .filter_map(|p| {
                let s = p.lock();
                s.exit_code.map(|_| s.exit_order)
            })
            .collect();
        if exited.len() <= KEEP_EXITED {
            return;
        }
        exited.sort_unstable();
        let cutoff = exited[exited.len() - KEEP_EXITED];
        procs.retain(|p| {
            let s = p.lock();
            s.exit_code.is_none() || s.exit_order >= cutoff
        });
    }
}

/// Appends a pipe's output as `stdout`/`stderr` events.
async fn read_pipe<R: AsyncRead + Unpin>(proc: Arc<Proc>, mut r: R, stderr: bool) {
    let event = |data: String| if stderr { Event::Stderr { data } } else { Event::Stdout { data } };
    let mut dec = Utf8Stream::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let text = dec.decode(&buf[..n]);
                if !text.is_empty() {
                    proc.append(event(text));
                }
            }
        }
    }
    let rest = dec.finish();
    if !rest.is_empty() {
        proc.append(event(rest));
    }
}

/// Appends a terminal's output as `pty` events.
async fn read_pty(proc: Arc<Proc>, master: Arc<Master>) {
    let mut dec = Utf8Stream::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match pty::read(&master, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = dec.decode(&buf[..n]);
                if !data.is_empty() {
                    proc.append(Event::Pty { data });
                }
            }
        }
    }
    let data = dec.finish();
    if !data.is_empty() {
        proc.append(Event::Pty { data });
    }
}

/// `POST /processes`.
pub(crate) async fn start_handler(State(st): State<AppState>, ApiJson(req): ApiJson<StartRequest>) -> Result<Response, AppError> {
    let p = st.processes.start(req).await?;
    let body = json!({
        "id": p.id,
        "pid": p.pid,
        "command": p.command,
        "status": "running",
        "pty": p.pty,
        "started_at": p.started_at,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /processes`.
pub(crate) async fn list_handler(State(st): State<AppState>) -> Json<Value> {
    Json(json!({ "processes": st.processes.list() }))
}

/// `GET /processes/{id}`.
pub(crate) async fn get_handler(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    Ok(Json(st.processes.get(&id)?.info()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OutputQuery {
    #[serde(default)]
    from_seq: u64,
    #[serde(default)]
    follow: bool,
}

/// The lines of a batch: a `gap` event first when events were lost.
fn batch_lines(b: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(first_seq) = b.gap {
        out.extend_from_slice(&line(&Gap::new(first_seq)));
    }
    for (seq, event) in &b.events {
        out.extend_from_slice(&line(&Numbered { seq: *seq, event }));
    }
    out
}

/// `GET /processes/{id}/output?from_seq=N&follow=true|false`.
pub(crate) async fn output_handler(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<OutputQuery>,
) -> Result<Response, AppError> {
    let proc = st.processes.get(&id)?;
    let from = q.from_seq.max(1);
    let next = proc.next_seq();
    if from > next {
        return Err(AppError::bad_request(format!("from_seq {} is beyond the next seq {next}", q.from_seq)));
    }
    if !q.follow {
        let b = proc.read(from, usize::MAX);
        let mut events = Vec::new();
        if let Some(first_seq) = b.gap {
            events.push(serde_json::to_value(Gap::new(first_seq)).unwrap_or_default());
        }
        for (seq, event) in &b.events {
            events.push(serde_json::to_value(Numbered { seq: *seq, event }).unwrap_or_default());
        }
        let status = if b.exited { "exited" } else { "running" };
        return Ok(Json(json!({"events": events, "next_seq": b.next_seq, "status": status})).into_response());
    }
    Ok(ndjson_response(follow(proc, from)))
}

/// The NDJSON lines of `proc`'s events from seq `from` on, live, until its
/// exit event; a `gap` event wherever the scrollback lost events first.
fn follow(proc: Arc<Proc>, from: u64) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    struct Follow {
        proc: Arc<Proc>,
        cursor: u64,
        rx: watch::Receiver<u64>,
        done: bool,
    }
    let rx = proc.changed.subscribe();
    let start = Follow { proc, cursor: from, rx, done: false };
    futures::stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            // Marked seen before reading: an event appended from here on
            // wakes the wait below.
            f.rx.borrow_and_update();
            let b = f.proc.read(f.cursor, BATCH_BYTES);
            if let Some((last, _)) = b.events.last() {
                f.cursor = last + 1;
                f.done = b.events.iter().any(|(_, e)| matches!(e, Event::Exit { .. }));
                return Some((Bytes::from(batch_lines(&b)), f));
            }
            if b.exited || f.rx.changed().await.is_err() {
                return None;
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct StdinRequest {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(default)]
    eof: bool,
}

/// `POST /processes/{id}/stdin`.
pub(crate) async fn stdin_handler(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StdinRequest>,
) -> Result<Json<Value>, AppError> {
    let proc = st.processes.get(&id)?;
    let data = match (req.data, req.data_base64) {
        (Some(_), Some(_)) => return Err(AppError::bad_request("Give data or data_base64, not both")),
        (Some(d), None) => d.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| AppError::bad_request(format!("data_base64 is not base64: {e}")))?,
        (None, None) => Vec::new(),
    };
    proc.write_stdin(&data, req.eof).await?;
    Ok(Json(json!({"success": true, "bytes": data.len()})))
}

/// Signal names accepted by `/processes/{id}/signal`.
const SIGNALS: &[(&str, libc::c_int)] = &[
    ("INT", libc::SIGINT),
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("HUP", libc::SIGHUP),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
    ("QUIT", libc::SIGQUIT),
    ("WINCH", libc::SIGWINCH),
];

fn parse_signal(v: &Value) -> Result<libc::c_int, AppError> {
    let bad = || {
        AppError::bad_request(format!("Unknown signal {v}; use one of INT, TERM, KILL, HUP, USR1, USR2, STOP, CONT, QUIT, WINCH or a number 1..=64"))
    };
    match v {
        Value::Number(n) => n.as_i64().filter(|n| (1..=64).contains(n)).map(|n| n as libc::c_int).ok_or_else(bad),
        Value::String(s) => {
            let name = s.trim().to_ascii_uppercase();
            let name = name.strip_prefix("SIG").unwrap_or(&name);
            SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignalRequest {
    signal: Value,
}

/// `POST /processes/{id}/signal`: to the whole process group.
pub(crate) async fn signal_handler(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SignalRequest>,
) -> Result<Json<Value>, AppError> {
    let proc = st.processes.get(&id)?;
    let sig = parse_signal(&req.signal)?;
    if proc.exited() || proc.pid <= 1 {
        return Err(proc.gone());
    }
    // SAFETY: plain syscall; a negative pid addresses the process group.
    if unsafe { libc::kill(-(proc.pid as i32), sig) } == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Err(proc.gone());
        }
        return Err(AppError::internal(format!("Failed to signal process {id}: {e}")));
    }
    Ok(Json(json!({"success": true, "signal": sig})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResizeRequest {
    cols: u32,
    rows: u32,
}

/// `POST /processes/{id}/resize`.
pub(crate) async fn resize_handler(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResizeRequest>,
) -> Result<Json<Value>, AppError> {
    let proc = st.processes.get(&id)?;
    let (cols, rows) = pty::check_size(req.cols, req.rows).map_err(AppError::bad_request)?;
    if !proc.pty {
        return Err(AppError::bad_request(format!("Process {id} has no terminal (it was started without pty)")));
    }
    let master = proc.master.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(master) = master else { return Err(proc.gone()) };
    pty::resize(&master, cols, rows).map_err(|e| AppError::internal(format!("Failed to resize the terminal: {e}")))?;
    Ok(Json(json!({"success": true, "cols": cols, "rows": rows})))
}

/// `t` as RFC 3339 UTC with milliseconds (`2025-01-31T12:00:00.000Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Answer, call, request, serve, state, until};
    use runtime_common::token::RuntimeToken;
    use std::net::SocketAddr;

    async fn server(vars: &[(&str, &str)]) -> (tempfile::TempDir, SocketAddr) {
        let d = tempfile::tempdir().unwrap();
        let addr = serve(state(d.path(), vars), RuntimeToken::default()).await;
        (d, addr)
    }

    async fn start(addr: SocketAddr, body: Value) -> String {
        let (s, v) = call(addr, "POST", "/processes", Some(body.clone())).await;
        assert_eq!(s, 201, "{body}: {v}");
        assert_eq!((v["status"].as_str(), v["command"].as_str()), (Some("running"), body["command"].as_str()));
        assert!(v["pid"].as_u64().unwrap() > 1 && v["started_at"].as_str().unwrap().ends_with('Z'));
        v["id"].as_str().unwrap().to_string()
    }

    async fn output(addr: SocketAddr, id: &str, from: u64) -> Value {
        let (s, v) = call(addr, "GET", &format!("/processes/{id}/output?from_seq={from}&follow=false"), None).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    fn text(events: &[Value]) -> String {
        events.iter().filter_map(|e| e["data"].as_str()).collect()
    }

    /// Reads a follow stream until its text contains `want`.
    async fn read_until(a: &mut Answer, want: &str) -> Vec<Value> {
        let mut got = Vec::new();
        while !text(&got).contains(want) {
            match a.event().await {
                Some(e) => got.push(e),
                None => panic!("the stream ended before {want:?}: {got:?}"),
            }
        }
        got
    }

    async fn signal(addr: SocketAddr, id: &str, sig: Value) -> (u16, Value) {
        call(addr, "POST", &format!("/processes/{id}/signal"), Some(json!({"signal": sig}))).await
    }

    #[tokio::test]
    async fn output_is_kept_for_readers_that_come_later() {
        let (_d, addr) = server(&[]).await;
        let cmd = "for i in $(seq 1 50); do echo line$i; done; echo oops >&2; exec sleep 300";
        let id = start(addr, json!({"command": cmd})).await;
        // The client that started it is gone; a new one reads from seq 0.
        until("all output", || async {
            let v = output(addr, &id, 0).await;
            v["events"].as_array().unwrap().iter().any(|e| e["data"] == "oops\n")
        })
        .await;
        let v = output(addr, &id, 0).await;
        let events = v["events"].as_array().unwrap();
        assert_eq!(v["status"], "running");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["seq"], json!(i + 1));
        }
        assert_eq!(v["next_seq"], json!(events.len() + 1));
        let stdout: String = events.iter().filter(|e| e["type"] == "stdout").map(|e| e["data"].as_str().unwrap()).collect();
        let want: String = (1..=50).map(|i| format!("line{i}\n")).collect();
        assert_eq!(stdout, want);
        // from_seq 1 is the same as 0; a later one skips what came before.
        assert_eq!(output(addr, &id, 1).await, v);
        let tail = output(addr, &id, events.len() as u64).await;
        assert_eq!(tail["events"], json!([events.last().unwrap()]));
        // Listed, and described alone.
        let (_, list) = call(addr, "GET", "/processes", None).await;
        let mine = list["processes"].as_array().unwrap().iter().find(|p| p["id"] == json!(id)).unwrap().clone();
        assert_eq!(
            (mine["status"].as_str(), &mine["exit_code"], &mine["ended_at"], &mine["pty"]),
            (Some("running"), &json!(null), &json!(null), &json!(false))
        );
        assert_eq!(call(addr, "GET", &format!("/processes/{id}"), None).await, (200, mine));
        // Following from the next seq: TERM ends it, the exit event ends the stream.
        let next = v["next_seq"].as_u64().unwrap();
        let mut a = request(addr, "GET", &format!("/processes/{id}/output?from_seq={next}&follow=true"), None).await;
        assert_eq!((a.status, a.content_type.as_str()), (200, crate::stream::NDJSON));
        assert_eq!(signal(addr, &id, json!("TERM")).await.0, 200);
        assert_eq!(a.events().await, [json!({"seq": next, "type": "exit", "exit_code": -15})]);
        let (_, info) = call(addr, "GET", &format!("/processes/{id}"), None).await;
        assert_eq!((info["status"].as_str(), info["exit_code"].as_i64()), (Some("exited"), Some(-15)));
        assert!(info["ended_at"].as_str().unwrap() >= info["started_at"].as_str().unwrap());
        // After the exit, its output can still be read; following ends at once.
        assert_eq!(output(addr, &id, 0).await["status"], "exited");
        let mut a = request(addr, "GET", &format!("/processes/{id}/output?from_seq={}&follow=true", next + 1), None).await;
        assert!(a.events().await.is_empty());
        assert_eq!(signal(addr, &id, json!("TERM")).await.0, 409);
    }

    #[tokio::test]
    async fn stdin_reaches_the_process_live() {
        let (_d, addr) = server(&[]).await;
        let id = start(addr, json!({"command": "cat; echo bye"})).await;
        let mut a = request(addr, "GET", &format!("/processes/{id}/output?from_seq=0&follow=true"), None).await;
        let path = format!("/processes/{id}/stdin");
        let stdin = |body: Value| call(addr, "POST", &path, Some(body));
        assert_eq!(stdin(json!({"data": "hello\n"})).await, (200, json!({"success": true, "bytes": 6})));
        assert_eq!(read_until(&mut a, "hello\n").await, [json!({"seq": 1, "type": "stdout", "data": "hello\n"})]);
        // base64 (any bytes), then end of input: cat ends, the script goes on.
        assert_eq!(stdin(json!({"data_base64": "d29ybGQK", "eof": true})).await.0, 200);
        let rest = a.events().await;
        assert_eq!(text(&rest), "world\nbye\n");
        assert_eq!(rest.last().unwrap()["type"], "exit");
        assert_eq!(rest.last().unwrap()["exit_code"], 0);
        assert_eq!(stdin(json!({"data": "late"})).await.0, 409);
        assert_eq!(stdin(json!({"data": "x", "data_base64": "eA=="})).await.0, 400);
    }

    #[tokio::test]
    async fn signals_go_to_the_process_group() {
        let (_d, addr) = server(&[]).await;
        // INT, to a shell waiting for its child: both are in the group.
        let id = start(addr, json!({"command": "sleep 300; echo not reached"})).await;
        assert_eq!(signal(addr, &id, json!("SIGINT")).await, (200, json!({"success": true, "signal": 2})));
        until("exit", || async { output(addr, &id, 0).await["status"] == "exited" }).await;
        let events = output(addr, &id, 0).await["events"].clone();
        assert_eq!(events, json!([{"seq": 1, "type": "exit", "exit_code": -2}]));
        let id = start(addr, json!({"command": "exec sleep 300"})).await;
        assert_eq!(signal(addr, &id, json!("nope")).await.0, 400);
        assert_eq!(signal(addr, &id, json!(0)).await.0, 400);
        assert_eq!(signal(addr, &id, json!(15)).await.0, 200);
        until("exit", || async { output(addr, &id, 0).await["status"] == "exited" }).await;
        assert_eq!(output(addr, &id, 0).await["events"][0]["exit_code"], -15);
    }

    #[tokio::test]
    async fn scrollback_overflow_is_a_gap() {
        let (_d, addr) = server(&[("SHIP_SCROLLBACK_BYTES", "1000")]).await;
        // 100 KB: more than one read, whatever the timing.
        let id = start(addr, json!({"command": "for i in $(seq 10000 19999); do echo line$i; done"})).await;
        until("exit", || async { output(addr, &id, 0).await["status"] == "exited" }).await;
        let v = output(addr, &id, 0).await;
        let events = v["events"].as_array().unwrap();
        let first = events[1]["seq"].as_u64().unwrap();
        assert!(first > 1, "{v}");
        assert_eq!(events[0], json!({"type": "gap", "first_seq": first}));
        // What is kept is the newest, within the bound, and ends with the exit.
        let kept = text(events);
        assert!(kept.len() <= 1000 + READ_CHUNK && kept.ends_with("line19999\n"), "{kept}");
        assert_eq!(events.last().unwrap(), &json!({"seq": v["next_seq"].as_u64().unwrap() - 1, "type": "exit", "exit_code": 0}));
        // The same in a follow stream; from the first held seq, no gap.
        let mut a = request(addr, "GET", &format!("/processes/{id}/output?follow=true&from_seq=1"), None).await;
        assert_eq!(&a.events().await, events);
        assert_eq!(output(addr, &id, first).await["events"].as_array().unwrap()[..], events[1..]);
        // Beyond the next seq: 400 naming both.
        let next = v["next_seq"].as_u64().unwrap();
        let (s, e) = call(addr, "GET", &format!("/processes/{id}/output?from_seq={}", next + 5), None).await;
        assert_eq!((s, e["detail"].as_str().unwrap()), (400, format!("from_seq {} is beyond the next seq {next}", next + 5).as_str()));
        let (s, _) = call(addr, "GET", &format!("/processes/{id}/output?from_seq={next}"), None).await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn unknown_ids_and_bad_requests() {
        let (_d, addr) = server(&[]).await;
        for (method, path, body) in [
            ("GET", "/processes/nope", None),
            ("GET", "/processes/nope/output", None),
            ("GET", "/processes/nope/output?follow=true", None),
            ("POST", "/processes/nope/stdin", Some(json!({"data": "x"}))),
            ("POST", "/processes/nope/signal", Some(json!({"signal": "INT"}))),
            ("POST", "/processes/nope/resize", Some(json!({"cols": 80, "rows": 24}))),
        ] {
            let (s, v) = call(addr, method, path, body).await;
            assert_eq!((s, v["detail"].as_str()), (404, Some("Process not found: nope")), "{method} {path}");
        }
        let (s, v) = call(addr, "POST", "/processes", Some(json!({"command": "pwd", "cwd": "../"}))).await;
        assert_eq!((s, v["detail"].as_str()), (403, Some("Access denied: path outside workspace")));
        let (s, _) = call(addr, "POST", "/processes", Some(json!({"command": "pwd", "cwd": "missing"}))).await;
        assert_eq!(s, 400);
        let (s, _) = call(addr, "POST", "/processes", Some(json!({"command": "true", "pty": true, "cols": 0}))).await;
        assert_eq!(s, 400);
        let id = start(addr, json!({"command": "exec sleep 300"})).await;
        let (s, _) = call(addr, "POST", &format!("/processes/{id}/resize"), Some(json!({"cols": 80, "rows": 24}))).await;
        assert_eq!(s, 400);
        assert_eq!(signal(addr, &id, json!("KILL")).await.0, 200);
    }

    #[tokio::test]
    async fn pty_processes_see_their_terminal() {
        let (_d, addr) = server(&[]).await;
        let cmd = "stty size; read a; stty size; read b; echo \"TERM=$TERM tty=$(tty)\"";
        let id = start(addr, json!({"command": cmd, "pty": true, "cols": 90, "rows": 20})).await;
        let mut a = request(addr, "GET", &format!("/processes/{id}/output?follow=true"), None).await;
        let first = read_until(&mut a, "20 90\r\n").await;
        assert!(first.iter().all(|e| e["type"] == "pty"), "{first:?}");
        let (s, v) = call(addr, "POST", &format!("/processes/{id}/resize"), Some(json!({"cols": 100, "rows": 30}))).await;
        assert_eq!((s, v), (200, json!({"success": true, "cols": 100, "rows": 30})));
        let path = format!("/processes/{id}/stdin");
        let stdin = |data: &str| call(addr, "POST", &path, Some(json!({"data": data})));
        assert_eq!(stdin("\n").await.0, 200);
        read_until(&mut a, "30 100\r\n").await;
        assert_eq!(call(addr, "POST", &format!("/processes/{id}/stdin"), Some(json!({"data": "", "eof": true}))).await.0, 400);
        assert_eq!(stdin("\n").await.0, 200);
        let rest = a.events().await;
        assert!(text(&rest).contains("TERM=xterm-256color tty=/dev/pts/"), "{rest:?}");
        assert_eq!(rest.last().unwrap()["exit_code"], 0);
        let (s, _) = call(addr, "POST", &format!("/processes/{id}/resize"), Some(json!({"cols": 80, "rows": 24}))).await;
        assert_eq!(s, 409);
    }

    #[tokio::test]
    async fn only_the_last_exited_processes_are_kept() {
        let (_d, addr) = server(&[]).await;
        let running = start(addr, json!({"command": "exec sleep 300"})).await;
        let mut ids = Vec::new();
        for i in 0..KEEP_EXITED + 3 {
            ids.push(start(addr, json!({"command": format!("exit {}", i % 7)})).await);
            // One at a time, so the order of exit is the order of start.
            let id = ids.last().unwrap().clone();
            until("exit", || async { call(addr, "GET", &format!("/processes/{id}"), None).await.1["status"] == "exited" }).await;
        }
        let (_, list) = call(addr, "GET", "/processes", None).await;
        let listed: Vec<&str> = list["processes"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        let mut want = vec![running.as_str()];
        want.extend(ids[3..].iter().map(String::as_str));
        assert_eq!(listed, want);
        assert_eq!(call(addr, "GET", &format!("/processes/{}", ids[0]), None).await.0, 404);
        assert_eq!(signal(addr, &running, json!("KILL")).await.0, 200);
    }

    #[test]
    fn scrollback_drops_the_oldest_first() {
        let out = |s: &str| Event::Stdout { data: s.into() };
        let mut sb = Scrollback::new(10);
        for s in ["aaaa", "bbbb", "cccc"] {
            sb.push(out(s));
        }
        assert_eq!((sb.first_seq(), sb.bytes, sb.next_seq), (2, 8, 4));
        let (gap, events) = sb.read(1, usize::MAX);
        assert_eq!((gap, events.iter().map(|(s, _)| *s).collect::<Vec<_>>()), (Some(2), vec![2, 3]));
        assert_eq!(sb.read(3, usize::MAX), (None, vec![(3, out("cccc"))]));
        // At most about max_bytes per read, at least one event.
        assert_eq!(sb.read(2, 5).1.len(), 1);
        assert_eq!(sb.read(2, 0).1.len(), 1);
        // An event larger than the bound stays while it is the newest output,
        // and the exit event does not push it out.
        sb.push(out(&"x".repeat(50)));
        sb.push(Event::Exit { exit_code: 0 });
        assert_eq!(sb.read(0, usize::MAX), (Some(4), vec![(4, out(&"x".repeat(50))), (5, Event::Exit { exit_code: 0 })]));
    }

    /// A follower that falls behind the scrollback is told where it lost
    /// events, then goes on live.
    #[tokio::test]
    async fn a_slow_follower_gets_a_gap() {
        use futures::StreamExt;
        let proc = Arc::new(Proc {
            id: "t".into(),
            pid: 0,
            command: "test".into(),
            pty: false,
            started_at: rfc3339(SystemTime::now()),
            state: StdMutex::new(ProcState { scroll: Scrollback::new(10), exit_code: None, ended_at: None, exit_order: 0 }),
            changed: watch::channel(1).0,
            input: tokio::sync::Mutex::new(Input::Pipe(None)),
            master: StdMutex::new(None),
        });
        let lines =
            |b: Bytes| -> Vec<Value> { b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect() };
        let out = |s: &str| Event::Stdout { data: s.into() };
        let mut f = Box::pin(follow(proc.clone(), 1));
        proc.append(out("first"));
        assert_eq!(lines(f.next().await.unwrap()), [json!({"seq": 1, "type": "stdout", "data": "first"})]);
        // While it is not reading, seqs 2..=4 come (10 bytes are kept): 2 goes.
        for s in ["aaaaa", "bbbbb", "ccccc"] {
            proc.append(out(s));
        }
        assert_eq!(
            lines(f.next().await.unwrap()),
            [
                json!({"type": "gap", "first_seq": 3}),
                json!({"seq": 3, "type": "stdout", "data": "bbbbb"}),
                json!({"seq": 4, "type": "stdout", "data": "ccccc"})
            ]
        );
        // Live again: a wait, then the exit event ends the stream.
        let waiting = tokio::spawn(async move { (lines(f.next().await.unwrap()), f.next().await.is_none()) });
        tokio::task::yield_now().await;
        proc.finish(3, 0);
        assert_eq!(waiting.await.unwrap(), (vec![json!({"seq": 5, "type": "exit", "exit_code": 3})], true));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
    }
}
