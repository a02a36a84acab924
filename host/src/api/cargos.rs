//! Cargo endpoints (Shipyard Neo's contract, docs/compatibility.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{Owner, check_range, parse_body, parse_query};
use crate::error::{BayError, BayResult};
use crate::idempotency;
use crate::sandbox::cargos::{CargoPage, CargoView};

#[derive(Deserialize, Serialize)]
pub(super) struct CreateBody {
    #[serde(default)]
    pub size_limit_mb: Option<i64>,
}

/// Largest `size_limit_mb` (Shipyard Neo's bound, 64 GiB).
pub(super) const MAX_SIZE_LIMIT_MB: i64 = 65536;

pub(super) fn parse_create(bytes: &[u8]) -> BayResult<CreateBody> {
    let body: CreateBody = parse_body(bytes)?;
    if let Some(size) = body.size_limit_mb {
        check_range(size, 1, MAX_SIZE_LIMIT_MB, &["body", "size_limit_mb"])?;
    }
    Ok(body)
}

pub async fn create(State(state): State<AppState>, Owner(owner): Owner, headers: HeaderMap, body: Bytes) -> BayResult<Response> {
    let body = parse_create(&body)?;
    let claim = state.idempotency.claim(&owner, &headers, "POST", "/v1/cargos", &body).await?;
    idempotency::run(claim, StatusCode::CREATED, state.sandboxes.create_cargo(&owner, body.size_limit_mb)).await
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    managed: Option<String>,
}

pub async fn list(State(state): State<AppState>, Owner(owner): Owner, RawQuery(q): RawQuery) -> BayResult<Json<CargoPage>> {
    let query: ListQuery = parse_query(q.as_deref())?;
    let limit = query.limit.unwrap_or(50);
    check_range(limit, 1, 200, &["query", "limit"])?;
    // Omitted (or null) lists external cargos only, as in Shipyard Neo.
    let managed = match query.managed.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("null") | Some("none") => false,
        Some("true" | "1" | "yes" | "on") => true,
        Some("false" | "0" | "no" | "off") => false,
        Some(other) => {
            return Err(BayError::request_validation(
                &["query", "managed"],
                format!("Input should be a valid boolean, got {:?}", crate::error::echo(other)),
                "bool_parsing",
            ));
        }
    };
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    Ok(Json(state.sandboxes.list_cargos(&owner, limit as usize, cursor, managed).await?))
}

pub async fn get(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<CargoView>> {
    Ok(Json(state.sandboxes.get_cargo(&owner, &id).await?))
}

pub async fn delete(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<StatusCode> {
    state.sandboxes.delete_cargo(&owner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
