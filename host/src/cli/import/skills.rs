//! The skills control plane: `artifact_blobs` (payloads, referenced as
//! `blob:<id>`), `skill_candidates`, `skill_evaluations` and
//! `skill_releases`. Bay's tables have Shipyard Neo's columns; times become
//! microseconds and enum names become Bay's lowercase values. An evaluation
//! or release whose candidate is missing is reported and skipped; a release
//! whose (owner, skill, version) Bay already holds under another id is a
//! conflict, reported and skipped.

use std::collections::HashSet;

use sqlx::FromRow;

use super::source::{Col, comma_joined, enum_value};
use super::{Conn, Source, TableReport, exists, time, time_or_now};
use crate::db::Db;

#[derive(FromRow)]
struct Blob {
    id: String,
    owner: Option<String>,
    kind: Option<String>,
    payload_json: Option<String>,
    created_at: Option<String>,
}

const BLOB_COLUMNS: &[(&str, Col)] =
    &[("id", Col::Text), ("owner", Col::Text), ("kind", Col::Text), ("payload_json", Col::Text), ("created_at", Col::Time)];

#[derive(FromRow)]
struct Candidate {
    id: String,
    owner: Option<String>,
    skill_key: Option<String>,
    scenario_key: Option<String>,
    payload_ref: Option<String>,
    skill_type: Option<String>,
    auto_release_eligible: Option<i64>,
    auto_release_reason: Option<String>,
    summary: Option<String>,
    usage_notes: Option<String>,
    preconditions_json: Option<String>,
    postconditions_json: Option<String>,
    source_execution_ids: Option<String>,
    status: Option<String>,
    latest_score: Option<f64>,
    latest_pass: Option<i64>,
    last_evaluated_at: Option<String>,
    promotion_release_id: Option<String>,
    created_by: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    is_deleted: Option<i64>,
    deleted_at: Option<String>,
    deleted_by: Option<String>,
    delete_reason: Option<String>,
}

const CANDIDATE_COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("skill_key", Col::Text),
    ("scenario_key", Col::Text),
    ("payload_ref", Col::Text),
    ("skill_type", Col::Text),
    ("auto_release_eligible", Col::Bool),
    ("auto_release_reason", Col::Text),
    ("summary", Col::Text),
    ("usage_notes", Col::Text),
    ("preconditions_json", Col::Text),
    ("postconditions_json", Col::Text),
    ("source_execution_ids", Col::Text),
    ("status", Col::Text),
    ("latest_score", Col::Float),
    ("latest_pass", Col::Bool),
    ("last_evaluated_at", Col::Time),
    ("promotion_release_id", Col::Text),
    ("created_by", Col::Text),
    ("created_at", Col::Time),
    ("updated_at", Col::Time),
    ("is_deleted", Col::Bool),
    ("deleted_at", Col::Time),
    ("deleted_by", Col::Text),
    ("delete_reason", Col::Text),
];

#[derive(FromRow)]
struct Evaluation {
    id: String,
    owner: Option<String>,
    candidate_id: Option<String>,
    benchmark_id: Option<String>,
    score: Option<f64>,
    passed: Option<i64>,
    report: Option<String>,
    evaluated_by: Option<String>,
    created_at: Option<String>,
}

const EVALUATION_COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("candidate_id", Col::Text),
    ("benchmark_id", Col::Text),
    ("score", Col::Float),
    ("passed", Col::Bool),
    ("report", Col::Text),
    ("evaluated_by", Col::Text),
    ("created_at", Col::Time),
];

#[derive(FromRow)]
struct Release {
    id: String,
    owner: Option<String>,
    skill_key: Option<String>,
    candidate_id: Option<String>,
    version: Option<i64>,
    stage: Option<String>,
    is_active: Option<i64>,
    release_mode: Option<String>,
    promoted_by: Option<String>,
    promoted_at: Option<String>,
    rollback_of: Option<String>,
    auto_promoted_from: Option<String>,
    health_window_end_at: Option<String>,
    upgrade_of_release_id: Option<String>,
    upgrade_reason: Option<String>,
    change_summary: Option<String>,
    is_deleted: Option<i64>,
    deleted_at: Option<String>,
    deleted_by: Option<String>,
    delete_reason: Option<String>,
}

const RELEASE_COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner", Col::Text),
    ("skill_key", Col::Text),
    ("candidate_id", Col::Text),
    ("version", Col::Int),
    ("stage", Col::Text),
    ("is_active", Col::Bool),
    ("release_mode", Col::Text),
    ("promoted_by", Col::Text),
    ("promoted_at", Col::Time),
    ("rollback_of", Col::Text),
    ("auto_promoted_from", Col::Text),
    ("health_window_end_at", Col::Time),
    ("upgrade_of_release_id", Col::Text),
    ("upgrade_reason", Col::Text),
    ("change_summary", Col::Text),
    ("is_deleted", Col::Bool),
    ("deleted_at", Col::Time),
    ("deleted_by", Col::Text),
    ("delete_reason", Col::Text),
];

fn owner(o: Option<String>) -> String {
    o.unwrap_or_else(|| crate::auth::DEFAULT_OWNER.to_owned())
}

pub(super) async fn import(source: &Source, db: &Db, conn: &mut Conn) -> anyhow::Result<Vec<TableReport>> {
    let blobs = import_blobs(source, db, conn).await?;
    let (candidates, candidate_ids) = import_candidates(source, db, conn).await?;
    let evaluations = import_evaluations(source, db, conn, &candidate_ids).await?;
    let releases = import_releases(source, db, conn, &candidate_ids).await?;
    Ok(vec![blobs, candidates, evaluations, releases])
}

async fn import_blobs(source: &Source, db: &Db, conn: &mut Conn) -> anyhow::Result<TableReport> {
    let mut report = TableReport::new("artifact_blobs");
    for b in source.rows::<Blob>("artifact_blobs", BLOB_COLUMNS).await?.unwrap_or_default() {
        report.read += 1;
        if exists(db, conn, "SELECT 1 FROM artifact_blobs WHERE id = $1", &b.id).await? {
            report.existing += 1;
            continue;
        }
        db.query("INSERT INTO artifact_blobs (id, owner, kind, payload_json, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&b.id)
            .bind(owner(b.owner))
            .bind(b.kind.unwrap_or_else(|| "generic".to_owned()))
            .bind(b.payload_json.unwrap_or_else(|| "null".to_owned()))
            .bind(time_or_now(&b.created_at))
            .execute(&mut *conn)
            .await?;
        report.imported += 1;
    }
    Ok(report)
}

/// Also returns the id of every candidate the source has.
async fn import_candidates(source: &Source, db: &Db, conn: &mut Conn) -> anyhow::Result<(TableReport, HashSet<String>)> {
    let mut report = TableReport::new("skill_candidates");
    let mut ids = HashSet::new();
    for c in source.rows::<Candidate>("skill_candidates", CANDIDATE_COLUMNS).await?.unwrap_or_default() {
        report.read += 1;
        ids.insert(c.id.clone());
        if exists(db, conn, "SELECT 1 FROM skill_candidates WHERE id = $1", &c.id).await? {
            report.existing += 1;
            continue;
        }
        let created_at = time_or_now(&c.created_at);
        db.query(
            "INSERT INTO skill_candidates (id, owner, skill_key, scenario_key, payload_ref, skill_type, auto_release_eligible, auto_release_reason, \
             summary, usage_notes, preconditions_json, postconditions_json, source_execution_ids, status, latest_score, latest_pass, last_evaluated_at, \
             promotion_release_id, created_by, created_at, updated_at, is_deleted, deleted_at, deleted_by, delete_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)",
        )
        .bind(&c.id)
        .bind(owner(c.owner))
        .bind(c.skill_key.unwrap_or_default())
        .bind(c.scenario_key)
        .bind(c.payload_ref)
        .bind(enum_value(c.skill_type).unwrap_or_else(|| "code".to_owned()))
        .bind(c.auto_release_eligible.unwrap_or(0))
        .bind(c.auto_release_reason)
        .bind(c.summary)
        .bind(c.usage_notes)
        .bind(c.preconditions_json)
        .bind(c.postconditions_json)
        .bind(comma_joined(c.source_execution_ids))
        .bind(enum_value(c.status).unwrap_or_else(|| "draft".to_owned()))
        .bind(c.latest_score)
        .bind(c.latest_pass)
        .bind(time(&c.last_evaluated_at))
        .bind(c.promotion_release_id)
        .bind(c.created_by)
        .bind(created_at)
        .bind(time(&c.updated_at).unwrap_or(created_at))
        .bind(c.is_deleted.unwrap_or(0))
        .bind(time(&c.deleted_at))
        .bind(c.deleted_by)
        .bind(c.delete_reason)
        .execute(&mut *conn)
        .await?;
        report.imported += 1;
    }
    Ok((report, ids))
}

async fn candidate_known(db: &Db, conn: &mut Conn, candidates: &HashSet<String>, id: &str) -> sqlx::Result<bool> {
    Ok(candidates.contains(id) || exists(db, conn, "SELECT 1 FROM skill_candidates WHERE id = $1", id).await?)
}

async fn import_evaluations(source: &Source, db: &Db, conn: &mut Conn, candidates: &HashSet<String>) -> anyhow::Result<TableReport> {
    let mut report = TableReport::new("skill_evaluations");
    for e in source.rows::<Evaluation>("skill_evaluations", EVALUATION_COLUMNS).await?.unwrap_or_default() {
        report.read += 1;
        if exists(db, conn, "SELECT 1 FROM skill_evaluations WHERE id = $1", &e.id).await? {
            report.existing += 1;
            continue;
        }
        let candidate_id = e.candidate_id.unwrap_or_default();
        if !candidate_known(db, conn, candidates, &candidate_id).await? {
            report.skip(format!("evaluation {}: its candidate {candidate_id:?} is missing", e.id));
            continue;
        }
        db.query(
            "INSERT INTO skill_evaluations (id, owner, candidate_id, benchmark_id, score, passed, report, evaluated_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.id)
        .bind(owner(e.owner))
        .bind(&candidate_id)
        .bind(e.benchmark_id)
        .bind(e.score)
        .bind(e.passed.unwrap_or(0))
        .bind(e.report)
        .bind(e.evaluated_by)
        .bind(time_or_now(&e.created_at))
        .execute(&mut *conn)
        .await?;
        report.imported += 1;
    }
    Ok(report)
}

async fn import_releases(source: &Source, db: &Db, conn: &mut Conn, candidates: &HashSet<String>) -> anyhow::Result<TableReport> {
    let mut report = TableReport::new("skill_releases");
    for r in source.rows::<Release>("skill_releases", RELEASE_COLUMNS).await?.unwrap_or_default() {
        report.read += 1;
        if exists(db, conn, "SELECT 1 FROM skill_releases WHERE id = $1", &r.id).await? {
            report.existing += 1;
            continue;
        }
        let candidate_id = r.candidate_id.unwrap_or_default();
        if !candidate_known(db, conn, candidates, &candidate_id).await? {
            report.skip(format!("release {}: its candidate {candidate_id:?} is missing", r.id));
            continue;
        }
        let owner = owner(r.owner);
        let skill_key = r.skill_key.unwrap_or_default();
        let version = r.version.unwrap_or(1);
        let taken: Option<(String,)> = sqlx::query_as(db.sql("SELECT id FROM skill_releases WHERE owner = $1 AND skill_key = $2 AND version = $3"))
            .bind(&owner)
            .bind(&skill_key)
            .bind(version)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some((other,)) = taken {
            report.skip(format!("release {}: conflict, Bay's release {other} already is version {version} of {skill_key:?}", r.id));
            continue;
        }
        let promoted_at = time_or_now(&r.promoted_at);
        db.query(
            "INSERT INTO skill_releases (id, owner, skill_key, candidate_id, version, stage, is_active, release_mode, promoted_by, promoted_at, rollback_of, \
             auto_promoted_from, health_window_end_at, upgrade_of_release_id, upgrade_reason, change_summary, is_deleted, deleted_at, deleted_by, delete_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(&r.id)
        .bind(&owner)
        .bind(&skill_key)
        .bind(&candidate_id)
        .bind(version)
        .bind(enum_value(r.stage).unwrap_or_else(|| "canary".to_owned()))
        .bind(r.is_active.unwrap_or(0))
        .bind(enum_value(r.release_mode).unwrap_or_else(|| "manual".to_owned()))
        .bind(r.promoted_by)
        .bind(promoted_at)
        .bind(r.rollback_of)
        .bind(r.auto_promoted_from)
        .bind(time(&r.health_window_end_at))
        .bind(r.upgrade_of_release_id)
        .bind(r.upgrade_reason)
        .bind(r.change_summary)
        .bind(r.is_deleted.unwrap_or(0))
        .bind(time(&r.deleted_at))
        .bind(r.deleted_by)
        .bind(r.delete_reason)
        .execute(&mut *conn)
        .await?;
        report.imported += 1;
    }
    Ok(report)
}
