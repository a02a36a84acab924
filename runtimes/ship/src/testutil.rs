//! Test helpers: the real state on a temp workspace, the real server on
//! 127.0.0.1, and a small HTTP/1.1 client that reads a streamed answer as
//! it arrives (line by line) and can drop the connection midway.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use runtime_common::{beneath::Workspace, token::RuntimeToken};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{
    AppState,
    config::Config,
    kernel::{self, KernelManager},
    processes::ProcessManager,
    quota::Quota,
    shell::ShellManager,
};

/// The state of a Ship serving `dir`, configured by `vars` (the kernel is
/// not started until a cell runs).
pub(crate) fn state(dir: &Path, vars: &[(&str, &str)]) -> AppState {
    state_with(dir, vars, &[])
}

/// [`state`], with variables for the kernel's environment.
pub(crate) fn state_with(dir: &Path, vars: &[(&str, &str)], kernel_env: &[(&str, &str)]) -> AppState {
    let ws_path = dir.to_string_lossy().into_owned();
    let mut cfg = Config::from_lookup(|k| {
        if k == "SHIP_WORKSPACE" {
            return Some(ws_path.clone());
        }
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    });
    cfg.prepare_workspace().unwrap();
    let ws = Arc::new(Workspace::open(&cfg.workspace).unwrap());
    let cfg = Arc::new(cfg);
    let kernel = Arc::new(KernelManager::new(kernel::KernelSettings {
        python: cfg.python.clone(),
        cwd: cfg.workspace_canon.clone(),
        workspace_display: ws_path.clone(),
        env: kernel_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }));
    let shell = Arc::new(ShellManager::new(cfg.clone(), ws.clone()));
    AppState {
        quota: Arc::new(Quota::new(ws.clone(), cfg.cargo_limit)),
        processes: Arc::new(ProcessManager::new(shell.clone(), cfg.scrollback_bytes)),
        shell,
        cfg,
        ws,
        kernel,
    }
}

/// Serves the real router (with `token`) on 127.0.0.1; the server lives as
/// long as the test's runtime.
pub(crate) async fn serve(state: AppState, token: RuntimeToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, crate::router(state, token)).await });
    addr
}

/// One HTTP answer, read as it arrives.
pub(crate) struct Answer {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub content_type: String,
    chunked: bool,
    /// Content-Length still to read (not chunked).
    left: usize,
    body: Vec<u8>,
    eof: bool,
}

/// Sends one request (`Connection: close`) and reads the status line and
/// headers.
pub(crate) async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Answer {
    request_with(addr, method, path, body, &[]).await
}

/// [`request`] with extra headers.
pub(crate) async fn request_with(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: ship\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut chunked, mut left, mut content_type) = (false, 0, String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-length" => left = value.parse().unwrap(),
            "content-type" => content_type = value.to_string(),
            _ => {}
        }
    }
    Answer { reader, status, content_type, chunked, left, body: Vec::new(), eof: false }
}

impl Answer {
    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.chunked {
            let mut size = String::new();
            if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
                self.eof = true;
                return false;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            self.reader.read_exact(&mut chunk).await.unwrap();
            if n == 0 {
                self.eof = true;
                return false;
            }
            self.body.extend_from_slice(&chunk[..n]);
        } else {
            if self.left == 0 {
                self.eof = true;
                return false;
            }
            let mut chunk = vec![0u8; self.left.min(64 * 1024)];
            let n = self.reader.read(&mut chunk).await.unwrap();
            if n == 0 {
                self.eof = true;
                return false;
            }
            self.left -= n;
            self.body.extend_from_slice(&chunk[..n]);
        }
        true
    }

    /// The next NDJSON event, as soon as its line has arrived; `None` at
    /// the end of the stream.
    pub(crate) async fn event(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            if !self.fill().await {
                assert!(self.body.is_empty(), "an unterminated line: {:?}", String::from_utf8_lossy(&self.body));
                return None;
            }
        }
    }

    /// Every remaining event.
    pub(crate) async fn events(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(e) = self.event().await {
            out.push(e);
        }
        out
    }

    /// The whole (remaining) body as JSON.
    pub(crate) async fn json(mut self) -> Value {
        while self.fill().await {}
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `(status, JSON body)` of one request.
pub(crate) async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = request(addr, method, path, body.as_ref()).await;
    let status = a.status;
    (status, a.json().await)
}

/// Waits (up to 20 s) until `cond` holds.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits (up to 20 s) until `cond` resolves to true.
pub(crate) async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    for _ in 0..200 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub(crate) fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s == "Z" || s == "X"),
    }
}
