//! Execution history (Shipyard Neo's contract, docs/compatibility.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{Owner, check_range, parse_body, parse_query};
use crate::db::history::{Execution, HistoryFilter};
use crate::error::{BayError, BayResult};
use crate::ids::{format_opt_ts, format_ts};

/// A history entry as the API shows it.
#[derive(Serialize)]
pub struct Entry {
    id: String,
    session_id: Option<String>,
    exec_type: String,
    code: String,
    success: bool,
    execution_time_ms: i64,
    output: Option<String>,
    error: Option<String>,
    payload_ref: Option<String>,
    description: Option<String>,
    tags: Option<String>,
    notes: Option<String>,
    learn_enabled: bool,
    learn_status: Option<String>,
    learn_error: Option<String>,
    learn_processed_at: Option<String>,
    created_at: String,
}

impl From<Execution> for Entry {
    fn from(e: Execution) -> Entry {
        Entry {
            id: e.id,
            session_id: e.session_id,
            exec_type: e.exec_type,
            code: e.code,
            success: e.success != 0,
            execution_time_ms: e.execution_time_ms,
            output: e.output,
            error: e.error,
            payload_ref: e.payload_ref,
            description: e.description,
            tags: e.tags,
            notes: e.notes,
            learn_enabled: e.learn_enabled != 0,
            learn_status: e.learn_status,
            learn_error: e.learn_error,
            learn_processed_at: format_opt_ts(e.learn_processed_at),
            created_at: format_ts(e.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct EntryList {
    entries: Vec<Entry>,
    total: i64,
}

const EXEC_TYPES: [&str; 4] = ["python", "shell", "browser", "browser_batch"];

fn flag(v: &Option<String>, name: &str) -> BayResult<bool> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(BayError::request_validation(
            &["query", name],
            format!("Input should be a valid boolean, got {:?}", crate::error::echo(other)),
            "bool_parsing",
        )),
    }
}

fn exec_type(v: Option<String>) -> BayResult<Option<String>> {
    match v.filter(|t| !t.is_empty()) {
        Some(t) if !EXEC_TYPES.contains(&t.as_str()) => Err(BayError::request_validation(
            &["query", "exec_type"],
            "String should match pattern '^(python|shell|browser|browser_batch)$'",
            "string_pattern_mismatch",
        )),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    exec_type: Option<String>,
    success_only: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    tags: Option<String>,
    has_notes: Option<String>,
    has_description: Option<String>,
}

pub async fn list(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Json<EntryList>> {
    let sandbox = state.sandboxes.find(&owner, &id).await?;
    let query: ListQuery = parse_query(q.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    check_range(limit, 1, 500, &["query", "limit"])?;
    let offset = query.offset.unwrap_or(0);
    check_range(offset, 0, i64::MAX, &["query", "offset"])?;
    let filter = HistoryFilter {
        exec_type: exec_type(query.exec_type)?,
        success_only: flag(&query.success_only, "success_only")?,
        tags: query.tags.filter(|t| !t.is_empty()),
        has_notes: flag(&query.has_notes, "has_notes")?,
        has_description: flag(&query.has_description, "has_description")?,
    };
    state.sandboxes.history().flush().await;
    let (rows, total) = state.sandboxes.db().list_executions(&owner, &sandbox.id, &filter, limit, offset).await?;
    Ok(Json(EntryList { entries: rows.into_iter().map(Entry::from).collect(), total }))
}

#[derive(Deserialize)]
struct LastQuery {
    exec_type: Option<String>,
}

pub async fn last(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Json<Entry>> {
    let sandbox = state.sandboxes.find(&owner, &id).await?;
    let query: LastQuery = parse_query(q.as_deref())?;
    let filter = HistoryFilter { exec_type: exec_type(query.exec_type)?, ..Default::default() };
    state.sandboxes.history().flush().await;
    let (rows, _) = state.sandboxes.db().list_executions(&owner, &sandbox.id, &filter, 1, 0).await?;
    rows.into_iter().next().map(|e| Json(e.into())).ok_or_else(|| BayError::not_found("No execution history found"))
}

async fn find_entry(state: &AppState, owner: &str, sandbox_id: &str, execution_id: &str) -> BayResult<Execution> {
    let sandbox = state.sandboxes.find(owner, sandbox_id).await?;
    state.sandboxes.history().flush().await;
    state
        .sandboxes
        .db()
        .execution(owner, &sandbox.id, execution_id)
        .await?
        .ok_or_else(|| BayError::not_found(format!("Execution not found: {}", crate::error::echo(execution_id))))
}

pub async fn get(State(state): State<AppState>, Owner(owner): Owner, Path((id, execution_id)): Path<(String, String)>) -> BayResult<Json<Entry>> {
    Ok(Json(find_entry(&state, &owner, &id, &execution_id).await?.into()))
}

#[derive(Deserialize)]
struct AnnotateBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    #[serde(default)]
    notes: Option<String>,
}

pub async fn annotate(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path((id, execution_id)): Path<(String, String)>,
    body: Bytes,
) -> BayResult<Json<Entry>> {
    let entry = find_entry(&state, &owner, &id, &execution_id).await?;
    let body: AnnotateBody = parse_body(&body)?;
    let db = state.sandboxes.db();
    db.annotate_execution(&entry.id, body.description.as_deref(), body.tags.as_deref(), body.notes.as_deref()).await?;
    let updated = db.execution(&owner, &entry.sandbox_id, &entry.id).await?.ok_or_else(|| BayError::not_found("Execution not found"))?;
    Ok(Json(updated.into()))
}
