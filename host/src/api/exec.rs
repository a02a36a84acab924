//! Python and shell execution (Shipyard Neo's contract, docs/compatibility.md). Every call writes a history row.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Owner, check_range, parse_body};
use super::limits::check_field;
use crate::adapter::{CapabilityCall, CapabilityOutcome, PythonExecResult, ShellExecResult};
use crate::config::LimitsConfig;
use crate::db::history::{Execution, normalize_tags};
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};
use crate::ids::{self, now_micros};
use crate::paths::validate_relative_path;

fn default_timeout() -> i64 {
    30
}

#[derive(Deserialize)]
pub(super) struct PythonBody {
    pub code: String,
    #[serde(default = "default_timeout")]
    pub timeout: i64,
    #[serde(default)]
    include_code: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
}

#[derive(Serialize)]
pub struct PythonResponse {
    success: bool,
    output: String,
    error: Option<String>,
    data: Value,
    execution_id: String,
    execution_time_ms: i64,
    code: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ShellBody {
    pub command: String,
    #[serde(default = "default_timeout")]
    pub timeout: i64,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    include_code: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
}

#[derive(Serialize)]
pub struct ShellResponse {
    success: bool,
    output: String,
    error: Option<String>,
    exit_code: Option<i32>,
    execution_id: String,
    execution_time_ms: i64,
    command: Option<String>,
}

/// One execution, for the history.
pub(super) struct HistoryRow<'a> {
    pub sandbox: &'a Sandbox,
    pub session_id: Option<String>,
    pub exec_type: &'static str,
    pub code: String,
    pub success: bool,
    pub elapsed_ms: i64,
    pub output: Option<String>,
    pub error: Option<String>,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub payload_ref: Option<String>,
    /// `Some(learn)` for browser executions (learn_status pending/skipped);
    /// `None` for python and shell (learn_status null).
    pub learn: Option<bool>,
}

/// Queues the history row of an execution; returns its id.
pub(super) async fn record(state: &AppState, row: HistoryRow<'_>) -> BayResult<String> {
    let id = ids::execution_id();
    state
        .sandboxes
        .history()
        .record(Execution {
            id: id.clone(),
            owner: row.sandbox.owner.clone(),
            sandbox_id: row.sandbox.id.clone(),
            session_id: row.session_id,
            exec_type: row.exec_type.into(),
            code: row.code,
            success: row.success as i64,
            execution_time_ms: row.elapsed_ms,
            output: row.output,
            error: row.error,
            payload_ref: row.payload_ref,
            description: row.description,
            tags: normalize_tags(row.tags.as_deref()),
            notes: None,
            learn_enabled: row.learn.unwrap_or(false) as i64,
            learn_status: row.learn.map(|l| if l { "pending" } else { "skipped" }.to_owned()),
            learn_error: None,
            learn_processed_at: None,
            created_at: now_micros(),
        })
        .await;
    Ok(id)
}

pub(super) fn unexpected(what: &str, outcome: &CapabilityOutcome) -> BayError {
    BayError::ship(format!("runtime adapter answered a {what} call with {outcome:?}"))
}

/// The body of `python/exec`: schema, `timeout` 1..=300, `code` within
/// `limits.python_code_bytes` (413).
pub(super) fn parse_python(bytes: &[u8], limits: &LimitsConfig) -> BayResult<PythonBody> {
    let body: PythonBody = parse_body(bytes)?;
    check_range(body.timeout, 1, 300, &["body", "timeout"])?;
    check_field("code", body.code.len(), "python_code_bytes", limits.python_code_bytes)?;
    Ok(body)
}

/// The body of `shell/exec`: schema, `timeout` 1..=300, `command` within
/// `limits.shell_command_bytes` (413); `cwd` is checked by the handler.
pub(super) fn parse_shell(bytes: &[u8], limits: &LimitsConfig) -> BayResult<ShellBody> {
    let body: ShellBody = parse_body(bytes)?;
    check_range(body.timeout, 1, 300, &["body", "timeout"])?;
    check_field("command", body.command.len(), "shell_command_bytes", limits.shell_command_bytes)?;
    Ok(body)
}

pub async fn python(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> BayResult<Response> {
    let started = Instant::now();
    let (sandbox, profile) = super::sandbox_for(&state, &owner, &id, "python").await?;
    let body = parse_python(&body, &state.limits)?;
    if super::live::wants_stream(&headers) {
        return super::live::python(state, sandbox, profile, body, started).await;
    }
    let call = CapabilityCall::PythonExec { code: body.code.clone(), timeout_s: body.timeout as u32 };
    let (outcome, session_id) = state.sandboxes.call(&sandbox, &profile, call).await?;
    let CapabilityOutcome::PythonExec(r) = outcome else {
        return Err(unexpected("python", &outcome));
    };
    Ok(Json(finish_python(&state, &sandbox, session_id, body, r, started).await?).into_response())
}

/// Records a Python execution and builds its answer.
pub(super) async fn finish_python(
    state: &AppState,
    sandbox: &Sandbox,
    session_id: String,
    body: PythonBody,
    r: PythonExecResult,
    started: Instant,
) -> BayResult<PythonResponse> {
    let elapsed_ms = started.elapsed().as_millis() as i64;
    let images: Vec<Value> = r.images.iter().map(|(mime, data)| json!({ mime.clone(): data })).collect();
    let data = json!({ "execution_count": r.execution_count, "output": { "text": r.text, "images": images } });
    let execution_id = record(
        state,
        HistoryRow {
            sandbox,
            session_id: Some(session_id),
            exec_type: "python",
            code: body.code.clone(),
            success: r.success,
            elapsed_ms,
            output: Some(r.text.clone()),
            error: r.error.clone(),
            description: body.description,
            tags: body.tags,
            payload_ref: None,
            learn: None,
        },
    )
    .await?;
    Ok(PythonResponse {
        success: r.success,
        output: r.text,
        error: r.error,
        data,
        execution_id,
        execution_time_ms: elapsed_ms,
        code: body.include_code.then_some(body.code),
    })
}

pub async fn shell(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> BayResult<Response> {
    let started = Instant::now();
    let (sandbox, profile) = super::sandbox_for(&state, &owner, &id, "shell").await?;
    let body = parse_shell(&body, &state.limits)?;
    let cwd = match &body.cwd {
        Some(c) => Some(validate_relative_path(c, "cwd")?),
        None => None,
    };
    if super::live::wants_stream(&headers) {
        return super::live::shell(state, sandbox, profile, body, cwd, started).await;
    }
    let call = CapabilityCall::ShellExec { command: body.command.clone(), timeout_s: body.timeout as u32, cwd };
    let (outcome, session_id) = state.sandboxes.call(&sandbox, &profile, call).await?;
    let CapabilityOutcome::ShellExec(r) = outcome else {
        return Err(unexpected("shell", &outcome));
    };
    Ok(Json(finish_shell(&state, &sandbox, session_id, body, r, started).await?).into_response())
}

/// Records a shell execution and builds its answer.
pub(super) async fn finish_shell(
    state: &AppState,
    sandbox: &Sandbox,
    session_id: String,
    body: ShellBody,
    r: ShellExecResult,
    started: Instant,
) -> BayResult<ShellResponse> {
    let elapsed_ms = started.elapsed().as_millis() as i64;
    // Shipyard Neo has no separate stderr field: `error` is the runtime's
    // error, else stderr, else null.
    let error = r.error.filter(|e| !e.is_empty()).or_else(|| Some(r.stderr).filter(|s| !s.is_empty()));
    let execution_id = record(
        state,
        HistoryRow {
            sandbox,
            session_id: Some(session_id),
            exec_type: "shell",
            code: body.command.clone(),
            success: r.success,
            elapsed_ms,
            output: Some(r.stdout.clone()),
            error: error.clone(),
            description: body.description,
            tags: body.tags,
            payload_ref: None,
            learn: None,
        },
    )
    .await?;
    Ok(ShellResponse {
        success: r.success,
        output: r.stdout,
        error,
        exit_code: r.exit_code,
        execution_id,
        execution_time_ms: elapsed_ms,
        command: body.include_code.then_some(body.command),
    })
}
