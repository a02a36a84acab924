use axum::Json;
use serde_json::{Value, json};

/// `GET /health` (no auth).
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /ready` (no auth): 200 when the database and the engine answer and
/// every profile's runtime type has an adapter; else 503 with the reasons
/// (`host/src/sandbox/readiness.rs`).
pub async fn ready(axum::extract::State(state): axum::extract::State<super::AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let r = state.sandboxes.readiness().await;
    if r.ready() {
        return Json(json!({ "status": "ready", "checks": r.checks })).into_response();
    }
    let message = format!("Bay is not ready: {}", r.reasons().join("; "));
    let body = json!({
        "status": "not_ready",
        "checks": r.checks,
        "error": { "code": "not_ready", "message": message, "details": { "reasons": r.reasons() } },
    });
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
