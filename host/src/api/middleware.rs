//! Request context: the request id, a tracing span per request, the access
//! log, and the final rendering of error envelopes (which need the id).

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{BayError, ErrorCode, PendingError};

pub const REQUEST_ID: &str = "x-request-id";

/// The id of the current request, for handlers that want it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Marks an answer that is not Bay's own (a port preview's server): its
/// error statuses keep their body, untouched.
#[derive(Clone, Copy)]
pub(crate) struct Passthrough;

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let pending = match response.extensions_mut().remove::<PendingError>() {
        Some(PendingError(err)) => Some(err),
        None if response.extensions().get::<Passthrough>().is_some() => None,
        None => foreign_error(&mut response).await,
    };
    if let Some(err) = pending {
        let body = serde_json::to_vec(&err.envelope(Some(&id))).unwrap_or_default();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *response.body_mut() = Body::from(body);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let status = response.status().as_u16();
    let elapsed_us = started.elapsed().as_micros() as u64;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_us, "request failed");
        } else {
            tracing::info!(status, elapsed_us, "request");
        }
    });
    response
}

/// An error response that did not come from a [`BayError`] (an axum
/// extractor's rejection, in plain text) becomes the same envelope, with the
/// same status; its text (bounded) is the message.
async fn foreign_error(response: &mut Response) -> Option<BayError> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let json = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if json {
        return None;
    }
    let code = match status.as_u16() {
        400 => ErrorCode::ValidationError,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        414 => ErrorCode::UriTooLong,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::RequestValidation,
        429 => ErrorCode::QuotaExceeded,
        431 => ErrorCode::HeadersTooLarge,
        _ if status.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::ValidationError,
    };
    let body = std::mem::take(response.body_mut());
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("Error").to_owned() } else { text };
    // The status stays what it was; only the body changes.
    if code.status() != status {
        tracing::debug!(%status, "error response without a Bay error code of that status");
    }
    Some(BayError::new(code, message))
}

/// A panicking handler becomes a 500 `internal_error` envelope, never a bare 500.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %detail, "handler panicked");
    BayError::internal("Internal server error").into_response()
}
