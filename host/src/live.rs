//! Talking to a runtime for live operations: the adapter plugin maps an
//! operation onto a request on its runtime (`crate::adapter::LiveOp` →
//! `LiveRequest`), and the host sends it here and pumps the answer, so a
//! stream or a terminal never passes through plugin memory.
//!
//! Streams are NDJSON in Bay's live protocol (`docs/plugins.md`): one JSON
//! object per line with an increasing `seq` and a `type`, ending with an
//! `exit` (shell) or `result` (python) event; `runtimes/ship/src/stream.rs`
//! is the reference implementation.

use std::sync::OnceLock;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::adapter::{LiveRequest, RuntimeLink};
use crate::error::{BayError, ErrorCode};
use crate::plugins::outbound::TOKEN_HEADER;

/// One client for live calls: no overall timeout (a followed stream lasts as
/// long as its process; runtimes enforce execution timeouts themselves).
pub(crate) fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("building the live HTTP client")
    })
}

/// The URL of a live request on a runtime.
pub(crate) fn url(link: &RuntimeLink, req: &LiveRequest, scheme: Option<&str>) -> Result<url::Url, BayError> {
    let mut url = url::Url::parse(&link.endpoint)
        .and_then(|base| base.join(&req.path))
        .map_err(|e| BayError::internal(format!("bad live request path {:?}: {e}", req.path)))?;
    if url.origin() != url::Url::parse(&link.endpoint).map_err(|e| BayError::internal(e.to_string()))?.origin() {
        return Err(BayError::internal(format!("the adapter's live request {:?} leaves its runtime", req.path)));
    }
    if !req.query.is_empty() {
        url.query_pairs_mut().extend_pairs(req.query.iter());
    }
    if let Some(s) = scheme {
        url.set_scheme(s).map_err(|_| BayError::internal("cannot switch the URL scheme"))?;
    }
    Ok(url)
}

/// Sends a live request; an error status becomes the matching envelope.
pub(crate) async fn send(link: &RuntimeLink, req: &LiveRequest, timeout: Option<Duration>) -> Result<reqwest::Response, BayError> {
    let mut r = client().request(req.method.clone(), url(link, req, None)?);
    if let Some(token) = &link.token {
        r = r.header(TOKEN_HEADER, &**token);
    }
    if let Some(body) = &req.body {
        r = r.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
    }
    if let Some(t) = timeout {
        r = r.timeout(t);
    }
    let resp = r.send().await.map_err(|e| BayError::ship(format!("the runtime could not be reached: {e}")))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Err(runtime_error(status, &text))
}

/// A runtime's error answer as Bay's envelope (the runtime's `detail`).
fn runtime_error(status: u16, body: &str) -> BayError {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().or(v["error"].as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    let code = match status {
        400 | 422 => ErrorCode::ValidationError,
        403 => ErrorCode::InvalidPath,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        504 => ErrorCode::Timeout,
        _ => ErrorCode::ShipError,
    };
    BayError::new(code, detail).with("runtime_status", status)
}

/// A JSON answer.
pub(crate) async fn json(link: &RuntimeLink, req: &LiveRequest) -> Result<(u16, Value), BayError> {
    let resp = send(link, req, Some(Duration::from_secs(60))).await?;
    let status = resp.status().as_u16();
    let v = resp.json().await.map_err(|e| BayError::ship(format!("the runtime's answer is not JSON: {e}")))?;
    Ok((status, v))
}

/// An NDJSON answer as a stream of events (a line that is not JSON ends it
/// with an error).
pub(crate) fn events(resp: reqwest::Response) -> impl Stream<Item = Result<Value, BayError>> + Send + 'static {
    let mut pending: Vec<u8> = Vec::new();
    resp.bytes_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| BayError::ship(format!("the runtime's stream broke: {e}")))?;
            pending.extend_from_slice(&chunk);
            let mut out = Vec::new();
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                out.push(serde_json::from_slice(&line).map_err(|e| BayError::ship(format!("a runtime event is not JSON: {e}"))));
            }
            Ok::<_, BayError>(out)
        })
        .flat_map(|batch| match batch {
            Ok(events) => futures::stream::iter(events).boxed(),
            Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
        })
}
