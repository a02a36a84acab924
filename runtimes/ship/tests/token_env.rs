//! The built `ship` binary as a process: the per-session token is enforced
//! and never reaches the children (the server takes it out of its own
//! environment at startup, see `runtimes/common/src/token.rs`).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::Duration,
};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request; returns (status, body).
fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let auth = token.map(|t| format!("X-Bay-Token: {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

#[test]
fn token_is_enforced_and_not_inherited() {
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ship"))
        .env("SHIP_WORKSPACE", ws.path())
        .env("SHIP_HOST", "127.0.0.1")
        .env("SHIP_PORT", port.to_string())
        // No kernel needed here: it starts with the first Python call only.
        .env("SHIP_PYTHON", "/nonexistent/python")
        .env("SHIP_SKILLS_DIR", ws.path().join("no-skills"))
        .env("BAY_RUNTIME_TOKEN", "s3cret-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _server = Server(child);
    // Wait until it listens (bounded by attempts, not by a clock).
    let mut health = None;
    for _ in 0..400 {
        health = request(port, "GET", "/health", None, "");
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(health.map(|h| h.0), Some(200), "ship did not start");

    let (s, body) = request(port, "GET", "/meta", None, "").unwrap();
    assert_eq!((s, body.as_str()), (401, r#"{"detail":"Missing or invalid X-Bay-Token header"}"#));
    assert_eq!(request(port, "GET", "/meta", Some("wrong"), "").unwrap().0, 401);
    assert_eq!(request(port, "GET", "/meta", Some("s3cret-token"), "").unwrap().0, 200);

    // Neither a command nor its background children see the secret.
    let cmd = r#"{"command": "echo \"${BAY_RUNTIME_TOKEN:-unset}\"; (sleep 0.1; env > bg-env.txt) & wait"}"#;
    let (s, body) = request(port, "POST", "/shell/exec", Some("s3cret-token"), cmd).unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stdout"], "unset");
    let bg = std::fs::read_to_string(ws.path().join("bg-env.txt")).unwrap();
    assert!(!bg.contains("s3cret-token"));
    // Nor the server's initial environment block, which /proc keeps
    // showing (read here as root; the process is not dumpable, so to the
    // same unprivileged user /proc/<pid>/environ is not even readable).
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&environ).contains("s3cret-token"));
}
