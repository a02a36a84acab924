//! The web terminal, `GET /term/ws` (protocol in `stream.rs`): one PTY per
//! WebSocket, running `bash -l` in the workspace with the environment of
//! `/shell/exec` (`ShellManager::apply_env` in `shell.rs`).
//!
//! The shell is started before the upgrade is answered (a failure is a 500,
//! not a socket that closes at once) and lives exactly as long as the
//! socket: when the client goes away, or the upgrade never completes, every
//! process of the terminal's session is SIGKILLed (`pty::kill_session`: an
//! interactive shell puts its jobs in process groups of their own). When
//! the shell exits and nothing else holds the terminal, Ship closes the
//! socket.
//!
//! The session is killed before the shell is reaped, so its id (the
//! shell's pid) cannot have been reused by then.

use std::{io, os::fd::AsRawFd, sync::Arc, time::Duration};

use axum::{
    extract::{
        State,
        ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};
use runtime_common::{
    capture::GroupGuard,
    error::{ApiQuery, AppError},
    text::Utf8Stream,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::process::Child;
use tracing::{info, warn};

use crate::{
    AppState,
    pty::{self, Master},
};

#[derive(Debug, Deserialize)]
pub(crate) struct TermQuery {
    #[serde(default)]
    cols: Option<u32>,
    #[serde(default)]
    rows: Option<u32>,
}

/// `GET /term/ws?cols=80&rows=24`.
pub(crate) async fn ws_handler(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<TermQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return AppError::bad_request(format!("/term/ws needs a WebSocket upgrade: {}", r.body_text())).into_response(),
    };
    let (cols, rows) = match pty::check_size(q.cols.unwrap_or(80), q.rows.unwrap_or(24)) {
        Ok(s) => s,
        Err(e) => return AppError::bad_request(e).into_response(),
    };
    match Terminal::spawn(&st, cols, rows) {
        Ok(term) => ws.on_upgrade(move |socket| term.run(socket)),
        Err(e) => {
            warn!(error = %e, "cannot start a terminal");
            AppError::internal(format!("Failed to start the terminal: {e}")).into_response()
        }
    }
}

/// A running terminal: killed when dropped.
struct Terminal {
    child: Child,
    master: Arc<Master>,
    /// The shell's pid: its session id and process group id.
    pid: i32,
    /// For the server's shutdown (`ShellManager::kill_all`).
    _guard: GroupGuard,
    killed: bool,
}

impl Terminal {
    fn spawn(st: &AppState, cols: u16, rows: u16) -> io::Result<Self> {
        let (master, slave) = pty::open(cols, rows)?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-l");
        st.shell.apply_env(&mut cmd);
        cmd.env("TERM", "xterm-256color");
        let cwd = st.ws.root_fd().try_clone_to_owned()?;
        // SAFETY: only async-signal-safe calls (fchdir, setsid). Runs before
        // the `TIOCSCTTY` of `pty::attach`.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fchdir(cwd.as_raw_fd()) == -1 || libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        pty::attach(&mut cmd, &slave)?;
        let child = cmd.spawn()?;
        drop(cmd);
        drop(slave);
        let pid = child.id().unwrap_or(0) as i32;
        info!(pid, cols, rows, "terminal started");
        Ok(Self { child, master: Arc::new(master), pid, _guard: st.shell.track(pid, false), killed: false })
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let master = self.master.clone();
        let output = async {
            let mut dec = Utf8Stream::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match pty::read(&master, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let text = dec.decode(&buf[..n]);
                        if !text.is_empty() && sink.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let rest = dec.finish();
            if !rest.is_empty() {
                let _ = sink.send(Message::Text(rest.into())).await;
            }
            let _ = sink.send(Message::Close(None)).await;
        };
        let input = async {
            while let Some(Ok(msg)) = stream.next().await {
                let data: &[u8] = match &msg {
                    Message::Text(t) => {
                        match resize_request(t.as_str()) {
                            Some(Ok((cols, rows))) => {
                                if let Err(e) = pty::resize(&master, cols, rows) {
                                    warn!(error = %e, "cannot resize the terminal");
                                }
                                continue;
                            }
                            Some(Err(e)) => {
                                warn!(error = %e, "terminal resize ignored");
                                continue;
                            }
                            None => {}
                        }
                        t.as_bytes()
                    }
                    Message::Binary(b) => b,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if pty::write_all(&master, data).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = output => {}
            _ = input => {}
        }
        self.kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        info!(pid = self.pid, "terminal closed");
    }

    fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            pty::kill_session(self.pid);
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A text frame that is the JSON object `{"type": "resize", "cols": C,
/// "rows": R}` → `Some(Ok((C, R)))`, or `Some(Err)` for a bad size; `None`
/// for anything else (typed into the terminal).
fn resize_request(text: &str) -> Option<Result<(u16, u16), String>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    if v.get("type")?.as_str()? != "resize" {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(0);
    Some(pty::check_size(n("cols"), n("rows")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_frames() {
        assert_eq!(resize_request(r#"{"type":"resize","cols":100,"rows":30}"#), Some(Ok((100, 30))));
        assert_eq!(resize_request(r#" {"rows": 1, "type": "resize", "cols": 2}"#), Some(Ok((2, 1))));
        // A bad size is ignored, not typed.
        assert!(matches!(resize_request(r#"{"type":"resize","cols":0,"rows":30}"#), Some(Err(_))));
        assert!(matches!(resize_request(r#"{"type":"resize","cols":"80"}"#), Some(Err(_))));
        // Anything else is typed into the terminal.
        assert_eq!(resize_request("ls\r"), None);
        assert_eq!(resize_request(r#"{"type":"input","data":"x"}"#), None);
        assert_eq!(resize_request(r#"{"type":"resize"#), None);
    }
}

#[cfg(test)]
mod ws_tests {
    use crate::testutil::{call, dead, eventually, request_with, serve, state};
    use futures::{SinkExt, StreamExt};
    use runtime_common::token::RuntimeToken;
    use serde_json::json;
    use std::{net::SocketAddr, time::Duration};
    use tokio_tungstenite::{
        MaybeTlsStream, WebSocketStream, connect_async,
        tungstenite::{Message, client::IntoClientRequest},
    };

    type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

    async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{addr}/term/ws?cols=80&rows=24").into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut().insert("x-bay-token", t.parse().unwrap());
        }
        connect_async(req).await.map(|(ws, _)| ws)
    }

    /// Reads output frames into `seen` until it contains `want`; `None`
    /// when the socket closed first.
    async fn read_until(ws: &mut Ws, seen: &mut String, want: &str) -> Option<()> {
        let wait = async {
            while !seen.contains(want) {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => seen.push_str(t.as_str()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                }
            }
            Some(())
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap_or_else(|_| panic!("no {want:?} in {seen:?}"))
    }

    async fn type_in(ws: &mut Ws, text: &str) {
        ws.send(Message::Text(text.into())).await.unwrap();
    }

    #[tokio::test]
    async fn terminal_over_a_websocket() {
        let d = tempfile::tempdir().unwrap();
        let addr = serve(state(d.path(), &[]), RuntimeToken::new(Some("t0k"))).await;
        // The token guards the upgrade like any request.
        match connect(addr, None).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
        // A plain GET is a 400 with a JSON error.
        let a = request_with(addr, "GET", "/term/ws", None, &[("X-Bay-Token", "t0k")]).await;
        assert_eq!(a.status, 400);
        assert!(a.json().await["detail"].as_str().unwrap().starts_with("/term/ws needs a WebSocket upgrade"));

        let mut ws = connect(addr, Some("t0k")).await.unwrap();
        let mut seen = String::new();
        // What the command prints, not its echo, has "hi".
        type_in(&mut ws, "echo h''i; pwd -P\r").await;
        let canon = d.path().canonicalize().unwrap();
        read_until(&mut ws, &mut seen, &format!("hi\r\n{}\r\n", canon.display())).await.unwrap();
        // Binary frames are input too; a resize frame is not typed.
        ws.send(Message::Binary(b"stty size; echo \"T=$TERM\"\r".to_vec().into())).await.unwrap();
        read_until(&mut ws, &mut seen, "24 80\r\nT=xterm-256color\r\n").await.unwrap();
        type_in(&mut ws, &json!({"type": "resize", "cols": 100, "rows": 30}).to_string()).await;
        type_in(&mut ws, "stty size\r").await;
        read_until(&mut ws, &mut seen, "30 100\r\n").await.unwrap();
        assert!(!seen.contains("resize"), "{seen}");
        // Multi-byte characters split across PTY reads arrive whole.
        type_in(&mut ws, "printf '%.0s€😀é' $(seq 1 5000); echo; echo E''ND\r").await;
        read_until(&mut ws, &mut seen, "END\r\n").await.unwrap();
        assert!(seen.contains(&format!("{}\r\n", "€😀é".repeat(5000))));
        assert!(!seen.contains('\u{fffd}'));
        // `exit` closes the socket.
        type_in(&mut ws, "exit\r").await;
        assert_eq!(read_until(&mut ws, &mut seen, "never printed").await, None);
    }

    #[tokio::test]
    async fn disconnecting_kills_the_terminal() {
        let d = tempfile::tempdir().unwrap();
        let addr = serve(state(d.path(), &[]), RuntimeToken::default()).await;
        let mut ws = connect(addr, None).await.unwrap();
        let mut seen = String::new();
        // A job of its own (an interactive shell gives it a process group
        // of its own) that ignores the hangup.
        type_in(&mut ws, "(trap '' HUP; exec sleep 300) & echo \"PIDS $$ $! E\"ND\r").await;
        read_until(&mut ws, &mut seen, "END\r\n").await.unwrap();
        let line = seen.lines().find(|l| l.starts_with("PIDS ")).unwrap().to_string();
        let pids: Vec<i32> = line.split_whitespace().skip(1).take(2).map(|p| p.parse().unwrap()).collect();
        assert!(pids.iter().all(|p| !dead(*p)), "{line}");
        drop(ws);
        eventually("the terminal's processes are killed", || pids.iter().all(|p| dead(*p))).await;
        // Ship goes on serving.
        assert_eq!(call(addr, "GET", "/health", None).await.0, 200);
    }
}
