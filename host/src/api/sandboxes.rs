//! Sandbox lifecycle endpoints (Shipyard Neo's contract, docs/compatibility.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Owner, check_range, parse_body, parse_query};
use crate::error::BayResult;
use crate::idempotency;
use crate::ids;
use crate::sandbox::{CreateSandbox, SandboxPage, SandboxStatus, SandboxView};

#[derive(Deserialize, Serialize)]
pub(super) struct CreateBody {
    #[serde(default = "default_profile")]
    pub profile: String,
    #[serde(default)]
    pub cargo_id: Option<String>,
    #[serde(default)]
    pub ttl: Option<i64>,
}

fn default_profile() -> String {
    "python-default".into()
}

/// `ttl` (null, 0 or negative: no expiry) and `extend_by` are at most
/// `ids::MAX_TTL_SECS` (422 beyond, naming the field).
fn check_ttl(value: i64, field: &str) -> BayResult<()> {
    check_range(value, i64::MIN, ids::MAX_TTL_SECS, &["body", field])
}

pub(super) fn parse_create(bytes: &[u8]) -> BayResult<CreateBody> {
    let body: CreateBody = parse_body(bytes)?;
    if let Some(ttl) = body.ttl {
        check_ttl(ttl, "ttl")?;
    }
    Ok(body)
}

pub(super) fn parse_extend(bytes: &[u8]) -> BayResult<ExtendBody> {
    let body: ExtendBody = parse_body(bytes)?;
    check_ttl(body.extend_by, "extend_by")?;
    Ok(body)
}

pub async fn create(State(state): State<AppState>, Owner(owner): Owner, headers: HeaderMap, body: Bytes) -> BayResult<Response> {
    let body = parse_create(&body)?;
    let claim = state.idempotency.claim(&owner, &headers, "POST", "/v1/sandboxes", &body).await?;
    let request = CreateSandbox { profile: body.profile, cargo_id: body.cargo_id, ttl: body.ttl };
    idempotency::run(claim, StatusCode::CREATED, state.sandboxes.create(&owner, request)).await
}

#[derive(Deserialize, Serialize)]
pub(super) struct ExtendBody {
    pub extend_by: i64,
}

pub async fn extend_ttl(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> BayResult<Response> {
    state.sandboxes.find(&owner, &id).await?;
    let body = parse_extend(&body)?;
    let path = format!("/v1/sandboxes/{id}/extend_ttl");
    let claim = state.idempotency.claim(&owner, &headers, "POST", &path, &body).await?;
    idempotency::run(claim, StatusCode::OK, state.sandboxes.extend_ttl(&owner, &id, body.extend_by)).await
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

pub async fn list(State(state): State<AppState>, Owner(owner): Owner, RawQuery(q): RawQuery) -> BayResult<Json<SandboxPage>> {
    let query: ListQuery = parse_query(q.as_deref())?;
    let limit = query.limit.unwrap_or(50);
    check_range(limit, 1, 200, &["query", "limit"])?;
    // An unknown status filter is ignored, as in Shipyard Neo.
    let status = query.status.as_deref().and_then(SandboxStatus::parse);
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    Ok(Json(state.sandboxes.list(&owner, limit as usize, cursor, status).await?))
}

pub async fn get(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<SandboxView>> {
    Ok(Json(state.sandboxes.get(&owner, &id).await?))
}

pub async fn stop(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<Value>> {
    state.sandboxes.stop(&owner, &id).await?;
    Ok(Json(json!({ "status": "stopped" })))
}

/// Bay extension: freezes the session with its memory kept (host/src/sandbox/pause.rs).
pub async fn pause(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<SandboxView>> {
    Ok(Json(state.sandboxes.pause(&owner, &id).await?))
}

/// Bay extension: thaws a paused session (any capability call does too).
pub async fn resume(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<SandboxView>> {
    Ok(Json(state.sandboxes.resume(&owner, &id).await?))
}

pub async fn keepalive(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<Value>> {
    state.sandboxes.keepalive(&owner, &id).await?;
    Ok(Json(json!({ "status": "ok" })))
}

pub async fn delete(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<StatusCode> {
    state.sandboxes.delete(&owner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
