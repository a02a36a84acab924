//! Live exec: streamed `shell/exec` and `python/exec` (Server-Sent Events),
//! background processes with resumable output, and the terminal (a
//! WebSocket). The session's adapter maps each operation onto a request on
//! its runtime (`crate::sandbox::live`); Bay sends it and pumps the bytes
//! (`crate::live`).
//!
//! SSE: every event carries the runtime's `seq` as its `id` and its `type`
//! as the event name, the runtime event as JSON data. A streamed exec ends
//! with an event `result` whose data is exactly the JSON answer of the
//! non-streamed call (history row included). Closing a streamed exec cancels
//! it (the runtime kills the command or interrupts the cell). Process
//! output resumes: `Last-Event-ID: N` (or `from_seq=N+1`) replays from
//! event N+1 out of the runtime's scrollback, then follows live; when the
//! scrollback no longer holds it, the first event is `gap` with `first_seq`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::AppState;
use super::exec::{PythonBody, ShellBody, finish_python, finish_shell};
use super::extract::{Owner, parse_body, parse_query};
use crate::adapter::{LiveOp, PythonExecResult, ShellExecResult};
use crate::config::ProfileConfig;
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};
use crate::paths::validate_relative_path;
use crate::sandbox::live::LiveTarget;

/// The output a streamed shell call keeps for its answer and history (the
/// runtime caps its own streams at the same size).
const MAX_KEPT: usize = 8 << 20;

/// Whether the client asked for Server-Sent Events.
pub(super) fn wants_stream(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/event-stream"))
}

/// An SSE event for one runtime event.
fn event(v: &Value) -> Event {
    let mut e = Event::default().event(v["type"].as_str().unwrap_or("message")).data(v.to_string());
    if let Some(seq) = v["seq"].as_u64() {
        e = e.id(seq.to_string());
    }
    e
}

/// The final event of a streamed exec: the JSON answer, with the last id.
fn result_event(seq: Option<u64>, answer: &impl serde::Serialize) -> Event {
    let mut e = Event::default().event("result").data(serde_json::to_string(answer).unwrap_or_default());
    if let Some(seq) = seq {
        e = e.id(seq.to_string());
    }
    e
}

fn error_event(err: &BayError) -> Event {
    Event::default().event("error").data(err.envelope(None).to_string())
}

/// Answers with the events a pump task sends; the task ends (and the runtime
/// request with it) when the client goes away.
fn sse(rx: mpsc::Receiver<Event>) -> Response {
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The runtime's next event; None at its end or once the client has gone
/// (the caller then drops the runtime request, which cancels the work).
async fn next_event<S: futures::Stream + Unpin>(events: &mut S, tx: &mpsc::Sender<Event>) -> Option<S::Item> {
    tokio::select! {
        ev = events.next() => ev,
        _ = tx.closed() => None,
    }
}

/// Text kept up to a cap.
#[derive(Default)]
struct Kept(String);

impl Kept {
    fn push(&mut self, s: &str) {
        let room = MAX_KEPT.saturating_sub(self.0.len());
        let mut cut = s.len().min(room);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.0.push_str(&s[..cut]);
    }
}

/// Pumps a streamed exec: every runtime event goes out as SSE until the one
/// `on_event` answers with the final answer's future (given the session id);
/// that answer is the last event, `result`.
async fn stream_exec<F, Fut, A>(state: &AppState, sandbox: &Sandbox, profile: &ProfileConfig, op: LiveOp, mut on_event: F) -> BayResult<Response>
where
    F: FnMut(&Value, &str) -> Option<Fut> + Send + 'static,
    Fut: std::future::Future<Output = BayResult<A>> + Send,
    A: serde::Serialize,
{
    let target = state.sandboxes.live(sandbox, profile, op).await?;
    let resp = crate::live::send(&target.link, &target.request, None).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let session_id = target.session_id.clone();
        let _in_use: LiveTarget = target;
        let mut events = Box::pin(crate::live::events(resp));
        while let Some(ev) = next_event(&mut events, &tx).await {
            let v = match ev {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(error_event(&e)).await;
                    return;
                }
            };
            if let Some(answer) = on_event(&v, &session_id) {
                let final_event = match answer.await {
                    Ok(answer) => result_event(v["seq"].as_u64(), &answer),
                    Err(e) => error_event(&e),
                };
                let _ = tx.send(final_event).await;
                return;
            }
            if tx.send(event(&v)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(error_event(&BayError::ship("the runtime's stream ended without its final event"))).await;
    });
    Ok(sse(rx))
}

pub(super) async fn shell(
    state: AppState,
    sandbox: Sandbox,
    profile: ProfileConfig,
    body: ShellBody,
    cwd: Option<String>,
    started: Instant,
) -> BayResult<Response> {
    let op = LiveOp::ShellStream { command: body.command.clone(), timeout_s: body.timeout as u32, cwd };
    let (mut stdout, mut stderr) = (Kept::default(), Kept::default());
    let (st, sb, mut body) = (state.clone(), sandbox.clone(), Some(body));
    stream_exec(&state, &sandbox, &profile, op, move |v, session_id| {
        match v["type"].as_str() {
            Some("stdout") => stdout.push(v["data"].as_str().unwrap_or_default()),
            Some("stderr") => stderr.push(v["data"].as_str().unwrap_or_default()),
            Some("exit") => {
                let r = ShellExecResult {
                    success: v["success"].as_bool().unwrap_or(v["exit_code"] == 0),
                    exit_code: v["exit_code"].as_i64().map(|c| c as i32),
                    // As the non-streamed answer: Shipyard Neo's shell
                    // contract trims stdout (runtimes/ship/src/shell.rs).
                    stdout: stdout.0.trim().to_owned(),
                    stderr: std::mem::take(&mut stderr.0),
                    error: v["error"].as_str().map(str::to_owned),
                };
                let (st, sb, body, session_id) = (st.clone(), sb.clone(), body.take()?, session_id.to_owned());
                return Some(async move { finish_shell(&st, &sb, session_id, body, r, started).await });
            }
            _ => {}
        }
        None
    })
    .await
}

/// The runtime's final `result` event as a Python result (the fields of
/// Ship's `/ipython/exec` answer).
fn python_result(v: &Value) -> PythonExecResult {
    let images = v["output"]["images"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.iter().filter_map(|(mime, data)| Some((mime.clone(), data.as_str()?.to_owned()))))
                .collect()
        })
        .unwrap_or_default();
    PythonExecResult {
        success: v["success"].as_bool().unwrap_or(false),
        execution_count: v["execution_count"].as_i64(),
        text: v["output"]["text"].as_str().unwrap_or_default().to_owned(),
        images,
        error: v["error"].as_str().map(str::to_owned),
    }
}

pub(super) async fn python(state: AppState, sandbox: Sandbox, profile: ProfileConfig, body: PythonBody, started: Instant) -> BayResult<Response> {
    let op = LiveOp::PythonStream { code: body.code.clone(), timeout_s: body.timeout as u32 };
    let (st, sb, mut body) = (state.clone(), sandbox.clone(), Some(body));
    stream_exec(&state, &sandbox, &profile, op, move |v, session_id| {
        if v["type"] != "result" {
            return None;
        }
        let (st, sb, body, session_id, r) = (st.clone(), sb.clone(), body.take()?, session_id.to_owned(), python_result(v));
        Some(async move { finish_python(&st, &sb, session_id, body, r, started).await })
    })
    .await
}

// ---- background processes -----------------------------------------------

async fn target(state: &AppState, owner: &str, id: &str) -> BayResult<(Sandbox, ProfileConfig)> {
    super::sandbox_for(state, owner, id, "shell").await
}

/// Performs a live operation answered with JSON; the runtime's status is kept.
async fn json_op(state: &AppState, owner: &str, id: &str, op: impl FnOnce() -> BayResult<LiveOp>) -> BayResult<Response> {
    let (sandbox, profile) = target(state, owner, id).await?;
    let op = op()?;
    let t = state.sandboxes.live(&sandbox, &profile, op).await?;
    let (status, v) = crate::live::json(&t.link, &t.request).await?;
    Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(v)).into_response())
}

/// A process id as runtimes hand them out; anything else cannot exist.
fn check_pid(pid: &str) -> BayResult<()> {
    if pid.is_empty() || pid.len() > 64 || !pid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(BayError::not_found(format!("Process not found: {pid}")));
    }
    Ok(())
}

fn u16_in(v: Option<i64>, default: u16, field: &str) -> BayResult<u16> {
    let v = v.unwrap_or(i64::from(default));
    super::extract::check_range(v, 1, 1000, &["body", field])?;
    Ok(v as u16)
}

#[derive(Deserialize)]
struct StartBody {
    command: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pty: bool,
    #[serde(default)]
    cols: Option<i64>,
    #[serde(default)]
    rows: Option<i64>,
}

/// `POST /v1/sandboxes/{id}/processes`: starts a command; answers its id at once.
pub async fn start(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Response> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let b: StartBody = parse_body(&body)?;
    super::limits::check_field("command", b.command.len(), "shell_command_bytes", state.limits.shell_command_bytes)?;
    let cwd = b.cwd.as_deref().map(|c| validate_relative_path(c, "cwd")).transpose()?;
    let op = LiveOp::ProcessStart {
        command: b.command,
        cwd,
        env: b.env.into_iter().collect(),
        pty: b.pty,
        cols: u16_in(b.cols, 80, "cols")?,
        rows: u16_in(b.rows, 24, "rows")?,
    };
    let t = state.sandboxes.live(&sandbox, &profile, op).await?;
    let (_, v) = crate::live::json(&t.link, &t.request).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /v1/sandboxes/{id}/processes`.
pub async fn list(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Response> {
    json_op(&state, &owner, &id, || Ok(LiveOp::ProcessList)).await
}

/// `GET /v1/sandboxes/{id}/processes/{pid}`.
pub async fn get(State(state): State<AppState>, Owner(owner): Owner, Path((id, pid)): Path<(String, String)>) -> BayResult<Response> {
    check_pid(&pid)?;
    json_op(&state, &owner, &id, || Ok(LiveOp::ProcessGet { id: pid })).await
}

#[derive(Deserialize)]
struct StdinBody {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(default)]
    eof: bool,
}

/// `POST …/processes/{pid}/stdin` `{data | data_base64, eof?}`.
pub async fn stdin(State(state): State<AppState>, Owner(owner): Owner, Path((id, pid)): Path<(String, String)>, body: Bytes) -> BayResult<Response> {
    check_pid(&pid)?;
    let b: StdinBody = parse_body(&body)?;
    json_op(&state, &owner, &id, || {
        let data = match (b.data, b.data_base64) {
            (Some(_), Some(_)) => return Err(BayError::validation("give either data or data_base64, not both")),
            (Some(d), None) => d.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| BayError::request_validation(&["body", "data_base64"], format!("not base64: {e}"), "value_error"))?,
            (None, None) => Vec::new(),
        };
        Ok(LiveOp::ProcessStdin { id: pid, data, eof: b.eof })
    })
    .await
}

#[derive(Deserialize)]
struct SignalBody {
    signal: Value,
}

/// `POST …/processes/{pid}/signal` `{signal: "INT" | "TERM" | … | number}`.
pub async fn signal(State(state): State<AppState>, Owner(owner): Owner, Path((id, pid)): Path<(String, String)>, body: Bytes) -> BayResult<Response> {
    check_pid(&pid)?;
    let b: SignalBody = parse_body(&body)?;
    let signal = match &b.signal {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(BayError::request_validation(&["body", "signal"], "a signal name or number", "value_error")),
    };
    json_op(&state, &owner, &id, || Ok(LiveOp::ProcessSignal { id: pid, signal })).await
}

#[derive(Deserialize)]
struct ResizeBody {
    cols: i64,
    rows: i64,
}

/// `POST …/processes/{pid}/resize` `{cols, rows}` (PTY processes).
pub async fn resize(State(state): State<AppState>, Owner(owner): Owner, Path((id, pid)): Path<(String, String)>, body: Bytes) -> BayResult<Response> {
    check_pid(&pid)?;
    let b: ResizeBody = parse_body(&body)?;
    let (cols, rows) = (u16_in(Some(b.cols), 80, "cols")?, u16_in(Some(b.rows), 24, "rows")?);
    json_op(&state, &owner, &id, || Ok(LiveOp::ProcessResize { id: pid, cols, rows })).await
}

#[derive(Deserialize)]
struct OutputQuery {
    #[serde(default)]
    from_seq: Option<u64>,
    #[serde(default)]
    follow: Option<bool>,
}

/// `GET …/processes/{pid}/output`: SSE (replay, then live) when asked for,
/// else JSON of what is held now.
pub async fn output(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path((id, pid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> BayResult<Response> {
    check_pid(&pid)?;
    let query: OutputQuery = parse_query(q.as_deref())?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(|v| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| BayError::request_validation(&["header", "Last-Event-ID"], "expected an event id (a number)", "value_error"))
    });
    let from_seq = match resume {
        Some(last) => last?.saturating_add(1),
        None => query.from_seq.unwrap_or(0),
    };
    let stream = wants_stream(&headers);
    let follow = query.follow.unwrap_or(stream);
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let t = state.sandboxes.live(&sandbox, &profile, LiveOp::ProcessOutput { id: pid, from_seq, follow: stream && follow }).await?;
    if !stream || !follow {
        let (status, v) = crate::live::json(&t.link, &t.request).await?;
        if !stream || status != 200 {
            return Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(v)).into_response());
        }
        // SSE without following: the events held now, then the end.
        let (tx, rx) = mpsc::channel(64);
        let events: Vec<Value> = v["events"].as_array().cloned().unwrap_or_default();
        tokio::spawn(async move {
            let _in_use: LiveTarget = t;
            for v in &events {
                if tx.send(event(v)).await.is_err() {
                    return;
                }
            }
        });
        return Ok(sse(rx));
    }
    let resp = crate::live::send(&t.link, &t.request, None).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _in_use: LiveTarget = t;
        let mut events = Box::pin(crate::live::events(resp));
        while let Some(ev) = next_event(&mut events, &tx).await {
            let done = matches!(&ev, Ok(v) if v["type"] == "exit");
            let e = match ev {
                Ok(v) => event(&v),
                Err(e) => error_event(&e),
            };
            if tx.send(e).await.is_err() || done {
                return;
            }
        }
    });
    Ok(sse(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_results_read_ships_shape() {
        let v = json!({"type": "result", "seq": 9, "success": true, "execution_count": 3,
            "output": {"text": "hi", "images": [{"image/png": "iVBOR"}]}, "error": null});
        let r = python_result(&v);
        assert!(r.success);
        assert_eq!(r.execution_count, Some(3));
        assert_eq!(r.text, "hi");
        assert_eq!(r.images, [("image/png".to_owned(), "iVBOR".to_owned())]);
    }

    #[test]
    fn kept_output_stops_at_the_cap_on_a_character_boundary() {
        let mut k = Kept::default();
        k.push(&"é".repeat(MAX_KEPT));
        assert!(k.0.len() <= MAX_KEPT && k.0.is_char_boundary(k.0.len()));
    }

    #[test]
    fn streams_are_asked_for_with_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_stream(&h));
        h.insert(header::ACCEPT, "application/json, text/event-stream".parse().unwrap());
        assert!(wants_stream(&h));
    }
}
