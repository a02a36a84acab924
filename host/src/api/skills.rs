//! Skills control plane (Shipyard Neo's contract, docs/compatibility.md): payloads, candidates, evaluations,
//! releases, rollback and release health.
//!
//! Check order as in Shipyard Neo: authentication, then the request schema
//! (422), then business validation (400), lookups (404) and conflicts (409).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Deserializer};

use super::AppState;
use super::extract::{Owner, check_range, parse_body, parse_optional_body, parse_query};
use crate::error::{BayError, BayResult};
use crate::skills::json::Json as JsonValue;
use crate::skills::releases::check_stage;
use crate::skills::{
    CANDIDATE_STATUSES, CandidateView, DeleteView, EvaluationView, HealthThresholds, NewCandidate, NewEvaluation, NewRelease, Page, PayloadCreated,
    PayloadView, RELEASE_MODE_MANUAL, ReleaseFilter, ReleaseHealth, ReleaseView, Skills,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/skills/payloads", post(create_payload))
        // `{payload_ref:path}` also matches the empty reference.
        .route("/skills/payloads/", get(get_empty_payload))
        .route("/skills/payloads/{*payload_ref}", get(get_payload))
        .route("/skills/candidates", post(create_candidate).get(list_candidates))
        .route("/skills/candidates/{id}", get(get_candidate).delete(delete_candidate))
        .route("/skills/candidates/{id}/evaluate", post(evaluate_candidate))
        .route("/skills/candidates/{id}/promote", post(promote_candidate))
        .route("/skills/releases", get(list_releases))
        .route("/skills/releases/{id}", delete(delete_release))
        .route("/skills/releases/{id}/health", get(release_health))
        .route("/skills/releases/{id}/rollback", post(rollback_release))
}

fn skills(state: &AppState) -> Skills {
    Skills::new(state.sandboxes.db().clone())
}

// ---------------------------------------------------------------------------
// Request schemas (pydantic semantics: lax bools and floats, dict/list types)
// ---------------------------------------------------------------------------

/// A bool as pydantic's lax mode reads it: true/false, 0/1, and the strings
/// `0/off/f/false/n/no/1/on/t/true/y/yes` (any case).
fn lax_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = JsonValue::deserialize(d)?;
    let parsed = match &v {
        JsonValue::Bool(b) => Some(*b),
        JsonValue::Number(n) => n.as_f64().filter(|x| *x == 0.0 || *x == 1.0).map(|x| x == 1.0),
        JsonValue::String(s) => parse_bool_str(s),
        _ => None,
    };
    parsed.ok_or_else(|| serde::de::Error::custom("Input should be a valid boolean"))
}

fn parse_bool_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        _ => None,
    }
}

/// An optional float as pydantic's lax mode reads it: null, a number, a
/// bool or a numeric string.
fn lax_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = JsonValue::deserialize(d)?;
    match &v {
        JsonValue::Null => Ok(None),
        JsonValue::Number(n) => Ok(n.as_f64()),
        JsonValue::Bool(b) => Ok(Some(*b as i64 as f64)),
        JsonValue::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("Input should be a valid number, unable to parse string as a number")),
        _ => Err(serde::de::Error::custom("Input should be a valid number")),
    }
}

fn default_kind() -> String {
    "generic".into()
}

fn default_stage() -> String {
    "canary".into()
}

#[derive(Deserialize)]
struct PayloadBody {
    payload: JsonValue,
    #[serde(default = "default_kind")]
    kind: String,
}

#[derive(Deserialize)]
struct CandidateBody {
    skill_key: String,
    source_execution_ids: Vec<String>,
    #[serde(default)]
    scenario_key: Option<String>,
    #[serde(default)]
    payload_ref: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    usage_notes: Option<String>,
    #[serde(default)]
    preconditions: Option<JsonValue>,
    #[serde(default)]
    postconditions: Option<JsonValue>,
}

#[derive(Deserialize)]
struct EvaluateBody {
    #[serde(deserialize_with = "lax_bool")]
    passed: bool,
    #[serde(default, deserialize_with = "lax_opt_f64")]
    score: Option<f64>,
    #[serde(default)]
    benchmark_id: Option<String>,
    #[serde(default)]
    report: Option<String>,
}

#[derive(Deserialize)]
struct PromoteBody {
    #[serde(default = "default_stage")]
    stage: String,
    #[serde(default)]
    upgrade_of_release_id: Option<String>,
    #[serde(default)]
    upgrade_reason: Option<String>,
    #[serde(default)]
    change_summary: Option<String>,
}

#[derive(Deserialize)]
struct DeleteBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    skill_key: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

#[derive(Deserialize)]
struct ReleaseQuery {
    #[serde(default)]
    skill_key: Option<String>,
    #[serde(default)]
    active_only: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// `limit` 1..500 (default 100) and `offset` >= 0 (default 0); 422 otherwise.
fn page(limit: Option<i64>, offset: Option<i64>) -> BayResult<(i64, i64)> {
    let limit = limit.unwrap_or(100);
    let offset = offset.unwrap_or(0);
    check_range(limit, 1, 500, &["query", "limit"])?;
    check_range(offset, 0, i64::MAX, &["query", "offset"])?;
    Ok((limit, offset))
}

/// A `dict` field: an object (or null when optional), else 422.
fn require_object(value: Option<JsonValue>, field: &str) -> BayResult<Option<JsonValue>> {
    match value {
        None | Some(JsonValue::Null) => Ok(None),
        Some(v) if v.is_object() => Ok(Some(v)),
        Some(_) => Err(BayError::request_validation(&["body", field], "Input should be a valid dictionary", "dict_type")),
    }
}

/// The optional `{"reason"}` body of the deletes (empty body or `null`: none).
fn delete_reason(body: &[u8]) -> BayResult<Option<String>> {
    Ok(parse_optional_body::<DeleteBody>(body)?.and_then(|b| b.reason))
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

async fn create_payload(State(state): State<AppState>, Owner(owner): Owner, body: Bytes) -> BayResult<(StatusCode, Json<PayloadCreated>)> {
    let body: PayloadBody = parse_body(&body)?;
    if !(body.payload.is_object() || body.payload.is_array()) {
        return Err(BayError::request_validation(&["body", "payload"], "Input should be a valid dictionary or list", "dict_type"));
    }
    if body.kind.is_empty() {
        return Err(BayError::request_validation(&["body", "kind"], "String should have at least 1 character", "string_too_short"));
    }
    let created = skills(&state).create_payload(&owner, &body.kind, &body.payload).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn get_payload(State(state): State<AppState>, Owner(owner): Owner, Path(payload_ref): Path<String>) -> BayResult<Json<PayloadView>> {
    Ok(Json(skills(&state).get_payload(&owner, &payload_ref).await?))
}

async fn get_empty_payload(State(state): State<AppState>, Owner(owner): Owner) -> BayResult<Json<PayloadView>> {
    Ok(Json(skills(&state).get_payload(&owner, "").await?))
}

// ---------------------------------------------------------------------------
// Candidates
// ---------------------------------------------------------------------------

async fn create_candidate(State(state): State<AppState>, Owner(owner): Owner, body: Bytes) -> BayResult<(StatusCode, Json<CandidateView>)> {
    let body: CandidateBody = parse_body(&body)?;
    let preconditions = require_object(body.preconditions, "preconditions")?;
    let postconditions = require_object(body.postconditions, "postconditions")?;
    // The source executions may have been made a moment ago.
    state.sandboxes.history().flush().await;
    let new = NewCandidate {
        scenario_key: body.scenario_key,
        payload_ref: body.payload_ref,
        summary: body.summary,
        usage_notes: body.usage_notes,
        preconditions,
        postconditions,
        created_by: Some(owner.clone()),
        ..NewCandidate::new(body.skill_key, body.source_execution_ids)
    };
    let candidate = skills(&state).create_candidate(&owner, new).await?;
    Ok((StatusCode::CREATED, Json(candidate.into())))
}

async fn list_candidates(State(state): State<AppState>, Owner(owner): Owner, RawQuery(q): RawQuery) -> BayResult<Json<Page<CandidateView>>> {
    let query: CandidateQuery = parse_query(q.as_deref())?;
    let (limit, offset) = page(query.limit, query.offset)?;
    let status = query.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !CANDIDATE_STATUSES.contains(&s.as_str())
    {
        return Err(BayError::validation(format!("Invalid candidate status: {}", crate::error::echo(s))));
    }
    let (items, total) = skills(&state).list_candidates(&owner, status.as_deref(), query.skill_key.as_deref(), limit, offset).await?;
    Ok(Json(Page { items: items.into_iter().map(Into::into).collect(), total }))
}

async fn get_candidate(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<CandidateView>> {
    Ok(Json(skills(&state).get_candidate(&owner, &id).await?.into()))
}

async fn evaluate_candidate(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    body: Bytes,
) -> BayResult<Json<EvaluationView>> {
    let body: EvaluateBody = parse_body(&body)?;
    let eval = NewEvaluation {
        passed: body.passed,
        score: body.score,
        benchmark_id: body.benchmark_id,
        report: body.report,
        evaluated_by: Some(owner.clone()),
    };
    Ok(Json(skills(&state).evaluate_candidate(&owner, &id, eval).await?.into()))
}

async fn promote_candidate(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Json<ReleaseView>> {
    let body: PromoteBody = parse_body(&body)?;
    check_stage(&body.stage)?;
    let new = NewRelease {
        upgrade_of_release_id: body.upgrade_of_release_id,
        upgrade_reason: body.upgrade_reason,
        change_summary: body.change_summary,
        ..NewRelease::manual(body.stage, Some(owner.clone()))
    };
    Ok(Json(skills(&state).promote_candidate(&owner, &id, new).await?.into()))
}

async fn delete_candidate(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Json<DeleteView>> {
    let reason = delete_reason(&body)?;
    Ok(Json(skills(&state).delete_candidate(&owner, &id, Some(&owner), reason.as_deref()).await?))
}

// ---------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------

async fn list_releases(State(state): State<AppState>, Owner(owner): Owner, RawQuery(q): RawQuery) -> BayResult<Json<Page<ReleaseView>>> {
    let query: ReleaseQuery = parse_query(q.as_deref())?;
    let active_only = match query.active_only.as_deref() {
        None => false,
        Some(s) => parse_bool_str(s).ok_or_else(|| {
            BayError::request_validation(&["query", "active_only"], "Input should be a valid boolean, unable to interpret input", "bool_parsing")
        })?,
    };
    let (limit, offset) = page(query.limit, query.offset)?;
    let stage = query.stage.filter(|s| !s.is_empty());
    if let Some(s) = &stage {
        check_stage(s)?;
    }
    let filter = ReleaseFilter { skill_key: query.skill_key, active_only, stage };
    let (items, total) = skills(&state).list_releases(&owner, &filter, limit, offset).await?;
    Ok(Json(Page { items: items.into_iter().map(Into::into).collect(), total }))
}

async fn release_health(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<ReleaseHealth>> {
    // Executions tagged with the release may have been made a moment ago.
    state.sandboxes.history().flush().await;
    Ok(Json(skills(&state).release_health(&owner, &id, HealthThresholds::default()).await?))
}

async fn delete_release(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Bytes) -> BayResult<Json<DeleteView>> {
    let reason = delete_reason(&body)?;
    Ok(Json(skills(&state).delete_release(&owner, &id, Some(&owner), reason.as_deref()).await?))
}

async fn rollback_release(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>) -> BayResult<Json<ReleaseView>> {
    Ok(Json(skills(&state).rollback_release(&owner, &id, Some(&owner), RELEASE_MODE_MANUAL).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluate_bodies_are_read_like_pydantic() {
        let b: EvaluateBody = parse_body(br#"{"passed": "yes", "score": "0.5"}"#).unwrap();
        assert!(b.passed);
        assert_eq!(b.score, Some(0.5));
        let b: EvaluateBody = parse_body(br#"{"passed": 0, "score": 1}"#).unwrap();
        assert!(!b.passed);
        assert_eq!(b.score, Some(1.0));
        let b: EvaluateBody = parse_body(br#"{"passed": false, "score": null}"#).unwrap();
        assert_eq!(b.score, None);
        for bad in
            [&br#"{}"#[..], br#"{"passed": "maybe"}"#, br#"{"passed": 2}"#, br#"{"passed": true, "score": "x"}"#, br#"{"passed": true, "score": []}"#]
        {
            let e = parse_body::<EvaluateBody>(bad).err().unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(bad)));
            assert_eq!(e.status().as_u16(), 422);
        }
        let e = parse_body::<EvaluateBody>(br#"{"passed": "maybe"}"#).err().unwrap();
        assert_eq!(e.details["errors"][0]["loc"], serde_json::json!(["body", "passed"]));
    }

    #[test]
    fn delete_bodies_are_optional() {
        assert_eq!(delete_reason(b"").unwrap(), None);
        assert_eq!(delete_reason(b"{}").unwrap(), None);
        assert_eq!(delete_reason(b"null").unwrap(), None);
        assert_eq!(delete_reason(br#"{"reason": "old"}"#).unwrap().as_deref(), Some("old"));
        assert_eq!(delete_reason(br#"{"reason": 1}"#).unwrap_err().status().as_u16(), 422);
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page(None, None).unwrap(), (100, 0));
        assert_eq!(page(Some(500), Some(7)).unwrap(), (500, 7));
        for (l, o) in [(Some(0), None), (Some(501), None), (None, Some(-1))] {
            assert_eq!(page(l, o).unwrap_err().status().as_u16(), 422);
        }
    }

    #[test]
    fn dict_fields_must_be_objects() {
        assert!(require_object(None, "preconditions").unwrap().is_none());
        assert!(require_object(Some(JsonValue::Null), "preconditions").unwrap().is_none());
        assert!(require_object(Some(JsonValue::parse("{}").unwrap()), "preconditions").unwrap().is_some());
        let e = require_object(Some(JsonValue::parse("[]").unwrap()), "preconditions").unwrap_err();
        assert_eq!(e.details["errors"][0]["loc"], serde_json::json!(["body", "preconditions"]));
    }
}
