//! Bay's error type and the JSON error envelope of the API.
//!
//! Every failure a client can see is a [`BayError`]: a stable `code`, an HTTP
//! status derived from it, a message and optional `details`. Handlers return
//! `Result<_, BayError>`; the response is rendered as
//! `{"error": {"code", "message", "request_id", "details"}}`. The request id is
//! only known to the request-id middleware, so the envelope is rendered there
//! (see [`crate::api::middleware`]); a `BayError` response carries its payload
//! in the response extensions until then.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The stable error codes of the API (Shipyard Neo compatible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InternalError,
    NotFound,
    Unauthorized,
    Forbidden,
    QuotaExceeded,
    /// Business-rule validation (400).
    ValidationError,
    /// Request schema validation: a body or query that does not parse (422).
    RequestValidation,
    InvalidPath,
    CapabilityNotSupported,
    Conflict,
    SandboxExpired,
    SandboxTtlInfinite,
    FileNotFound,
    SessionNotReady,
    ShipError,
    Timeout,
    /// The route exists but not for this method (405).
    MethodNotAllowed,
    /// A request body, or one field of it, is over its configured limit (413).
    PayloadTooLarge,
    /// The request target (path and query) is too long (414).
    UriTooLong,
    /// The request headers are too large or too many (431).
    HeadersTooLarge,
    /// The body is not of a media type the route accepts (415).
    UnsupportedMediaType,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InternalError => "internal_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::ValidationError | ErrorCode::RequestValidation => "validation_error",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::CapabilityNotSupported => "capability_not_supported",
            ErrorCode::Conflict => "conflict",
            ErrorCode::SandboxExpired => "sandbox_expired",
            ErrorCode::SandboxTtlInfinite => "sandbox_ttl_infinite",
            ErrorCode::FileNotFound => "file_not_found",
            ErrorCode::SessionNotReady => "session_not_ready",
            ErrorCode::ShipError => "ship_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::NotFound | ErrorCode::FileNotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ValidationError | ErrorCode::InvalidPath | ErrorCode::CapabilityNotSupported => StatusCode::BAD_REQUEST,
            ErrorCode::RequestValidation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Conflict | ErrorCode::SandboxExpired | ErrorCode::SandboxTtlInfinite => StatusCode::CONFLICT,
            ErrorCode::SessionNotReady => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShipError => StatusCode::BAD_GATEWAY,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// An error as the API reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct BayError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
}

pub type BayResult<T> = Result<T, BayError>;

/// Longest value a message quotes from the request ([`echo`]).
pub const ECHO_CHARS: usize = 128;
/// Longest message an error carries, whatever built it (serde's messages
/// quote the offending value whole).
const MESSAGE_CHARS: usize = 1024;
/// Longest string anywhere in `details`.
const DETAIL_CHARS: usize = 256;

/// A value taken from the request, as an error message may quote it: at most
/// [`ECHO_CHARS`] characters, then `…`. A 50 MB profile name must not come
/// back as a 50 MB error body.
pub fn echo(value: &str) -> String {
    truncate(value, ECHO_CHARS)
}

fn truncate(value: &str, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        None => value.to_owned(),
        Some((end, _)) => format!("{}…", &value[..end]),
    }
}

/// Clamps every string inside a details value (arrays and objects included).
fn clamp(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > DETAIL_CHARS => Value::String(truncate(&s, DETAIL_CHARS)),
        Value::Array(items) => Value::Array(items.into_iter().map(clamp).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (truncate(&k, DETAIL_CHARS), clamp(v))).collect()),
        other => other,
    }
}

impl BayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.len() > MESSAGE_CHARS { truncate(&message, MESSAGE_CHARS) } else { message };
        BayError { code, message, details: Map::new() }
    }

    /// Adds one `details` entry (long strings are truncated).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), clamp(value.into()));
        self
    }

    /// A body or field over its limit (413). `limit` is the `limits.*` key.
    pub fn payload_too_large(what: &str, limit: &str, max_bytes: u64) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("{what} is larger than {max_bytes} bytes (limits.{limit})"))
            .with("limit", limit)
            .with("max_bytes", max_bytes)
    }

    /// An authenticated caller without the scope a route needs (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn ship(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ShipError, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Timeout, message)
    }

    /// A request body or query string that does not match the schema (422).
    /// `loc` follows FastAPI's convention, e.g. `["body", "timeout"]`.
    pub fn request_validation(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self::request_validation_at(loc.iter().map(|l| Value::from(*l)).collect(), msg, kind)
    }

    /// As [`request_validation`](Self::request_validation), with list indices
    /// in `loc` as numbers (`["body", "commands", 3]`).
    pub fn request_validation_at(loc: Vec<Value>, msg: impl Into<String>, kind: &str) -> Self {
        let msg = msg.into();
        Self::new(ErrorCode::RequestValidation, format!("Request validation failed: {msg}"))
            .with("errors", json!([{ "loc": loc, "msg": msg, "type": kind }]))
    }

    pub fn sandbox_not_found(id: &str) -> Self {
        Self::not_found(format!("Sandbox not found: {}", echo(id)))
    }

    pub fn session_not_ready(message: impl Into<String>, sandbox_id: &str, retry_after_ms: u64) -> Self {
        Self::new(ErrorCode::SessionNotReady, message).with("sandbox_id", sandbox_id).with("retry_after_ms", retry_after_ms)
    }

    pub fn capability_not_supported(message: String, capability: &str, available: &[String]) -> Self {
        Self::new(ErrorCode::CapabilityNotSupported, message).with("capability", capability).with("available", available.to_vec())
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON envelope; `request_id` is added when known.
    pub fn envelope(&self, request_id: Option<&str>) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.as_str().into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(id) = request_id {
            error.insert("request_id".into(), id.into());
        }
        if !self.details.is_empty() {
            error.insert("details".into(), Value::Object(self.details.clone()));
        }
        json!({ "error": error })
    }
}

/// Marker carried in the response extensions so the middleware can render the
/// envelope with the request id.
#[derive(Clone)]
pub struct PendingError(pub BayError);

impl IntoResponse for BayError {
    fn into_response(self) -> Response {
        if self.code == ErrorCode::InternalError {
            tracing::error!(message = %self.message, "internal error");
        }
        // Rendered without a request id here; the middleware re-renders it with one.
        let mut response = (self.status(), axum::Json(self.envelope(None))).into_response();
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

impl From<sqlx::Error> for BayError {
    fn from(err: sqlx::Error) -> Self {
        BayError::internal(format!("database error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_code_message_request_id_and_details() {
        let err = BayError::new(ErrorCode::InvalidPath, "path must be a relative path").with("field", "path").with("reason", "absolute_path");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let v = err.envelope(Some("req-1"));
        assert_eq!(v["error"]["code"], "invalid_path");
        assert_eq!(v["error"]["request_id"], "req-1");
        assert_eq!(v["error"]["details"]["reason"], "absolute_path");
    }

    #[test]
    fn details_are_omitted_when_empty() {
        let v = BayError::not_found("Sandbox not found: x").envelope(None);
        assert!(v["error"].get("details").is_none());
        assert!(v["error"].get("request_id").is_none());
    }

    #[test]
    fn echoed_values_and_messages_are_bounded() {
        let long = "é".repeat(10_000);
        let e = echo(&long);
        assert_eq!(e.chars().count(), ECHO_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(echo("short"), "short");
        let err = BayError::validation(format!("Invalid profile: {long}")).with("errors", json!([{ "msg": long.clone(), "loc": ["body"] }]));
        assert!(err.message.chars().count() <= MESSAGE_CHARS + 1);
        let msg = err.details["errors"][0]["msg"].as_str().unwrap();
        assert_eq!(msg.chars().count(), DETAIL_CHARS + 1);
        assert_eq!(err.details["errors"][0]["loc"], json!(["body"]));
    }

    #[test]
    fn statuses_follow_the_reference() {
        let cases = [
            (ErrorCode::NotFound, 404),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::ValidationError, 400),
            (ErrorCode::RequestValidation, 422),
            (ErrorCode::Conflict, 409),
            (ErrorCode::SandboxExpired, 409),
            (ErrorCode::FileNotFound, 404),
            (ErrorCode::SessionNotReady, 503),
            (ErrorCode::ShipError, 502),
            (ErrorCode::Timeout, 504),
            (ErrorCode::QuotaExceeded, 429),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::UriTooLong, 414),
            (ErrorCode::HeadersTooLarge, 431),
            (ErrorCode::UnsupportedMediaType, 415),
            (ErrorCode::Forbidden, 403),
        ];
        for (code, status) in cases {
            assert_eq!(code.status().as_u16(), status, "{code:?}");
        }
    }
}
