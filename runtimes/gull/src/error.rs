//! The error type handlers return, in FastAPI's shape (`{"detail": …}`), and
//! a JSON extractor whose rejections are FastAPI-like 422s.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub detail: String,
}

impl AppError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into() }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        // Body validation failures are 422 like FastAPI/pydantic; transport
        // problems (body too large, read errors) keep their own status.
        let status = match r.status() {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
            other => other,
        };
        Self::new(status, r.body_text())
    }
}

/// `axum::Json` with FastAPI-style rejections. Like FastAPI, a body without
/// any `Content-Type` is still parsed as JSON.
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
