//! Browser endpoints (Shipyard Neo's contract, docs/compatibility.md): exec, batch, skill replay, traces.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::exec::{HistoryRow, record, unexpected};
use super::extract::{Owner, check_range, parse_body};
use super::limits::check_field;
use crate::adapter::{BrowserBatchResult, BrowserStep, CapabilityCall, CapabilityOutcome};
use crate::config::LimitsConfig;
use crate::config::ProfileConfig;
use crate::db::blobs::{blob_ref, parse_blob_ref};
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};
use crate::skills::Skills;

async fn target(state: &AppState, owner: &str, id: &str) -> BayResult<(Sandbox, ProfileConfig)> {
    super::sandbox_for(state, owner, id, "browser").await
}

fn default_exec_timeout() -> i64 {
    30
}
fn default_batch_timeout() -> i64 {
    60
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub(super) struct ExecBody {
    pub cmd: String,
    #[serde(default = "default_exec_timeout")]
    pub timeout: i64,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    #[serde(default)]
    learn: bool,
    #[serde(default)]
    include_trace: bool,
}

#[derive(Serialize)]
pub struct ExecResponse {
    success: bool,
    output: String,
    error: Option<String>,
    exit_code: i32,
    execution_id: String,
    execution_time_ms: i64,
    trace_ref: Option<String>,
}

async fn store_trace(state: &AppState, owner: &str, kind: &str, trace: &Value) -> BayResult<String> {
    let id = state.sandboxes.db().insert_blob(owner, kind, &trace.to_string()).await?;
    Ok(blob_ref(&id))
}

fn step_json(s: &BrowserStep, with_duration: bool) -> Value {
    let mut v = json!({
        "kind": "individual_action",
        "cmd": s.cmd,
        "stdout": s.stdout,
        "stderr": s.stderr,
        "exit_code": s.exit_code,
        "step_index": s.step_index,
    });
    if with_duration {
        v["duration_ms"] = json!(s.duration_ms);
    }
    v
}

/// The body of `browser/exec`: schema, `timeout` 1..=300, `cmd` within
/// `limits.browser_cmd_bytes` (413).
pub(super) fn parse_exec(bytes: &[u8], limits: &LimitsConfig) -> BayResult<ExecBody> {
    let body: ExecBody = parse_body(bytes)?;
    check_range(body.timeout, 1, 300, &["body", "timeout"])?;
    check_field("cmd", body.cmd.len(), "browser_cmd_bytes", limits.browser_cmd_bytes)?;
    Ok(body)
}

/// The body of `browser/exec_batch`: schema, at least one command,
/// `timeout` 1..=600, all commands together within `limits.browser_batch_bytes`.
pub(super) fn parse_batch(bytes: &[u8], limits: &LimitsConfig) -> BayResult<BatchBody> {
    let body: BatchBody = parse_body(bytes)?;
    if body.commands.is_empty() {
        return Err(BayError::request_validation(&["body", "commands"], "List should have at least 1 item after validation, not 0", "too_short"));
    }
    check_range(body.timeout, 1, 600, &["body", "timeout"])?;
    let total = body.commands.iter().fold(0usize, |n, c| n.saturating_add(c.len()));
    check_field("commands", total, "browser_batch_bytes", limits.browser_batch_bytes)?;
    Ok(body)
}

pub(super) fn parse_skill_run(bytes: &[u8]) -> BayResult<SkillRunBody> {
    let body: SkillRunBody = parse_body(bytes)?;
    check_range(body.timeout, 1, 600, &["body", "timeout"])?;
    Ok(body)
}

pub async fn exec(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Json<ExecResponse>> {
    let started = Instant::now();
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let body = parse_exec(&body, &state.limits)?;
    let call = CapabilityCall::BrowserExec { cmd: body.cmd.clone(), timeout_s: body.timeout as u32 };
    let (outcome, session_id) = state.sandboxes.call(&sandbox, &profile, call).await?;
    let CapabilityOutcome::BrowserExec(r) = outcome else {
        return Err(unexpected("browser", &outcome));
    };
    let payload_ref = if body.include_trace || body.learn {
        let step = BrowserStep {
            cmd: body.cmd.clone(),
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            exit_code: r.exit_code,
            step_index: 0,
            duration_ms: 0,
        };
        let trace = json!({ "kind": "browser_exec_trace", "steps": [step_json(&step, false)] });
        Some(store_trace(&state, &owner, "browser_trace", &trace).await?)
    } else {
        None
    };
    let success = r.exit_code == 0;
    let error = Some(r.stderr.clone()).filter(|e| !e.is_empty());
    let elapsed_ms = started.elapsed().as_millis() as i64;
    let execution_id = record(
        &state,
        HistoryRow {
            sandbox: &sandbox,
            session_id: Some(session_id).filter(|s| !s.is_empty()),
            exec_type: "browser",
            code: body.cmd,
            success,
            elapsed_ms,
            output: Some(r.stdout.clone()),
            error: error.clone(),
            description: body.description,
            tags: body.tags,
            payload_ref: payload_ref.clone(),
            learn: Some(body.learn),
        },
    )
    .await?;
    Ok(Json(ExecResponse {
        success,
        output: r.stdout,
        error,
        exit_code: r.exit_code,
        execution_id,
        execution_time_ms: elapsed_ms,
        trace_ref: payload_ref.filter(|_| body.include_trace),
    }))
}

#[derive(Deserialize)]
pub(super) struct BatchBody {
    pub commands: Vec<String>,
    #[serde(default = "default_batch_timeout")]
    pub timeout: i64,
    #[serde(default = "yes")]
    stop_on_error: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    #[serde(default)]
    learn: bool,
    #[serde(default)]
    include_trace: bool,
}

#[derive(Serialize)]
pub struct BatchResponse {
    #[serde(flatten)]
    result: BrowserBatchResult,
    execution_id: String,
    execution_time_ms: i64,
    trace_ref: Option<String>,
}

/// Runs a batch and records it (one history row); shared by exec_batch and skill runs.
struct Batch<'a> {
    sandbox: &'a Sandbox,
    profile: &'a ProfileConfig,
    commands: Vec<String>,
    timeout: i64,
    stop_on_error: bool,
    description: Option<String>,
    tags: Option<String>,
    learn: bool,
    include_trace: bool,
}

async fn run_batch(state: &AppState, owner: &str, b: Batch<'_>) -> BayResult<(BrowserBatchResult, String, i64, Option<String>)> {
    let started = Instant::now();
    let call = CapabilityCall::BrowserBatch { commands: b.commands.clone(), timeout_s: b.timeout as u32, stop_on_error: b.stop_on_error };
    let (outcome, session_id) = state.sandboxes.call(b.sandbox, b.profile, call).await?;
    let CapabilityOutcome::BrowserBatch(r) = outcome else {
        return Err(unexpected("browser batch", &outcome));
    };
    let payload_ref = if b.include_trace || b.learn {
        let trace = json!({
            "kind": "browser_batch_trace",
            "steps": r.results.iter().map(|s| step_json(s, true)).collect::<Vec<_>>(),
            "total_steps": r.total_steps,
            "completed_steps": r.completed_steps,
            "success": r.success,
            "duration_ms": r.duration_ms,
        });
        Some(store_trace(state, owner, "browser_trace", &trace).await?)
    } else {
        None
    };
    let output: Vec<&str> = r.results.iter().map(|s| s.stdout.trim()).filter(|s| !s.is_empty()).collect();
    let errors: Vec<&str> = r.results.iter().map(|s| s.stderr.as_str()).filter(|s| !s.is_empty()).collect();
    let elapsed_ms = started.elapsed().as_millis() as i64;
    let execution_id = record(
        state,
        HistoryRow {
            sandbox: b.sandbox,
            session_id: Some(session_id).filter(|s| !s.is_empty()),
            exec_type: "browser_batch",
            code: b.commands.join("\n"),
            success: r.success,
            elapsed_ms,
            output: Some(output.join("\n")),
            error: if errors.is_empty() { None } else { Some(errors.join("\n")) },
            description: b.description,
            tags: b.tags,
            payload_ref: payload_ref.clone(),
            learn: Some(b.learn),
        },
    )
    .await?;
    Ok((r, execution_id, elapsed_ms, payload_ref.filter(|_| b.include_trace)))
}

pub async fn exec_batch(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Json<BatchResponse>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let body = parse_batch(&body, &state.limits)?;
    let (result, execution_id, execution_time_ms, trace_ref) = run_batch(
        &state,
        &owner,
        Batch {
            sandbox: &sandbox,
            profile: &profile,
            commands: body.commands,
            timeout: body.timeout,
            stop_on_error: body.stop_on_error,
            description: body.description,
            tags: body.tags,
            learn: body.learn,
            include_trace: body.include_trace,
        },
    )
    .await?;
    Ok(Json(BatchResponse { result, execution_id, execution_time_ms, trace_ref }))
}

#[derive(Deserialize)]
pub(super) struct SkillRunBody {
    #[serde(default = "default_batch_timeout")]
    pub timeout: i64,
    #[serde(default = "yes")]
    stop_on_error: bool,
    #[serde(default)]
    include_trace: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<String>,
}

#[derive(Serialize)]
pub struct SkillRunResponse {
    skill_key: String,
    release_id: String,
    execution_id: String,
    execution_time_ms: i64,
    trace_ref: Option<String>,
    #[serde(flatten)]
    result: BrowserBatchResult,
}

/// Replays the active release of a browser skill as a batch.
pub async fn run_skill(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path((id, skill_key)): Path<(String, String)>,
    body: Bytes,
) -> BayResult<Json<SkillRunResponse>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let body = parse_skill_run(&body)?;
    let skills = Skills::new(state.sandboxes.db().clone());
    let release = skills
        .active_release(&owner, &skill_key)
        .await?
        .ok_or_else(|| BayError::not_found(format!("No active release found for skill_key: {}", crate::error::echo(&skill_key))))?;
    let candidate = skills.get_candidate(&owner, &release.candidate_id).await?;
    let payload_ref =
        candidate.payload_ref.clone().ok_or_else(|| BayError::validation(format!("Skill candidate {} has no payload_ref", candidate.id)))?;
    let blob_id = parse_blob_ref(&payload_ref)?;
    let blob = state
        .sandboxes
        .db()
        .blob_for_owner(blob_id, &owner)
        .await?
        .ok_or_else(|| BayError::not_found(format!("Payload not found: {payload_ref}")))?;
    let payload: Value = serde_json::from_str(&blob.payload_json).unwrap_or(Value::Null);
    let commands: Vec<String> = payload
        .get("commands")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if commands.is_empty() {
        return Err(BayError::validation(format!("Skill payload {payload_ref} has no commands to replay")));
    }
    let mut tags: Vec<String> = body.tags.iter().flat_map(|t| t.split(',')).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    tags.extend([format!("skill:{skill_key}"), format!("release:{}", release.id), format!("stage:{}", release.stage)]);
    let (result, execution_id, execution_time_ms, trace_ref) = run_batch(
        &state,
        &owner,
        Batch {
            sandbox: &sandbox,
            profile: &profile,
            commands,
            timeout: body.timeout,
            stop_on_error: body.stop_on_error,
            description: body.description,
            tags: Some(tags.join(",")),
            learn: false,
            include_trace: body.include_trace,
        },
    )
    .await?;
    Ok(Json(SkillRunResponse { skill_key, release_id: release.id, execution_id, execution_time_ms, trace_ref, result }))
}

/// `GET …/browser/traces/{trace_ref}`.
pub async fn trace(State(state): State<AppState>, Owner(owner): Owner, Path((id, trace_ref)): Path<(String, String)>) -> BayResult<Json<Value>> {
    let (_, _) = target(&state, &owner, &id).await?;
    let blob_id = parse_blob_ref(&trace_ref)?;
    let blob = state
        .sandboxes
        .db()
        .blob_for_owner(blob_id, &owner)
        .await?
        .ok_or_else(|| BayError::not_found(format!("Trace not found: {}", crate::error::echo(&trace_ref))))?;
    let trace: Value = serde_json::from_str(&blob.payload_json).unwrap_or(Value::Null);
    Ok(Json(json!({ "trace_ref": trace_ref, "trace": trace })))
}
