//! Admin endpoints (Shipyard Neo's contract (docs/compatibility.md), plus Bay's plugins and keys): all need a
//! key with the `admin` scope (403 `forbidden` otherwise).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Admin, parse_body};
use crate::db::api_keys::ActiveKey;
use crate::error::{BayError, BayResult};
use crate::keys::{self, CreatedKey, NewKey, Scope};

#[derive(Deserialize, Default)]
struct RunBody {
    #[serde(default)]
    tasks: Option<Vec<String>>,
}

/// Runs every enabled task now (even with `gc.enabled: false`) and reports
/// the requested ones (all when `tasks` is omitted).
pub async fn run_gc(State(state): State<AppState>, Admin(_admin): Admin, body: Bytes) -> BayResult<Response> {
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
pub async fn plugins(State(state): State<AppState>, Admin(_admin): Admin) -> Json<Value> {
    Json(json!({ "items": state.sandboxes.plugins.records() }))
}

pub async fn gc_status(State(state): State<AppState>, Admin(_admin): Admin) -> Json<Value> {
    Json(state.gc.status())
}

fn default_owner() -> String {
    crate::auth::DEFAULT_OWNER.to_owned()
}

fn default_scopes() -> Vec<Scope> {
    vec![Scope::User]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateKeyBody {
    #[serde(default = "default_owner")]
    owner: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<Scope>,
    #[serde(default)]
    name: Option<String>,
}

pub(super) fn parse_create_key(bytes: &[u8]) -> BayResult<NewKey> {
    let body: CreateKeyBody = parse_body(bytes)?;
    let new = NewKey { owner: body.owner, scopes: body.scopes, name: body.name };
    keys::validate(&new)?;
    Ok(new)
}

fn database(state: &AppState) -> BayResult<&crate::db::Db> {
    state.auth.database().ok_or_else(|| BayError::internal("no key database"))
}

/// `POST /v1/admin/keys` (Bay): 201 with the plaintext key, shown once.
pub async fn create_key(State(state): State<AppState>, Admin(_admin): Admin, body: Bytes) -> BayResult<(StatusCode, Json<CreatedKey>)> {
    let new = parse_create_key(&body)?;
    let created = keys::create(database(&state)?, new).await?;
    let scopes = created.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    state.auth.key_added(&ActiveKey { id: created.id.clone(), key_hash: created.key_hash.clone(), owner: created.owner.clone(), scopes });
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/admin/keys` (Bay): every key, revoked ones included, never a hash.
pub async fn list_keys(State(state): State<AppState>, Admin(_admin): Admin) -> BayResult<Json<Value>> {
    Ok(Json(json!({ "items": keys::list(database(&state)?).await? })))
}

/// `DELETE /v1/admin/keys/{id}` (Bay): the key stops working at once here,
/// within `auth::KEY_CACHE_TTL` on other replicas.
pub async fn revoke_key(State(state): State<AppState>, Admin(_admin): Admin, Path(id): Path<String>) -> BayResult<StatusCode> {
    keys::revoke(database(&state)?, &id).await?;
    state.auth.key_revoked(&id);
    Ok(StatusCode::NO_CONTENT)
}
