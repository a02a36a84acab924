//! `GET /proxy/tcp/{port}` with `Upgrade: tcp`: a raw byte tunnel to a TCP
//! port inside the sandbox. Bay's port previews (host/src/api/ports.rs)
//! speak HTTP — and WebSocket — to the user's server through it, so a
//! preview needs nothing published on the host and works on every engine
//! through the one address Bay already reaches: this runtime's.
//!
//! Like every other route it requires the session's `X-Bay-Token`; the
//! bytes that follow the upgrade are the user's server's business. Ship's
//! own port is refused: the tunnel must not become a way around the token.

use axum::{
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use hyper_util::rt::TokioIo;
use runtime_common::error::AppError;
use tokio::net::TcpStream;
use tracing::debug;

use crate::AppState;

/// The protocol named in `Upgrade:` (Bay's, documented in docs/plugins.md).
pub(crate) const PROTOCOL: &str = "tcp";

pub(crate) async fn tcp_handler(State(state): State<AppState>, Path(port): Path<String>, mut req: Request) -> Result<Response, AppError> {
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ => return Err(AppError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("Port must be a number from 1 to 65535, not {port:?}"))),
    };
    if port == state.cfg.port {
        return Err(AppError::new(StatusCode::FORBIDDEN, format!("Port {port} is the runtime's own API")));
    }
    let asked = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    if !asked {
        return Err(AppError::new(StatusCode::BAD_REQUEST, "This route is a tunnel: send `Connection: Upgrade` and `Upgrade: tcp`"));
    }
    let upstream = connect(port)
        .await
        .ok_or_else(|| AppError::new(StatusCode::BAD_GATEWAY, format!("Nothing in the sandbox is listening on port {port} (127.0.0.1 or ::1)")))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut client = TokioIo::new(upgraded);
        let mut upstream = upstream;
        let r = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        debug!(port, result = ?r, "tunnel closed");
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    resp.headers_mut().insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    Ok(resp)
}

/// Servers started with `localhost` may listen on either loopback address.
async fn connect(port: u16) -> Option<TcpStream> {
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        if let Ok(s) = TcpStream::connect(&addr).await {
            let _ = s.set_nodelay(true);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use runtime_common::token::RuntimeToken;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::testutil;

    /// Sends a raw request head and returns the connection and the answer's head.
    async fn open(addr: std::net::SocketAddr, head: &str) -> (tokio::net::TcpStream, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before the head ended: {:?}", String::from_utf8_lossy(&got));
            got.push(b[0]);
        }
        (s, String::from_utf8(got).unwrap())
    }

    fn head(port: u16, token: &str) -> String {
        format!("GET /proxy/tcp/{port} HTTP/1.1\r\nHost: ship\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nX-Bay-Token: {token}\r\n\r\n")
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_to_a_port_in_the_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let addr = testutil::serve(testutil::state(d.path(), &[]), RuntimeToken::new(Some("t0k"))).await;
        // An echo server, as a user's program would listen.
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = echo.accept().await.unwrap();
            let (mut r, mut w) = c.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
        });

        let (mut s, answer) = open(addr, &head(port, "t0k")).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("upgrade: tcp"), "{answer}");
        s.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping\n");
    }

    #[tokio::test]
    async fn the_tunnel_needs_the_token_a_listener_and_a_port_other_than_ships() {
        let d = tempfile::tempdir().unwrap();
        let addr = testutil::serve(testutil::state(d.path(), &[("SHIP_PORT", "8123")]), RuntimeToken::new(Some("t0k"))).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let status = |answer: &str| answer.split(' ').nth(1).unwrap_or_default().to_owned();
        assert_eq!(status(&open(addr, &head(closed, "wrong")).await.1), "401");
        assert_eq!(status(&open(addr, &head(closed, "t0k")).await.1), "502");
        assert_eq!(status(&open(addr, &head(8123, "t0k")).await.1), "403");
        assert_eq!(status(&open(addr, &head(0, "t0k")).await.1), "422");
        let plain = "GET /proxy/tcp/8000 HTTP/1.1\r\nHost: ship\r\nX-Bay-Token: t0k\r\n\r\n";
        assert_eq!(status(&open(addr, plain).await.1), "400");
    }
}
