//! `GET /v1/sandboxes/{id}/terminal`: a WebSocket carrying a terminal in the
//! sandbox. Bay opens the runtime's own terminal WebSocket (the adapter
//! names it; Ship serves Shipyard Neo's `/term/ws`) with the session's
//! secret and pumps frames both ways: text and binary frames are input, a
//! JSON text frame `{"type":"resize","cols","rows"}` resizes, output comes
//! back as text frames.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::AppState;
use super::extract::{Owner, check_range, parse_query};
use crate::adapter::LiveOp;
use crate::error::{BayError, BayResult};
use crate::plugins::outbound::TOKEN_HEADER;
use crate::sandbox::live::LiveTarget;

#[derive(Deserialize)]
struct Size {
    #[serde(default)]
    cols: Option<i64>,
    #[serde(default)]
    rows: Option<i64>,
}

pub async fn terminal(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> BayResult<Response> {
    let (sandbox, profile) = super::sandbox_for(&state, &owner, &id, "shell").await?;
    let size: Size = parse_query(q.as_deref())?;
    let (cols, rows) = (size.cols.unwrap_or(80), size.rows.unwrap_or(24));
    check_range(cols, 1, 1000, &["query", "cols"])?;
    check_range(rows, 1, 1000, &["query", "rows"])?;
    let ws = ws.map_err(|e| {
        BayError::validation(format!("the terminal is a WebSocket: connect with a WebSocket client ({e})")).with("reason", "websocket_required")
    })?;
    let t = state.sandboxes.live(&sandbox, &profile, LiveOp::Terminal { cols: cols as u16, rows: rows as u16 }).await?;
    let url = crate::live::url(&t.link, &t.request, Some("ws"))?;
    let mut req = url.as_str().into_client_request().map_err(|e| BayError::internal(format!("terminal request: {e}")))?;
    if let Some(token) = &t.link.token {
        req.headers_mut().insert(TOKEN_HEADER, token.parse().map_err(|_| BayError::internal("bad session secret"))?);
    }
    let (runtime, _) =
        tokio_tungstenite::connect_async(req).await.map_err(|e| BayError::ship(format!("the runtime's terminal could not be opened: {e}")))?;
    Ok(ws.on_upgrade(move |client| pump(client, runtime, t)))
}

/// Pumps frames both ways until either side closes; the target keeps the
/// session in use meanwhile.
async fn pump(
    client: WebSocket,
    runtime: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    _t: LiveTarget,
) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_runtime, mut from_runtime) = runtime.split();
    let up = async {
        while let Some(Ok(m)) = from_client.next().await {
            let m = match m {
                Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
                Message::Binary(b) => tungstenite::Message::Binary(b),
                Message::Ping(p) => tungstenite::Message::Ping(p),
                Message::Pong(p) => tungstenite::Message::Pong(p),
                Message::Close(_) => break,
            };
            if to_runtime.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_runtime.close().await;
    };
    let down = async {
        while let Some(Ok(m)) = from_runtime.next().await {
            let m = match m {
                tungstenite::Message::Text(t) => Message::Text(t.as_str().into()),
                tungstenite::Message::Binary(b) => Message::Binary(b),
                tungstenite::Message::Ping(p) => Message::Ping(p),
                tungstenite::Message::Pong(p) => Message::Pong(p),
                tungstenite::Message::Close(_) | tungstenite::Message::Frame(_) => break,
            };
            if to_client.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
