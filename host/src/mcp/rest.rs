//! The tools' way into Bay: one REST request through Bay's own router
//! (`crate::api::router`, called with tower's `oneshot`), carrying the MCP
//! caller's credentials and request id. Nothing here knows about sandboxes;
//! the REST handlers decide everything.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::CALL_TIMEOUT_SECS;
use crate::api::middleware::{REQUEST_ID, RequestId};

/// Headers of the MCP request that a REST call carries along.
/// (`host` and `x-forwarded-proto` let answers that build URLs — a preview's — name this Bay.)
const FORWARDED: [&str; 4] = ["authorization", "x-owner", "host", "x-forwarded-proto"];
/// A JSON answer (file contents, history) may be this large.
const MAX_JSON_RESPONSE_BYTES: usize = 64 << 20;

/// Why a tool call failed; [`super::text::error_text`] renders it.
#[derive(Debug)]
pub(crate) enum CallError {
    /// REST answered with an error envelope (`code`, `message`, `details`).
    Api { code: String, message: String, details: Option<Value> },
    /// The tool's own argument check (before any REST call).
    Validation(String),
    /// The REST call took longer than [`CALL_TIMEOUT_SECS`].
    Timeout,
}

impl CallError {
    pub(crate) fn validation(msg: impl Into<String>) -> CallError {
        CallError::Validation(msg.into())
    }
    fn internal(msg: impl Into<String>) -> CallError {
        CallError::Api { code: "internal_error".into(), message: msg.into(), details: None }
    }
}

pub(crate) type CallResult<T> = Result<T, CallError>;

/// An in-process REST client acting as the caller of one MCP request.
#[derive(Clone)]
pub(crate) struct Rest {
    router: Router,
    headers: HeaderMap,
    connect_info: Option<ConnectInfo<SocketAddr>>,
}

impl Rest {
    /// Acts as the sender of the HTTP request `parts` (none: anonymous, as in a unit test).
    pub(crate) fn new(router: Router, parts: Option<&Parts>) -> Rest {
        let mut headers = HeaderMap::new();
        let mut connect_info = None;
        if let Some(parts) = parts {
            for name in FORWARDED {
                if let Some(v) = parts.headers.get(name) {
                    headers.insert(HeaderName::from_static(name), v.clone());
                }
            }
            // The request-id middleware ran on the MCP request; its id names
            // the REST call too, so both log lines carry the same id.
            let id = parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .or_else(|| parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned));
            if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                headers.insert(REQUEST_ID, v);
            }
            connect_info = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
        }
        Rest { router, headers, connect_info }
    }

    async fn send(&self, method: Method, uri: &str, body: Body, content_type: Option<&str>) -> CallResult<axum::response::Response> {
        let mut req = Request::builder().method(method).uri(uri).body(body).map_err(|e| CallError::internal(format!("bad request {uri}: {e}")))?;
        req.headers_mut().extend(self.headers.clone());
        if let Some(ct) = content_type {
            req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).map_err(|e| CallError::internal(e.to_string()))?);
        }
        if let Some(ci) = &self.connect_info {
            req.extensions_mut().insert(*ci);
        }
        match self.router.clone().oneshot(req).await {
            Ok(resp) => Ok(resp),
            Err(never) => match never {},
        }
    }

    /// Sends a request and reads the whole answer (at most `limit` bytes);
    /// an error status becomes [`CallError::Api`].
    async fn call(&self, method: Method, uri: &str, body: Body, content_type: Option<&str>, limit: usize) -> CallResult<(StatusCode, Bytes)> {
        let work = async {
            let resp = self.send(method, uri, body, content_type).await?;
            let status = resp.status();
            let read_limit = if status.is_success() { limit } else { 1 << 20 };
            let bytes = http_body_util::Limited::new(resp.into_body(), read_limit).collect().await.map(|c| c.to_bytes()).map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::validation(format!("response too large: more than {read_limit} bytes"))
                } else {
                    CallError::internal(format!("reading the response failed: {e}"))
                }
            })?;
            if status.is_success() { Ok((status, bytes)) } else { Err(api_error(status, &bytes)) }
        };
        tokio::time::timeout(Duration::from_secs(CALL_TIMEOUT_SECS), work).await.unwrap_or(Err(CallError::Timeout))
    }

    /// A JSON request (`body` as JSON, or none); the answer as JSON (`null` for 204).
    pub(crate) async fn json(&self, method: Method, uri: &str, body: Option<Value>) -> CallResult<Value> {
        let (body, ct) = match body {
            Some(v) => (Body::from(serde_json::to_vec(&v).map_err(|e| CallError::internal(e.to_string()))?), Some("application/json")),
            None => (Body::empty(), None),
        };
        let (status, bytes) = self.call(method, uri, body, ct, MAX_JSON_RESPONSE_BYTES).await?;
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::internal(format!("{uri} answered invalid JSON: {e}")))
    }

    pub(crate) async fn get(&self, uri: &str) -> CallResult<Value> {
        self.json(Method::GET, uri, None).await
    }

    pub(crate) async fn post(&self, uri: &str, body: Value) -> CallResult<Value> {
        self.json(Method::POST, uri, Some(body)).await
    }

    /// A GET whose answer is raw bytes (downloads), at most `limit` of them.
    pub(crate) async fn bytes(&self, uri: &str, limit: usize) -> CallResult<Bytes> {
        self.call(Method::GET, uri, Body::empty(), None, limit).await.map(|(_, b)| b).map_err(|e| match e {
            CallError::Validation(_) => CallError::validation(format!("file too large: more than {limit} bytes")),
            other => other,
        })
    }

    /// A `multipart/form-data` POST with text fields and one file part `file`.
    pub(crate) async fn multipart(&self, uri: &str, fields: &[(&str, &str)], file: Bytes) -> CallResult<Value> {
        let boundary = format!("bay-mcp-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(file.len() + 512);
        for (name, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={boundary}");
        let (_, bytes) = self.call(Method::POST, uri, Body::from(body), Some(&ct), MAX_JSON_RESPONSE_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::internal(format!("{uri} answered invalid JSON: {e}")))
    }
}

/// An error answer: Bay's envelope `{"error": {code, message, details}}`.
fn api_error(status: StatusCode, body: &[u8]) -> CallError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(err) => CallError::Api {
            code: err.get("code").and_then(Value::as_str).unwrap_or("unknown_error").to_owned(),
            message: err.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
            details: err.get("details").filter(|d| d.as_object().is_some_and(|o| !o.is_empty())).cloned(),
        },
        None => CallError::Api {
            code: format!("http_{}", status.as_u16()),
            message: format!("HTTP {} returned a non-envelope error: {}", status.as_u16(), String::from_utf8_lossy(&body[..body.len().min(500)])),
            details: None,
        },
    }
}

/// Percent-encodes one path segment (ids, skill keys, payload refs).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?k=v&…`, skipping `None` values.
pub(crate) fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in params {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any { format!("{path}?{}", q.finish()) } else { path.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(seg("blob:blob-1a/b c"), "blob%3Ablob-1a%2Fb%20c");
        assert_eq!(seg("sandbox-0123456789ab"), "sandbox-0123456789ab");
        assert_eq!(with_query("/v1/x", &[("a", Some("1 2&3".into())), ("b", None)]), "/v1/x?a=1+2%263");
        assert_eq!(with_query("/v1/x", &[("b", None)]), "/v1/x");
    }

    #[test]
    fn error_envelopes_become_api_errors() {
        let body = br#"{"error":{"code":"not_found","message":"Sandbox not found: x","request_id":"r","details":{}}}"#;
        match api_error(StatusCode::NOT_FOUND, body) {
            CallError::Api { code, message, details } => {
                assert_eq!((code.as_str(), message.as_str(), details), ("not_found", "Sandbox not found: x", None));
            }
            other => panic!("{other:?}"),
        }
        match api_error(StatusCode::BAD_GATEWAY, b"oops") {
            CallError::Api { code, .. } => assert_eq!(code, "http_502"),
            other => panic!("{other:?}"),
        }
    }
}
