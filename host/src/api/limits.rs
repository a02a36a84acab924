//! Request limits enforced around the handlers (docs/security.md, "Limits"):
//!
//! - [`head_limits`]: the request target (414) and the headers (431), on
//!   every request, before routing;
//! - [`route_body_limit`]: one body limit per route, chosen by the matched
//!   route (413 before the handler runs when `Content-Length` says so, else
//!   as soon as the limit is crossed while reading);
//! - [`drain_unread_body`]: after an answer given without reading the whole
//!   body (an early error), the rest is read and discarded, bounded, so a
//!   client that writes its whole body before reading gets the answer
//!   instead of a reset connection.
//!
//! Field limits (python `code`, shell `command`, …) are checked by the
//! handlers after parsing, with [`check_field`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use crate::config::LimitsConfig;
use crate::error::{BayError, ErrorCode};

/// The body limit of one route: the `limits.*` key that sets it and the
/// resulting maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyLimit {
    pub key: &'static str,
    pub max: u64,
}

impl BodyLimit {
    fn error(&self, declared: Option<u64>) -> BayError {
        let err = BayError::payload_too_large("Request body", self.key, self.max).with("field", "body");
        match declared {
            Some(n) => err.with("content_length", n),
            None => err,
        }
    }
}

/// The body limit of a route (its matched path, as axum's `MatchedPath`
/// spells it). `None`: not limited here — the upload streams (its text
/// fields are bounded by `api::multipart`), and so does a file write, whose
/// content has its own limit (`api::file_text::WRITE_LIMIT`).
pub(crate) fn body_limit_for(limits: &LimitsConfig, method: &Method, route: &str) -> Option<BodyLimit> {
    // Routes carrying one large field may be that field's limit plus an
    // ordinary JSON body: the field itself is checked after parsing.
    let with_field = |key, field: u64| Some(BodyLimit { key, max: field.saturating_add(limits.json_body_bytes) });
    match route {
        "/v1/sandboxes/{id}/filesystem/upload" => None,
        // A preview streams both ways, as the server in the sandbox reads it.
        "/v1/sandboxes/{id}/ports/{port}" | "/v1/sandboxes/{id}/ports/{port}/" | "/v1/sandboxes/{id}/ports/{port}/{*path}" => None,
        "/v1/sandboxes/{id}/ports/{port}/token" if method != Method::POST => None,
        "/v1/sandboxes/{id}/filesystem/files" if method == Method::PUT => None,
        "/v1/skills/payloads" => Some(BodyLimit { key: "skills_payload_bytes", max: limits.skills_payload_bytes }),
        "/v1/sandboxes/{id}/python/exec" => with_field("python_code_bytes", limits.python_code_bytes),
        "/v1/sandboxes/{id}/shell/exec" => with_field("shell_command_bytes", limits.shell_command_bytes),
        "/v1/sandboxes/{id}/browser/exec" => with_field("browser_cmd_bytes", limits.browser_cmd_bytes),
        "/v1/sandboxes/{id}/browser/exec_batch" => with_field("browser_batch_bytes", limits.browser_batch_bytes),
        _ => Some(BodyLimit { key: "json_body_bytes", max: limits.json_body_bytes }),
    }
}

/// A field over its limit (413 naming the field).
pub(crate) fn check_field(field: &str, len: usize, key: &'static str, max: u64) -> Result<(), BayError> {
    if len as u64 > max {
        return Err(BayError::payload_too_large(&format!("Field '{field}'"), key, max).with("field", field).with("actual_bytes", len as u64));
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Route layer (runs after routing): applies the route's body limit.
pub(crate) async fn route_body_limit(State(limits): State<Arc<LimitsConfig>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let Some(limit) = route.and_then(|r| body_limit_for(&limits, req.method(), &r)) else {
        return next.run(req).await;
    };
    if let Some(declared) = content_length(req.headers())
        && declared > limit.max
    {
        // Answered without reading: `drain_unread_body` takes care of the rest.
        return limit.error(Some(declared)).into_response();
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| Body::new(LimitedBody { inner: body, remaining: limit.max, exceeded: exceeded.clone() }));
    let response = next.run(req).await;
    if exceeded.load(Ordering::Relaxed) {
        // Whatever the extractor made of the failed read, the answer is 413.
        return limit.error(None).into_response();
    }
    response
}

/// A body that fails once more than `remaining` bytes have been read.
struct LimitedBody {
    inner: Body,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(data) = f.data_ref()
        {
            let len = data.len() as u64;
            if len > self.remaining {
                self.remaining = 0;
                self.exceeded.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(axum::Error::new("request body over its limit"))));
            }
            self.remaining -= len;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Outer layer: the request target and the headers (before routing, so an
/// unknown route with a huge head is still 414/431, not 404).
pub(crate) async fn head_limits(State(limits): State<Arc<LimitsConfig>>, req: Request, next: Next) -> Response {
    if let Err(e) = check_head(&limits, &req) {
        return e.into_response();
    }
    next.run(req).await
}

pub(crate) fn check_head(limits: &LimitsConfig, req: &Request) -> Result<(), BayError> {
    let target = req.uri().path_and_query().map(|pq| pq.as_str().len()).unwrap_or(0) as u64;
    if target > limits.uri_bytes {
        return Err(BayError::new(
            ErrorCode::UriTooLong,
            format!("Request target is {target} bytes; the limit is {} (limits.uri_bytes)", limits.uri_bytes),
        )
        .with("limit", "uri_bytes")
        .with("max_bytes", limits.uri_bytes)
        .with("actual_bytes", target));
    }
    let count = req.headers().len() as u64;
    if count > limits.header_count {
        return Err(BayError::new(
            ErrorCode::HeadersTooLarge,
            format!("{count} request headers; the limit is {} (limits.header_count)", limits.header_count),
        )
        .with("limit", "header_count")
        .with("max", limits.header_count)
        .with("actual", count));
    }
    // As HTTP/1 spells them: `name: value\r\n`.
    let bytes: u64 = req.headers().iter().map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64).sum();
    if bytes > limits.header_bytes {
        return Err(BayError::new(
            ErrorCode::HeadersTooLarge,
            format!("Request headers are {bytes} bytes; the limit is {} (limits.header_bytes)", limits.header_bytes),
        )
        .with("limit", "header_bytes")
        .with("max_bytes", limits.header_bytes)
        .with("actual_bytes", bytes));
    }
    Ok(())
}

/// Outermost body layer: see the module docs. A client that sent
/// `Expect: 100-continue` has not sent its body and will not unless asked:
/// nothing to drain, the answer goes out at once.
pub(crate) async fn drain_unread_body(State(limits): State<Arc<LimitsConfig>>, req: Request, next: Next) -> Response {
    let expects_continue = req.headers().get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        return next.run(req).await;
    }
    let unread = Arc::new(Mutex::new(None));
    let req = req.map(|body| Body::new(TrackedBody { inner: Some(body), unread: unread.clone() }));
    let mut response = next.run(req).await;
    let rest = unread.lock().expect("unread body").take();
    if let Some(rest) = rest {
        let budget = limits.drain_body_bytes;
        let drained = match rest.size_hint().upper() {
            Some(left) if left > budget => false,
            _ => drain(rest, budget, Duration::from_millis(limits.drain_timeout_ms)).await,
        };
        if !drained {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

/// Reads and discards a body; false when it is longer than `budget`, fails,
/// or takes longer than `timeout`.
async fn drain(mut body: Body, budget: u64, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut read = 0u64;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(deadline, frame).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len() as u64;
                    if read > budget {
                        return false;
                    }
                }
            }
            Ok(None) => return true,
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// A request body that, when dropped before its end, hands what is left of
/// it to [`drain_unread_body`].
struct TrackedBody {
    inner: Option<Body>,
    unread: Arc<Mutex<Option<Body>>>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            // The end, or a broken body: nothing left worth draining.
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(|b| b.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take()
            && !rest.is_end_stream()
            && let Ok(mut slot) = self.unread.lock()
        {
            *slot = Some(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_their_own_body_limit() {
        let l = LimitsConfig::default();
        let get = |m: Method, r: &str| body_limit_for(&l, &m, r);
        assert_eq!(get(Method::POST, "/v1/sandboxes").unwrap(), BodyLimit { key: "json_body_bytes", max: 1 << 20 });
        assert_eq!(get(Method::POST, "/v1/sandboxes/{id}/python/exec").unwrap().max, (4 << 20) + (1 << 20));
        assert_eq!(get(Method::POST, "/v1/sandboxes/{id}/browser/exec_batch").unwrap().key, "browser_batch_bytes");
        assert_eq!(get(Method::POST, "/v1/skills/payloads").unwrap().max, 8 << 20);
        assert_eq!(get(Method::PUT, "/v1/sandboxes/{id}/filesystem/files"), None);
        assert_eq!(get(Method::DELETE, "/v1/sandboxes/{id}/filesystem/files").unwrap().key, "json_body_bytes");
        assert_eq!(get(Method::POST, "/v1/sandboxes/{id}/filesystem/upload"), None);
    }

    #[tokio::test]
    async fn the_route_layer_sees_the_full_nested_route() {
        use axum::Router;
        use axum::routing::post;
        use tower::ServiceExt;
        async fn echo_route(req: Request, next: Next) -> Response {
            let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
            let mut r = next.run(req).await;
            r.headers_mut().insert("x-route", HeaderValue::from_str(&route).unwrap());
            r
        }
        let v1 = Router::new().route("/sandboxes/{id}/python/exec", post(|| async { "ok" })).route_layer(axum::middleware::from_fn(echo_route));
        let app = Router::new().nest("/v1", v1);
        let req = Request::builder().method("POST").uri("/v1/sandboxes/sb-1/python/exec").body(Body::empty()).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["x-route"], "/v1/sandboxes/{id}/python/exec");
    }

    #[test]
    fn fields_over_their_limit_are_413_naming_the_field() {
        assert!(check_field("code", 10, "python_code_bytes", 10).is_ok());
        let e = check_field("code", 11, "python_code_bytes", 10).unwrap_err();
        assert_eq!(e.status().as_u16(), 413);
        assert_eq!(e.code.as_str(), "payload_too_large");
        assert_eq!(e.details["field"], "code");
        assert_eq!(e.details["limit"], "python_code_bytes");
        assert_eq!(e.details["max_bytes"], 10);
    }

    fn request(uri: &str, headers: &[(&str, String)]) -> Request {
        let mut r = Request::builder().uri(uri);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.body(Body::empty()).unwrap()
    }

    #[test]
    fn heads_over_the_limits_are_414_and_431() {
        let l = LimitsConfig { uri_bytes: 100, header_bytes: 200, header_count: 3, ..Default::default() };
        assert!(check_head(&l, &request("/v1/sandboxes?x=1", &[])).is_ok());
        let e = check_head(&l, &request(&format!("/v1/sandboxes?q={}", "a".repeat(100)), &[])).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code.as_str()), (414, "uri_too_long"));
        let e = check_head(&l, &request("/", &[("x-a", "b".repeat(300))])).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code.as_str()), (431, "headers_too_large"));
        assert_eq!(e.details["limit"], "header_bytes");
        let many: Vec<(&str, String)> = ["a", "b", "c", "d"].iter().map(|k| (*k, "1".to_owned())).collect();
        let e = check_head(&l, &request("/", &many)).unwrap_err();
        assert_eq!(e.details["limit"], "header_count");
    }

    #[tokio::test]
    async fn limited_bodies_fail_past_their_limit_and_flag_it() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = Body::new(LimitedBody { inner: Body::from(vec![b'a'; 10]), remaining: 9, exceeded: exceeded.clone() });
        assert!(axum::body::to_bytes(body, usize::MAX).await.is_err());
        assert!(exceeded.load(Ordering::Relaxed));
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = Body::new(LimitedBody { inner: Body::from(vec![b'a'; 10]), remaining: 10, exceeded: exceeded.clone() });
        assert_eq!(axum::body::to_bytes(body, usize::MAX).await.unwrap().len(), 10);
        assert!(!exceeded.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn dropped_bodies_are_handed_back_and_drained_within_budget() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..4).map(|_| Ok(Bytes::from(vec![0u8; 1000]))).collect();
        let unread = Arc::new(Mutex::new(None));
        let tracked = TrackedBody { inner: Some(Body::from_stream(futures::stream::iter(chunks))), unread: unread.clone() };
        drop(tracked);
        let rest = unread.lock().unwrap().take().expect("handed back");
        assert!(drain(rest, 4000, Duration::from_secs(5)).await);

        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..4).map(|_| Ok(Bytes::from(vec![0u8; 1000]))).collect();
        assert!(!drain(Body::from_stream(futures::stream::iter(chunks)), 3999, Duration::from_secs(5)).await);
        // A body read to its end leaves nothing to drain.
        let unread = Arc::new(Mutex::new(None));
        let tracked = Body::new(TrackedBody { inner: Some(Body::from("abc")), unread: unread.clone() });
        assert_eq!(axum::body::to_bytes(tracked, 10).await.unwrap(), "abc");
        assert!(unread.lock().unwrap().is_none());
    }
}
