//! Live exec: Bay's extensions to Ship's API for output that arrives while a
//! command runs. Shipyard Neo's endpoints (`/shell/exec`, `/shell/processes`,
//! …) are unchanged; everything here is new. Every route is behind the
//! `X-Bay-Token` check like the rest of the API (WebSocket upgrades carry it
//! as a header too).
//!
//! # Events
//! Streams are NDJSON (`Content-Type: application/x-ndjson`): one JSON
//! object per line, each with an integer `seq` (1, 2, … within the stream or
//! process, no holes) and a `type`. `data` is UTF-8 text, decoded across
//! read boundaries (a character split between two reads comes out whole;
//! invalid bytes become U+FFFD).
//!
//! | `type` | fields | meaning |
//! | --- | --- | --- |
//! | `stdout`, `stderr` | `data` | output of a command without a terminal |
//! | `pty` | `data` | output of a command on a terminal (stdout and stderr merged, `\r\n` line ends) |
//! | `truncated` | `stream` (`"stdout"`/`"stderr"`) | streamed exec only: 8 MiB of that stream were sent; the rest is dropped |
//! | `exit` | `exit_code`; streamed exec adds `success`, `error` | the last event; `exit_code` is -N when killed by signal N |
//! | `gap` | `first_seq` (no `seq`) | events before `first_seq` are no longer held (scrollback overflow) |
//!
//! # Streamed shell exec: `POST /shell/exec/stream`
//! Body as `/shell/exec`: `{command, cwd?, env?, timeout? (s, default 30,
//! null = none), shell? (default true)}`; `background: true` is refused (400:
//! use `/processes`). A command over 1 MiB is 413. The answer is 200 with
//! `stdout`/`stderr` events as the output arrives (nothing is buffered in
//! Ship), at most 8 MiB per stream followed by one `truncated` event, then
//! `{"seq","type":"exit","exit_code","success","error"}`. `error` is what
//! `/shell/exec` reports: `"Command timed out"` (the process group was
//! killed, `exit_code` -1), a bad `cwd` (`"403: Access denied: path outside
//! workspace"`, `"Failed to start command: …"`: then `exit` is the only
//! event), or `null`. As for `/shell/exec`, output written after the
//! command's leader exited is awaited for 0.5 s only. Closing the connection
//! SIGKILLs the command's process group.
//!
//! # Background processes: `/processes` (`processes.rs`)
//! They outlive the request that started them and keep a scrollback of their
//! output in Ship (`SHIP_SCROLLBACK_BYTES` of event data per process, default
//! 1 MiB, oldest events dropped first; the newest output event, at most one
//! 16 KiB read, and the exit event are never dropped).
//! * `POST /processes` `{command, cwd?, env?, pty?: false, cols?: 80,
//!   rows?: 24}` → 201 `{id, pid, command, status: "running", pty,
//!   started_at}`. Same user, environment, cwd rules and command limit as
//!   `/shell/exec`, no timeout. A bad `cwd` is 403/400, a bad size 400. With
//!   `pty` the command runs as a session leader on a new terminal of that
//!   size (`TERM=xterm-256color` unless `env` sets it) and its output is
//!   `pty` events; else stdin is a pipe and the output `stdout`/`stderr`.
//! * `GET /processes` → `{"processes": [info…]}` in start order, where info
//!   is `{id, pid, command, status: "running"|"exited", exit_code, started_at,
//!   ended_at, pty}` (`exit_code`, `ended_at` null while running; times RFC
//!   3339 UTC). `GET /processes/{id}` → one info. The last 64 exited
//!   processes are kept; running ones always.
//! * `GET /processes/{id}/output?from_seq=N&follow=false` → `{"events":
//!   [...], "next_seq", "status"}` at once: the held events with `seq ≥ N`
//!   (N 0 or 1: from the first held), preceded by a `gap` event when seq N
//!   is no longer held. `next_seq` is the seq the next event will get (pass
//!   it as `from_seq` to continue). With `follow=true` the same events are
//!   NDJSON and the stream stays open, delivering new events live, until the
//!   `exit` event (at once if the process has exited and nothing is left
//!   from N). A reader too slow for the scrollback gets another `gap` event
//!   where it lost events. `from_seq` greater than `next_seq` → 400 naming
//!   both numbers.
//! * `POST /processes/{id}/stdin` `{"data": text}` or `{"data_base64": …}`,
//!   optionally `"eof": true` to close a pipe stdin afterwards (not for a
//!   PTY: type `\u0004` instead) → `{"success": true, "bytes": n}`; 409 when
//!   the process has exited or its stdin is closed, 504 when it has not
//!   taken the data within 10 s.
//! * `POST /processes/{id}/signal` `{"signal": "INT"|"TERM"|"KILL"|"HUP"|
//!   "USR1"|"USR2"|"STOP"|"CONT"|"QUIT"|"WINCH" (a `SIG` prefix is allowed)
//!   or a number 1..=64}` → `{"success": true, "signal": n}`, sent to the
//!   process group; 409 once exited.
//! * `POST /processes/{id}/resize` `{cols, rows}` (1..=1000) → `{"success":
//!   true, cols, rows}`; 400 for a process without `pty`, 409 once exited.
//! * An unknown `id` is 404 everywhere.
//!
//! # Terminal: `GET /term/ws?cols=80&rows=24` (`terminal.rs`)
//! Shipyard Neo's protocol. A WebSocket to `bash -l` on a new terminal, in
//! the workspace, with the environment of `/shell/exec` and
//! `TERM=xterm-256color`. Client → Ship: text and binary frames are typed
//! into the terminal, except a text frame that is the JSON object
//! `{"type": "resize", "cols", "rows"}`, which resizes it. Ship → client:
//! the terminal's output as text frames (whole UTF-8 characters only); a
//! close frame when the shell exits. Closing the socket SIGKILLs every
//! process of the terminal's session. Without a WebSocket upgrade the
//! answer is 400 (JSON error).
//!
//! `/meta` advertises these: `capabilities.shell` gets the operations
//! `stream` (`/shell/exec/stream`) and `live_processes` (`/processes`),
//! `capabilities.terminal` is `{"operations": ["ws"], "protocol":
//! "websocket", "endpoints": {"ws": "/term/ws"}}`.

use runtime_common::limits::MAX_PYTHON_CODE;
use serde_json::{Value, json};
use std::{
    convert::Infallible,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use futures::Stream;
use runtime_common::{
    capture::{PIPE_GRACE, exit_code, kill_group},
    error::{ApiJson, AppError},
    limits::{MAX_CAPTURE, MAX_SHELL_COMMAND},
    text::Utf8Stream,
};
use serde::Serialize;
use tokio::{io::AsyncReadExt, sync::mpsc};
use tracing::debug;

use crate::{
    AppState,
    shell::{ShellExecRequest, ShellManager},
};

/// Media type of the event streams.
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// One event (see the module doc); numbered by [`Numbered`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Event {
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    Pty {
        data: String,
    },
    Truncated {
        stream: &'static str,
    },
    /// The end of a background process.
    Exit {
        exit_code: i32,
    },
    /// The end of a streamed exec (`/shell/exec`'s fields).
    #[serde(rename = "exit")]
    ExecExit {
        exit_code: i32,
        success: bool,
        error: Option<String>,
    },
}

impl Event {
    /// Bytes of text it holds (what the scrollback bound counts).
    pub(crate) fn data_len(&self) -> usize {
        match self {
            Event::Stdout { data } | Event::Stderr { data } | Event::Pty { data } => data.len(),
            _ => 0,
        }
    }
}

/// An event with its number.
#[derive(Debug, Serialize)]
pub(crate) struct Numbered<'a> {
    pub seq: u64,
    #[serde(flatten)]
    pub event: &'a Event,
}

/// The `gap` event: events before `first_seq` are gone.
#[derive(Debug, Serialize)]
pub(crate) struct Gap {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub first_seq: u64,
}

impl Gap {
    pub(crate) fn new(first_seq: u64) -> Self {
        Self { kind: "gap", first_seq }
    }
}

/// `value` as one NDJSON line.
pub(crate) fn line<T: Serialize>(value: &T) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    Bytes::from(v)
}

/// A 200 NDJSON answer streaming `lines` as they come (each one is flushed
/// as a chunk of its own).
pub(crate) fn ndjson_response(lines: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures::StreamExt;
    (
        [(header::CONTENT_TYPE, NDJSON), (header::CACHE_CONTROL, "no-cache"), (header::HeaderName::from_static("x-accel-buffering"), "no")],
        Body::from_stream(lines.map(Ok::<_, Infallible>)),
    )
        .into_response()
}

/// `POST /shell/exec/stream`.
pub(crate) async fn exec_stream_handler(State(state): State<AppState>, ApiJson(req): ApiJson<ShellExecRequest>) -> Result<Response, AppError> {
    if req.command.len() > MAX_SHELL_COMMAND {
        return Err(AppError::too_large(format!(
            "Command is too large ({} bytes > {MAX_SHELL_COMMAND} bytes); write it to a file and run that",
            req.command.len()
        )));
    }
    if req.background {
        return Err(AppError::bad_request("background is not streamed; start a background process with POST /processes"));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(run_streamed(state.shell.clone(), req, tx));
    let lines = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(ndjson_response(lines))
}

/// Runs one streamed command, sending its numbered events to `out` until
/// the exit event. When `out` closes (the client went away) the command's
/// process group is SIGKILLed.
async fn run_streamed(shell: Arc<ShellManager>, req: ShellExecRequest, out: mpsc::Sender<Bytes>) {
    let mut seq = 0u64;
    let mut number = |event: &Event| {
        seq += 1;
        line(&Numbered { seq, event })
    };
    let failed = |error: String| Event::ExecExit { exit_code: -1, success: false, error: Some(error) };
    let (mut cmd, piped) = match shell.prepare(&req).await {
        Ok(c) => c,
        Err(e) => {
            let _ = out.send(number(&failed(e.exec_text()))).await;
            return;
        }
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = out.send(number(&failed(format!("Failed to start command: {e}")))).await;
            return;
        }
    };
    if let Some(p) = piped {
        p.feed();
    }
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    // Armed: every early return below is the client going away.
    let mut guard = shell.track(pgid, true);
    debug!(pid = pgid, command = %req.command, "streamed command started");

    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(16);
    if let Some(o) = child.stdout.take() {
        tokio::spawn(pump(o, "stdout", ev_tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        tokio::spawn(pump(e, "stderr", ev_tx.clone()));
    }
    drop(ev_tx);
    // A task of its own, so a client that reads slowly does not delay it.
    let timed_out = Arc::new(AtomicBool::new(false));
    let timer = req.timeout.map(|t| {
        let (timed_out, limit) = (timed_out.clone(), Duration::from_secs(t.max(0) as u64));
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            timed_out.store(true, Ordering::SeqCst);
            kill_group(pgid, libc::SIGKILL);
        })
    });

    let mut status = None;
    let mut pumps_open = true;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    while status.is_none() || pumps_open {
        tokio::select! {
            biased;
            _ = out.closed() => return,
            ev = ev_rx.recv(), if pumps_open => match ev {
                Some(ev) => {
                    if out.send(number(&ev)).await.is_err() {
                        return;
                    }
                }
                None => pumps_open = false,
            },
            st = child.wait(), if status.is_none() => {
                if let Some(t) = &timer {
                    t.abort();
                }
                status = Some(st);
                grace.as_mut().reset(tokio::time::Instant::now() + PIPE_GRACE);
            }
            // The leader exited but something it started keeps the pipes
            // open: its output is not awaited (as in /shell/exec).
            _ = &mut grace, if status.is_some() => break,
        }
    }
    let exit = match status {
        _ if timed_out.load(Ordering::SeqCst) => failed("Command timed out".into()),
        Some(Ok(st)) => {
            let code = exit_code(&st);
            Event::ExecExit { exit_code: code, success: code == 0, error: None }
        }
        Some(Err(e)) => failed(format!("Failed to wait for command: {e}")),
        None => failed("Failed to wait for command".into()),
    };
    if out.send(number(&exit)).await.is_ok() {
        // What the finished command left running in the background is the
        // user's, as with /shell/exec.
        guard.disarm();
    }
}

/// Reads one output pipe of a streamed command to EOF, sending its text as
/// events, at most [`MAX_CAPTURE`] bytes and then one `truncated` event.
/// Keeps draining (without sending) once capped or once nobody listens, so
/// the writer never blocks or dies of SIGPIPE.
async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: R, stream: &'static str, tx: mpsc::Sender<Event>) {
    let event = |data: String| if stream == "stdout" { Event::Stdout { data } } else { Event::Stderr { data } };
    let mut dec = Utf8Stream::default();
    let mut sent = 0usize;
    let mut listening = true;
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if truncated || !listening {
            continue;
        }
        let take = n.min(MAX_CAPTURE - sent);
        sent += take;
        let text = dec.decode(&buf[..take]);
        if !text.is_empty() && tx.send(event(text)).await.is_err() {
            listening = false;
            continue;
        }
        if take < n {
            truncated = true;
            let rest = dec.finish();
            if (!rest.is_empty() && tx.send(event(rest)).await.is_err()) || tx.send(Event::Truncated { stream }).await.is_err() {
                listening = false;
            }
        }
    }
    if listening && !truncated {
        let rest = dec.finish();
        if !rest.is_empty() {
            let _ = tx.send(event(rest)).await;
        }
    }
}

/// `POST /ipython/exec/stream`: the body
/// of `/ipython/exec`; the answer is NDJSON events as the cell produces
/// them, named as Jupyter's messages — `stream` (`name`: `stdout`, `data`:
/// printed text), `display_data` and `execute_result` (`data`: the MIME
/// bundle, images included), `error` (`data`: the traceback) — each with
/// `seq` 1, 2, …, then one `result` event carrying exactly the
/// `/ipython/exec` answer (`success`, `execution_count`, `output`, `error`).
/// Closing the connection interrupts the cell (the kernel keeps its state).
pub(crate) async fn python_stream_handler(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<crate::kernel::ExecRequest>,
) -> Result<axum::response::Response, AppError> {
    if req.code.len() > MAX_PYTHON_CODE {
        return Err(AppError::too_large(format!(
            "Code is too large ({} bytes > {MAX_PYTHON_CODE} bytes); write it to a file and run that",
            req.code.len()
        )));
    }
    let timeout = req.timeout.clamp(1, 7 * 24 * 3600) as u64;
    let (tap, mut events) = mpsc::unbounded_channel::<Value>();
    let (out, lines) = mpsc::channel::<bytes::Bytes>(32);
    let kernel = state.kernel.clone();
    tokio::spawn(async move {
        let run = tokio::spawn(kernel.execute_streamed(req.code, timeout, req.silent, Some(tap)));
        let mut seq = 0u64;
        let mut numbered = |mut v: Value| {
            seq += 1;
            v["seq"] = json!(seq);
            line(&v)
        };
        // Forward until the execution drops its tap (it has finished);
        // a reader that went away closes `out` and the cell is interrupted.
        while let Some(v) = events.recv().await {
            if out.send(numbered(v)).await.is_err() {
                events.close();
            }
        }
        let answer = match run.await {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(e) => serde_json::to_value(crate::kernel::ExecResponse::failure(format!("Failed to execute code: {e}"))).unwrap_or_default(),
        };
        let mut result = json!({ "type": "result" });
        if let (Some(r), Some(a)) = (result.as_object_mut(), answer.as_object()) {
            r.extend(a.clone());
        }
        let _ = out.send(numbered(result)).await;
    });
    let lines = futures::stream::unfold(lines, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(ndjson_response(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dead, eventually, request, serve, state};
    use runtime_common::{limits::MAX_SHELL_COMMAND, token::RuntimeToken};
    use serde_json::{Value, json};
    use std::net::SocketAddr;

    async fn server() -> (tempfile::TempDir, SocketAddr) {
        let d = tempfile::tempdir().unwrap();
        let addr = serve(state(d.path(), &[("BAY_PROFILE_ENV", "PROFILE_VAR=from-profile")]), RuntimeToken::default()).await;
        (d, addr)
    }

    async fn stream(addr: SocketAddr, body: Value) -> Vec<Value> {
        let mut a = request(addr, "POST", "/shell/exec/stream", Some(&body)).await;
        assert_eq!((a.status, a.content_type.as_str()), (200, NDJSON));
        a.events().await
    }

    /// Numbered 1, 2, … without holes, ending with one exit event.
    fn check_numbering(events: &[Value]) {
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["seq"], json!(i + 1), "{events:?}");
        }
        let exits = events.iter().filter(|e| e["type"] == "exit").count();
        assert_eq!((exits, &events.last().unwrap()["type"]), (1, &json!("exit")), "{events:?}");
    }

    fn text(events: &[Value], kind: &str) -> String {
        events.iter().filter(|e| e["type"] == kind).map(|e| e["data"].as_str().unwrap()).collect()
    }

    #[tokio::test]
    async fn output_arrives_while_the_command_runs() {
        let (d, addr) = server().await;
        let cmd = "for i in $(seq 1 5); do echo $i; sleep 1; done; echo \"$PROFILE_VAR\" >&2; touch finished; exit 4";
        let mut a = request(addr, "POST", "/shell/exec/stream", Some(&json!({"command": cmd}))).await;
        assert_eq!((a.status, a.content_type.as_str()), (200, NDJSON));
        assert_eq!(a.event().await.unwrap(), json!({"seq": 1, "type": "stdout", "data": "1\n"}));
        assert!(!d.path().join("finished").exists(), "the first line came only after the command ended");
        let mut events = vec![json!({"seq": 1})];
        events.extend(a.events().await);
        check_numbering(&events);
        assert!(d.path().join("finished").exists());
        assert_eq!(text(&events, "stdout"), "2\n3\n4\n5\n");
        assert_eq!(text(&events, "stderr"), "from-profile\n");
        let exit = events.last().unwrap();
        assert_eq!(exit, &json!({"seq": events.len(), "type": "exit", "exit_code": 4, "success": false, "error": null}));
    }

    #[tokio::test]
    async fn same_semantics_as_shell_exec() {
        let (d, addr) = server().await;
        std::fs::create_dir(d.path().join("sub")).unwrap();
        // cwd, env, exit status.
        let ev = stream(addr, json!({"command": "echo \"$(basename \"$PWD\") $X\"", "cwd": "sub", "env": {"X": "y"}})).await;
        check_numbering(&ev);
        assert_eq!(text(&ev, "stdout"), "sub y\n");
        assert_eq!(ev.last().unwrap()["success"], json!(true));
        // A bad cwd: the exit event alone, with /shell/exec's error text.
        let ev = stream(addr, json!({"command": "pwd", "cwd": "../"})).await;
        assert_eq!(ev, [json!({"seq": 1, "type": "exit", "exit_code": -1, "success": false, "error": "403: Access denied: path outside workspace"})]);
        let ev = stream(addr, json!({"command": "pwd", "cwd": "missing"})).await;
        assert!(ev[0]["error"].as_str().unwrap().starts_with("Failed to start command"), "{ev:?}");
        // Timeout: the group is killed.
        let ev = stream(addr, json!({"command": "echo started; sleep 30 & sleep 30", "timeout": 1})).await;
        check_numbering(&ev);
        assert_eq!(text(&ev, "stdout"), "started\n");
        assert_eq!(ev.last().unwrap()["error"], json!("Command timed out"));
        assert_eq!(ev.last().unwrap()["exit_code"], json!(-1));
        // Requests it refuses.
        let a = request(addr, "POST", "/shell/exec/stream", Some(&json!({"command": "true", "background": true}))).await;
        assert_eq!(a.status, 400);
        let big = json!({"command": "#".repeat(MAX_SHELL_COMMAND + 1)});
        assert_eq!(request(addr, "POST", "/shell/exec/stream", Some(&big)).await.status, 413);
    }

    #[tokio::test]
    async fn output_is_capped_and_decoded_whole() {
        let (_d, addr) = server().await;
        let ev = stream(addr, json!({"command": "head -c 9000000 /dev/zero | tr '\\0' x; echo done >&2"})).await;
        check_numbering(&ev);
        let out = text(&ev, "stdout");
        assert_eq!(out.len(), MAX_CAPTURE);
        assert!(out.bytes().all(|b| b == b'x'));
        let truncated: Vec<_> = ev.iter().filter(|e| e["type"] == "truncated").collect();
        assert_eq!(truncated, [&json!({"seq": truncated[0]["seq"], "type": "truncated", "stream": "stdout"})]);
        assert_eq!(text(&ev, "stderr"), "done\n");
        assert_eq!(ev.last().unwrap()["success"], json!(true));
        // Exactly at the cap: nothing is dropped, so no truncated event.
        let ev = stream(addr, json!({"command": format!("head -c {MAX_CAPTURE} /dev/zero")})).await;
        assert_eq!(text(&ev, "stdout").len(), MAX_CAPTURE);
        assert!(ev.iter().all(|e| e["type"] != "truncated"));
        // 3-byte characters through 64 KiB reads: split, then joined again.
        let ev = stream(addr, json!({"command": "yes € | head -n 60000 | tr -d '\\n'; printf '\\377'"})).await;
        assert_eq!(text(&ev, "stdout"), format!("{}\u{fffd}", "€".repeat(60000)));
    }

    /// Closing the connection kills the command's process group.
    #[tokio::test]
    async fn disconnecting_kills_the_command() {
        let (_d, addr) = server().await;
        let cmd = "echo $$; sleep 300 & echo $!; wait";
        let mut a = request(addr, "POST", "/shell/exec/stream", Some(&json!({"command": cmd, "timeout": null}))).await;
        let mut out = String::new();
        while out.lines().count() < 2 {
            let e = a.event().await.unwrap();
            out.push_str(e["data"].as_str().unwrap());
        }
        let pids: Vec<i32> = out.lines().map(|l| l.parse().unwrap()).collect();
        assert!(pids.iter().all(|p| !dead(*p)));
        drop(a);
        eventually("the command's processes are killed", || pids.iter().all(|p| dead(*p))).await;
    }

    /// The new routes are behind the runtime token (the WebSocket upgrade
    /// too: `terminal.rs`).
    #[tokio::test]
    async fn live_routes_need_the_token() {
        let d = tempfile::tempdir().unwrap();
        let addr = serve(state(d.path(), &[]), RuntimeToken::new(Some("t0k"))).await;
        let exec = json!({"command": "echo ok"});
        let start = json!({"command": "true"});
        for (method, path, body) in [
            ("POST", "/shell/exec/stream", Some(&exec)),
            ("POST", "/processes", Some(&start)),
            ("GET", "/processes", None),
            ("GET", "/processes/x/output?follow=true", None),
            ("POST", "/processes/x/signal", Some(&json!({"signal": "KILL"}))),
            ("GET", "/term/ws", None),
        ] {
            let a = request(addr, method, path, body).await;
            assert_eq!(a.status, 401, "{method} {path}");
        }
        let token = [("X-Bay-Token", "t0k")];
        let mut a = crate::testutil::request_with(addr, "POST", "/shell/exec/stream", Some(&exec), &token).await;
        assert_eq!(text(&a.events().await, "stdout"), "ok\n");
        let a = crate::testutil::request_with(addr, "POST", "/processes", Some(&start), &token).await;
        assert_eq!(a.status, 201);
    }
}
