//! The one error type every handler of Ship and Gull returns.
//!
//! Shipyard's Ship and Gull are FastAPI apps, so clients (Bay's adapters,
//! the SDK) expect FastAPI's error shape: an HTTP status plus a JSON body
//! `{"detail": "..."}`. axum's own extractor rejections are plain text, so
//! they are converted here as well.

use axum::{
    Json,
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        multipart::{MultipartError, MultipartRejection},
        rejection::{JsonRejection, QueryRejection},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::beneath::PathError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub detail: String,
}

impl AppError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into() }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
    }
}

impl std::fmt::Display for AppError {
    /// Formats like FastAPI's `str(HTTPException)` ("403: Access denied…"),
    /// which Shipyard leaks into `/shell/exec` error strings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<PathError> for AppError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::OutsideWorkspace => Self::new(StatusCode::FORBIDDEN, "Access denied: path outside workspace"),
            PathError::Invalid(msg) => Self::bad_request(format!("Invalid path: {msg}")),
            PathError::Io(e) => Self::internal(format!("Failed to resolve path: {e}")),
        }
    }
}

/// Body validation failures are 422 like FastAPI/pydantic; only transport
/// level problems (body too large, read errors) keep their own status.
fn rejection_status(status: StatusCode) -> StatusCode {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
        other => other,
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        Self::new(rejection_status(r.status()), r.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        Self::new(rejection_status(r.status()), r.body_text())
    }
}

impl From<MultipartRejection> for AppError {
    fn from(r: MultipartRejection) -> Self {
        Self::new(rejection_status(r.status()), r.body_text())
    }
}

impl From<MultipartError> for AppError {
    fn from(e: MultipartError) -> Self {
        Self::new(e.status(), format!("Invalid multipart body: {}", e.body_text()))
    }
}

/// `axum::Json` with FastAPI-style rejections (422 + `{"detail": ...}`).
/// Like FastAPI, a body without any `Content-Type` is still parsed as JSON;
/// an explicit non-JSON type is rejected.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.headers().contains_key(header::CONTENT_TYPE) {
            let Json(v) = Json::<T>::from_request(req, state).await?;
            return Ok(ApiJson(v));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| AppError::new(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| AppError::unprocessable(format!("Failed to parse the request body as JSON: {e}")))
    }
}

/// `axum::extract::Query` with FastAPI-style rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// Runs blocking filesystem work off the async workers; a panic in the
/// closure becomes a 500 instead of tearing down the connection.
pub async fn blocking<T, F>(f: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(AppError::internal(format!("internal task failed: {e}"))),
    }
}
