//! Admin endpoints: garbage collection (reference §1.8).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Owner, parse_body};
use crate::error::BayResult;

#[derive(Deserialize, Default)]
struct RunBody {
    #[serde(default)]
    tasks: Option<Vec<String>>,
}

/// Runs every enabled task now (even with `gc.enabled: false`) and reports
/// the requested ones (all when `tasks` is omitted).
pub async fn run_gc(State(state): State<AppState>, Owner(_owner): Owner, body: Bytes) -> BayResult<Response> {
    let body: RunBody = parse_body(&body)?;
    match state.gc.run_once().await {
        Ok(mut result) => {
            if let Some(wanted) = &body.tasks {
                result.results.retain(|r| wanted.contains(&r.task_name));
            }
            Ok(Json(result).into_response())
        }
        Err(_) => {
            // Shipyard Neo answers `{"detail"}`; the envelope is added alongside.
            let msg = "GC is already running, try again later";
            Ok((StatusCode::LOCKED, Json(json!({ "detail": msg, "error": { "code": "gc_running", "message": msg } }))).into_response())
        }
    }
}

/// `GET /v1/admin/plugins` (Bay): the plugins found, their versions and state.
pub async fn plugins(State(state): State<AppState>, Owner(_owner): Owner) -> Json<Value> {
    Json(json!({ "items": state.sandboxes.plugins.records() }))
}

pub async fn gc_status(State(state): State<AppState>, Owner(_owner): Owner) -> Json<Value> {
    Json(state.gc.status())
}
