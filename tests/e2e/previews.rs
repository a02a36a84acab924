//! Port previews (host/src/api/ports/mod.rs) on the real engine: a server
//! started in the sandbox — `python -m http.server`, and a WebSocket echo
//! server written with Python's standard library — is reached through
//! `/v1/sandboxes/{id}/ports/{port}/…` with the API key or a preview token,
//! and refused without either, with an expired token, or on another port.
//! Bay's credentials do not reach the server.

use std::time::Duration;

use bay_tests::{Client, strict};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket echo server on 127.0.0.1:8765 (standard library only). It
/// answers `head` with the request head it was opened with.
const WS_ECHO: &str = r#"
import base64, hashlib, socket, struct, threading
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def send(c, text):
    out = text.encode()
    c.sendall(bytes([0x81, 126]) + struct.pack(">H", len(out)) + out)
def handle(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            return
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    key = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
    f = c.makefile("rb")
    while True:
        h = f.read(2)
        if len(h) < 2:
            return
        op, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", f.read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", f.read(8))[0]
        mask = f.read(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
        if op == 8:
            c.sendall(b"\x88\x00")
            return
        if op == 1:
            text = payload.decode()
            send(c, head if text == "head" else "echo:" + text)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8765))
s.listen()
while True:
    conn, _ = s.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"#;

/// A client with no credentials at all.
fn bare() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).build().unwrap()
}

/// Starts `command` as a background process in the sandbox.
async fn start(c: &Client, id: &str, command: &str) {
    let (status, p) = c.post(&format!("/v1/sandboxes/{id}/processes"), json!({ "command": command })).await;
    assert_eq!(status, 201, "{p}");
}

/// Waits until the preview of `port` answers `GET path` with 200.
async fn wait_serving(c: &Client, id: &str, port: u16, path: &str) -> String {
    for _ in 0..200 {
        let r = c.req(reqwest::Method::GET, &format!("/v1/sandboxes/{id}/ports/{port}{path}")).send().await.unwrap();
        if r.status() == 200 {
            return r.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} of {id} never served {path}");
}

#[tokio::test]
async fn a_preview_serves_http_from_the_sandbox_with_the_key_or_a_token() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let r = c.shell(&id, "mkdir -p site && echo '<h1>hello preview</h1>' > site/index.html && echo ok").await;
    assert_eq!(r["output"].as_str().map(str::trim), Some("ok"), "{r}");
    start(&c, &id, "cd site && exec python3 -m http.server 8000 --bind 127.0.0.1").await;
    let page = wait_serving(&c, &id, 8000, "/").await;
    assert!(page.contains("hello preview"), "{page}");
    let file = wait_serving(&c, &id, 8000, "/index.html").await;
    assert!(file.contains("<h1>hello preview</h1>"), "{file}");

    // Without the trailing slash: redirected beneath the preview.
    let base = format!("{}/v1/sandboxes/{id}/ports/8000", c.base);
    let (k, v) = c.auth.clone().unwrap();
    let r = bare().get(&base).header(&k, &v).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], format!("/v1/sandboxes/{id}/ports/8000/").as_str());

    // No credentials: the envelope, 401.
    let r = bare().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized", "{v}");

    // A token: the URL works in a browser (no key): it sets a cookie that
    // carries the page's requests and sends the browser on without the token.
    let (status, t) = c.post(&format!("/v1/sandboxes/{id}/ports/8000/token"), json!({ "ttl_seconds": 120 })).await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(t["url"].as_str().unwrap().starts_with(&c.base), "{t}");
    let r = bare().get(format!("{}{}", c.base, t["path"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/v1/sandboxes/{id}/ports/8000/").as_str());
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("bay_preview=") && cookie.contains(&format!("Path=/v1/sandboxes/{id}/ports/8000/")), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = bare().get(format!("{base}/")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("hello preview"));
    let r = bare().get(format!("{base}/index.html")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The server's own error pages pass untouched (not Bay's envelope).
    let r = bare().get(format!("{base}/missing.html")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.headers()["content-type"].to_str().unwrap().contains("json"), "{:?}", r.headers());

    // The token is for port 8000 of this sandbox, nothing else.
    let r = bare().get(format!("{}/v1/sandboxes/{id}/ports/8001/?bay_token={token}", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = bare().get(format!("{base}/?bay_token={token}x")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // An expired token is refused.
    let (_, short) = c.post(&format!("/v1/sandboxes/{id}/ports/8000/token"), json!({ "ttl_seconds": 1 })).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = bare().get(format!("{base}/?bay_token={}", short["token"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"), "{v}");

    // Nothing listens on 8001: 502 saying so; bad ports and TTLs: 422.
    let (status, v) = c.get(&format!("/v1/sandboxes/{id}/ports/8001/")).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["details"]["reason"], "port_not_listening", "{v}");
    for port in ["0", "65536", "http"] {
        let (status, v) = c.get(&format!("/v1/sandboxes/{id}/ports/{port}/")).await;
        assert_eq!(status, 422, "{port}: {v}");
    }
    let (status, v) = c.post(&format!("/v1/sandboxes/{id}/ports/8000/token"), json!({ "ttl_seconds": 0 })).await;
    assert_eq!(status, 422, "{v}");

    // Deleting the sandbox revokes its tokens.
    c.delete_sandbox(&id).await;
    let r = bare().get(format!("{base}/?bay_token={token}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_preview_carries_a_websocket_and_keeps_bays_credentials_to_itself() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let (status, v) = c
        .json(reqwest::Method::PUT, &format!("/v1/sandboxes/{id}/filesystem/files"), Some(json!({ "path": "ws_echo.py", "content": WS_ECHO })))
        .await;
    assert!(status == 200 || status == 201, "{v}");
    start(&c, &id, "exec python3 ws_echo.py").await;

    let ws_base = format!("{}/v1/sandboxes/{id}/ports/8765", c.base.replacen("http", "ws", 1));
    let (k, v) = c.auth.clone().unwrap();
    let mut opened = None;
    for _ in 0..200 {
        let mut req = format!("{ws_base}/echo?x=1").into_client_request().unwrap();
        req.headers_mut().insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => {
                opened = Some(ws);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut ws = opened.expect("the echo server answered through the preview");
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        other => panic!("{other:?}"),
    };
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, "echo:hi");
    ws.send(Message::text("head")).await.unwrap();
    let head = next(&mut ws).await.to_ascii_lowercase();
    assert!(head.starts_with("get /echo?x=1 http/1.1"), "{head}");
    assert!(head.contains("host: localhost:8765"), "{head}");
    assert!(head.contains(&format!("x-forwarded-prefix: /v1/sandboxes/{id}/ports/8765")), "{head}");
    assert!(!head.contains("authorization") && !head.contains("x-bay-token"), "Bay's credentials reached the server: {head}");
    ws.close(None).await.unwrap();

    // With a preview token instead of the key.
    let (_, t) = c.post(&format!("/v1/sandboxes/{id}/ports/8765/token"), json!({})).await;
    let url = format!("{ws_base}/?bay_token={}", t["token"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("with a token");
    ws.send(Message::text("again")).await.unwrap();
    assert_eq!(next(&mut ws).await, "echo:again");
    ws.send(Message::text("head")).await.unwrap();
    assert!(!next(&mut ws).await.contains("bay_token"), "the token reached the server");
    // Without either: refused before the upgrade.
    assert!(tokio_tungstenite::connect_async(format!("{ws_base}/")).await.is_err());
    c.delete_sandbox(&id).await;
}
