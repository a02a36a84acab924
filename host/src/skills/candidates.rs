//! Skill candidates and their evaluations.

use serde::Serialize;
use sqlx::FromRow;

use super::{DeleteView, Json, SKILL_TYPE_CODE, Skills, WRITES, split_csv};
use crate::error::{BayError, BayResult};
use crate::ids::{Micros, format_opt_ts, format_ts, new_id, now_micros};

/// A `skill_candidates` row.
#[derive(Debug, Clone, FromRow)]
pub struct Candidate {
    pub id: String,
    pub owner: String,
    pub skill_key: String,
    pub scenario_key: Option<String>,
    pub payload_ref: Option<String>,
    pub skill_type: String,
    pub auto_release_eligible: i64,
    pub auto_release_reason: Option<String>,
    pub summary: Option<String>,
    pub usage_notes: Option<String>,
    pub preconditions_json: Option<String>,
    pub postconditions_json: Option<String>,
    pub source_execution_ids: String,
    pub status: String,
    pub latest_score: Option<f64>,
    pub latest_pass: Option<i64>,
    pub last_evaluated_at: Option<Micros>,
    pub promotion_release_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub is_deleted: i64,
    pub deleted_at: Option<Micros>,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
}

macro_rules! select_candidate {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, skill_key, scenario_key, payload_ref, skill_type, auto_release_eligible, auto_release_reason, summary, usage_notes, preconditions_json, postconditions_json, source_execution_ids, status, latest_score, latest_pass, last_evaluated_at, promotion_release_id, created_by, created_at, updated_at, is_deleted, deleted_at, deleted_by, delete_reason FROM skill_candidates ",
            $rest
        )
    };
}

/// SkillCandidateResponse.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateView {
    pub id: String,
    pub skill_key: String,
    pub scenario_key: Option<String>,
    pub payload_ref: Option<String>,
    pub skill_type: String,
    pub auto_release_eligible: bool,
    pub auto_release_reason: Option<String>,
    pub summary: Option<String>,
    pub usage_notes: Option<String>,
    pub preconditions: Option<Json>,
    pub postconditions: Option<Json>,
    pub source_execution_ids: Vec<String>,
    pub status: String,
    pub latest_score: Option<f64>,
    pub latest_pass: Option<bool>,
    pub last_evaluated_at: Option<String>,
    pub promotion_release_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub is_deleted: bool,
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
}

/// A stored JSON object, or null (unparseable or not an object).
fn json_object(raw: Option<&str>) -> Option<Json> {
    raw.and_then(|r| Json::parse(r).ok()).filter(Json::is_object)
}

impl From<Candidate> for CandidateView {
    fn from(c: Candidate) -> CandidateView {
        CandidateView {
            preconditions: json_object(c.preconditions_json.as_deref()),
            postconditions: json_object(c.postconditions_json.as_deref()),
            source_execution_ids: split_csv(&c.source_execution_ids),
            id: c.id,
            skill_key: c.skill_key,
            scenario_key: c.scenario_key,
            payload_ref: c.payload_ref,
            skill_type: c.skill_type,
            auto_release_eligible: c.auto_release_eligible != 0,
            auto_release_reason: c.auto_release_reason,
            summary: c.summary,
            usage_notes: c.usage_notes,
            status: c.status,
            latest_score: c.latest_score,
            latest_pass: c.latest_pass.map(|p| p != 0),
            last_evaluated_at: format_opt_ts(c.last_evaluated_at),
            promotion_release_id: c.promotion_release_id,
            created_by: c.created_by,
            created_at: format_ts(c.created_at),
            updated_at: format_ts(c.updated_at),
            is_deleted: c.is_deleted != 0,
            deleted_at: format_opt_ts(c.deleted_at),
            deleted_by: c.deleted_by,
            delete_reason: c.delete_reason,
        }
    }
}

/// What creates a candidate: the API (manual, `code`) or, later, the
/// browser-learning scheduler (`browser`, `system:auto`).
#[derive(Debug, Clone)]
pub struct NewCandidate {
    pub skill_key: String,
    pub source_execution_ids: Vec<String>,
    pub scenario_key: Option<String>,
    pub payload_ref: Option<String>,
    pub summary: Option<String>,
    pub usage_notes: Option<String>,
    pub preconditions: Option<Json>,
    pub postconditions: Option<Json>,
    pub created_by: Option<String>,
    pub skill_type: String,
    pub auto_release_eligible: bool,
    pub auto_release_reason: Option<String>,
}

impl NewCandidate {
    pub fn new(skill_key: impl Into<String>, source_execution_ids: Vec<String>) -> NewCandidate {
        NewCandidate {
            skill_key: skill_key.into(),
            source_execution_ids,
            scenario_key: None,
            payload_ref: None,
            summary: None,
            usage_notes: None,
            preconditions: None,
            postconditions: None,
            created_by: None,
            skill_type: SKILL_TYPE_CODE.into(),
            auto_release_eligible: false,
            auto_release_reason: None,
        }
    }
}

/// A `skill_evaluations` row.
#[derive(Debug, Clone, FromRow)]
pub struct Evaluation {
    pub id: String,
    pub owner: String,
    pub candidate_id: String,
    pub benchmark_id: Option<String>,
    pub score: Option<f64>,
    pub passed: i64,
    pub report: Option<String>,
    pub evaluated_by: Option<String>,
    pub created_at: Micros,
}

/// SkillEvaluationResponse.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationView {
    pub id: String,
    pub candidate_id: String,
    pub benchmark_id: Option<String>,
    pub score: Option<f64>,
    pub passed: bool,
    pub report: Option<String>,
    pub evaluated_by: Option<String>,
    pub created_at: String,
}

impl From<Evaluation> for EvaluationView {
    fn from(e: Evaluation) -> EvaluationView {
        EvaluationView {
            id: e.id,
            candidate_id: e.candidate_id,
            benchmark_id: e.benchmark_id,
            score: e.score,
            passed: e.passed != 0,
            report: e.report,
            evaluated_by: e.evaluated_by,
            created_at: format_ts(e.created_at),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewEvaluation {
    pub passed: bool,
    pub score: Option<f64>,
    pub benchmark_id: Option<String>,
    pub report: Option<String>,
    pub evaluated_by: Option<String>,
}

pub(crate) fn candidate_not_found(id: &str) -> BayError {
    BayError::not_found(format!("Skill candidate not found: {}", crate::error::echo(id)))
}

impl Skills {
    /// Creates a `draft` candidate. Every source execution must be one of
    /// the owner's (any sandbox); callers flush the history writer first.
    pub async fn create_candidate(&self, owner: &str, new: NewCandidate) -> BayResult<Candidate> {
        let skill_key = new.skill_key.trim();
        if skill_key.is_empty() {
            return Err(BayError::validation("skill_key must not be empty"));
        }
        if new.source_execution_ids.is_empty() {
            return Err(BayError::validation("source_execution_ids must not be empty"));
        }
        for id in &new.source_execution_ids {
            let found: Option<(String,)> = sqlx::query_as(self.db.sql("SELECT id FROM execution_history WHERE id = $1 AND owner = $2"))
                .bind(id)
                .bind(owner)
                .fetch_optional(self.db.pool())
                .await?;
            if found.is_none() {
                return Err(BayError::validation(format!("Execution ID not found or not owned: {}", crate::error::echo(id))));
            }
        }
        let now = now_micros();
        let c = Candidate {
            id: new_id("sc"),
            owner: owner.to_owned(),
            skill_key: skill_key.to_owned(),
            scenario_key: new.scenario_key,
            payload_ref: new.payload_ref,
            skill_type: new.skill_type,
            auto_release_eligible: new.auto_release_eligible as i64,
            auto_release_reason: new.auto_release_reason,
            summary: new.summary,
            usage_notes: new.usage_notes,
            preconditions_json: new.preconditions.map(|j| j.to_text()),
            postconditions_json: new.postconditions.map(|j| j.to_text()),
            source_execution_ids: new.source_execution_ids.join(","),
            status: "draft".into(),
            latest_score: None,
            latest_pass: None,
            last_evaluated_at: None,
            promotion_release_id: None,
            created_by: new.created_by,
            created_at: now,
            updated_at: now,
            is_deleted: 0,
            deleted_at: None,
            deleted_by: None,
            delete_reason: None,
        };
        self.db
            .query("INSERT INTO skill_candidates (id, owner, skill_key, scenario_key, payload_ref, skill_type, auto_release_eligible, auto_release_reason, summary, usage_notes, preconditions_json, postconditions_json, source_execution_ids, status, created_by, created_at, updated_at, is_deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 0)")
            .bind(&c.id)
            .bind(&c.owner)
            .bind(&c.skill_key)
            .bind(&c.scenario_key)
            .bind(&c.payload_ref)
            .bind(&c.skill_type)
            .bind(c.auto_release_eligible)
            .bind(&c.auto_release_reason)
            .bind(&c.summary)
            .bind(&c.usage_notes)
            .bind(&c.preconditions_json)
            .bind(&c.postconditions_json)
            .bind(&c.source_execution_ids)
            .bind(&c.status)
            .bind(&c.created_by)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(self.db.pool())
            .await?;
        Ok(c)
    }

    /// A live (not deleted) candidate of the owner, else 404.
    pub async fn get_candidate(&self, owner: &str, id: &str) -> BayResult<Candidate> {
        sqlx::query_as(self.db.sql(select_candidate!("WHERE id = $1 AND owner = $2 AND is_deleted = 0")))
            .bind(id)
            .bind(owner)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| candidate_not_found(id))
    }

    /// Live candidates, newest first, and the total matching. `status` must
    /// already be one of [`super::CANDIDATE_STATUSES`].
    pub async fn list_candidates(
        &self,
        owner: &str,
        status: Option<&str>,
        skill_key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> BayResult<(Vec<Candidate>, i64)> {
        let (total,): (i64,) = sqlx::query_as(self.db.sql(
            "SELECT COUNT(*) FROM skill_candidates WHERE owner = $1 AND is_deleted = 0 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR skill_key = $3)",
        ))
        .bind(owner)
        .bind(status)
        .bind(skill_key)
        .fetch_one(self.db.pool())
        .await?;
        let items = sqlx::query_as(self.db.sql(select_candidate!(
            "WHERE owner = $1 AND is_deleted = 0 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR skill_key = $3) ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        )))
        .bind(owner)
        .bind(status)
        .bind(skill_key)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        Ok((items, total))
    }

    /// Records an evaluation. The candidate becomes `evaluating`, or
    /// `rejected` when it did not pass; its latest score/pass are updated.
    pub async fn evaluate_candidate(&self, owner: &str, candidate_id: &str, eval: NewEvaluation) -> BayResult<Evaluation> {
        let _guard = WRITES.lock().await;
        let mut tx = self.write_tx().await?;
        let found: Option<(String,)> = sqlx::query_as(self.db.sql("SELECT id FROM skill_candidates WHERE id = $1 AND owner = $2 AND is_deleted = 0"))
            .bind(candidate_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(candidate_not_found(candidate_id));
        }
        let now = now_micros();
        let e = Evaluation {
            id: new_id("se"),
            owner: owner.to_owned(),
            candidate_id: candidate_id.to_owned(),
            benchmark_id: eval.benchmark_id,
            score: eval.score,
            passed: eval.passed as i64,
            report: eval.report,
            evaluated_by: eval.evaluated_by,
            created_at: now,
        };
        self.db
            .query("INSERT INTO skill_evaluations (id, owner, candidate_id, benchmark_id, score, passed, report, evaluated_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&e.id)
            .bind(&e.owner)
            .bind(&e.candidate_id)
            .bind(&e.benchmark_id)
            .bind(e.score)
            .bind(e.passed)
            .bind(&e.report)
            .bind(&e.evaluated_by)
            .bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        let status = if eval.passed { "evaluating" } else { "rejected" };
        self.db
            .query("UPDATE skill_candidates SET status = $1, latest_score = $2, latest_pass = $3, last_evaluated_at = $4, updated_at = $4 WHERE id = $5 AND owner = $6")
            .bind(status)
            .bind(e.score)
            .bind(e.passed)
            .bind(now)
            .bind(candidate_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(e)
    }

    /// Sets whether a candidate may be released automatically, and why.
    pub async fn set_auto_release(&self, owner: &str, candidate_id: &str, eligible: bool, reason: Option<&str>) -> BayResult<()> {
        let r = self
            .db
            .query("UPDATE skill_candidates SET auto_release_eligible = $1, auto_release_reason = $2, updated_at = $3 WHERE id = $4 AND owner = $5 AND is_deleted = 0")
            .bind(eligible as i64)
            .bind(reason)
            .bind(now_micros())
            .bind(candidate_id)
            .bind(owner)
            .execute(self.db.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(candidate_not_found(candidate_id));
        }
        Ok(())
    }

    /// The newest evaluation of a candidate (deleted candidates included).
    pub async fn latest_evaluation(&self, owner: &str, candidate_id: &str) -> BayResult<Option<Evaluation>> {
        Ok(sqlx::query_as(self.db.sql(
            "SELECT id, owner, candidate_id, benchmark_id, score, passed, report, evaluated_by, created_at FROM skill_evaluations WHERE owner = $1 AND candidate_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
        ))
        .bind(owner)
        .bind(candidate_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Soft-deletes a candidate; 409 while an active, live release uses it.
    pub async fn delete_candidate(&self, owner: &str, id: &str, deleted_by: Option<&str>, reason: Option<&str>) -> BayResult<DeleteView> {
        let _guard = WRITES.lock().await;
        let mut tx = self.write_tx().await?;
        let live: Option<(i64,)> = sqlx::query_as(self.db.sql("SELECT is_deleted FROM skill_candidates WHERE id = $1 AND owner = $2"))
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        if !matches!(live, Some((0,))) {
            return Err(candidate_not_found(id));
        }
        let active: Option<(String,)> = sqlx::query_as(
            self.db.sql("SELECT id FROM skill_releases WHERE owner = $1 AND candidate_id = $2 AND is_active = 1 AND is_deleted = 0 LIMIT 1"),
        )
        .bind(owner)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if active.is_some() {
            return Err(BayError::conflict("Candidate referenced by active release cannot be deleted").with("candidate_id", id));
        }
        let now = now_micros();
        self.db
            .query("UPDATE skill_candidates SET is_deleted = 1, deleted_at = $1, deleted_by = $2, delete_reason = $3 WHERE id = $4 AND owner = $5")
            .bind(now)
            .bind(deleted_by)
            .bind(reason)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DeleteView {
            id: id.to_owned(),
            deleted_at: format_ts(now),
            deleted_by: deleted_by.map(str::to_owned),
            delete_reason: reason.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;
    use crate::skills::testutil::execution;

    fn manual(skill_key: &str, ids: Vec<String>) -> NewCandidate {
        NewCandidate { created_by: Some("alice".into()), ..NewCandidate::new(skill_key, ids) }
    }

    #[tokio::test]
    async fn create_checks_key_and_evidence_ownership() {
        let skills = Skills::new(test_db().await);
        let mine = execution(skills.db(), "alice", true, 5, None, None).await;
        let theirs = execution(skills.db(), "bob", true, 5, None, None).await;

        let e = skills.create_candidate("alice", manual("  ", vec![mine.clone()])).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "skill_key must not be empty"));
        let e = skills.create_candidate("alice", manual("k", vec![])).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "source_execution_ids must not be empty"));
        let e = skills.create_candidate("alice", manual("k", vec![mine.clone(), theirs.clone()])).await.unwrap_err();
        assert_eq!(e.message, format!("Execution ID not found or not owned: {theirs}"));

        let mut new = manual(" csv-export ", vec![mine.clone(), mine.clone()]);
        new.preconditions = Some(Json::parse(r#"{"b": 1, "a": 2}"#).unwrap());
        new.payload_ref = Some("blob:blob-000000000000".into());
        let c = skills.create_candidate("alice", new).await.unwrap();
        assert!(c.id.starts_with("sc-") && c.id.len() == 15);
        let v = serde_json::to_value(CandidateView::from(skills.get_candidate("alice", &c.id).await.unwrap())).unwrap();
        assert_eq!(v["skill_key"], "csv-export");
        assert_eq!(v["status"], "draft");
        assert_eq!(v["skill_type"], "code");
        assert_eq!(v["auto_release_eligible"], false);
        assert_eq!(v["source_execution_ids"], serde_json::json!([mine, mine]));
        assert_eq!(v["created_by"], "alice");
        assert_eq!(v["payload_ref"], "blob:blob-000000000000");
        assert!(v["postconditions"].is_null() && v["latest_score"].is_null() && v["latest_pass"].is_null());
        assert_eq!(serde_json::to_string(&v["preconditions"]).unwrap(), r#"{"a":2,"b":1}"#);
        assert_eq!(serde_json::to_string(&CandidateView::from(c.clone()).preconditions).unwrap(), r#"{"b":1,"a":2}"#, "stored in the order given");
        // Every key of Shipyard Neo's shape is present, nulls included.
        for key in [
            "id",
            "skill_key",
            "scenario_key",
            "payload_ref",
            "skill_type",
            "auto_release_eligible",
            "auto_release_reason",
            "summary",
            "usage_notes",
            "preconditions",
            "postconditions",
            "source_execution_ids",
            "status",
            "latest_score",
            "latest_pass",
            "last_evaluated_at",
            "promotion_release_id",
            "created_by",
            "created_at",
            "updated_at",
            "is_deleted",
            "deleted_at",
            "deleted_by",
            "delete_reason",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v.as_object().unwrap().len(), 24);

        let e = skills.get_candidate("bob", &c.id).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.clone()), (404, format!("Skill candidate not found: {}", c.id)));
    }

    #[tokio::test]
    async fn list_filters_orders_and_pages() {
        let skills = Skills::new(test_db().await);
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let mut ids = Vec::new();
        for key in ["a", "b", "a"] {
            ids.push(skills.create_candidate("alice", manual(key, vec![ex.clone()])).await.unwrap().id);
        }
        let bob_ex = execution(skills.db(), "bob", true, 5, None, None).await;
        skills.create_candidate("bob", manual("a", vec![bob_ex])).await.unwrap();

        let (items, total) = skills.list_candidates("alice", None, None, 100, 0).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
        let (items, total) = skills.list_candidates("alice", None, Some("a"), 1, 1).await.unwrap();
        assert_eq!((items.len(), total, items[0].id.clone()), (1, 2, ids[0].clone()));
        skills.evaluate_candidate("alice", &ids[1], NewEvaluation { passed: false, ..Default::default() }).await.unwrap();
        let (items, total) = skills.list_candidates("alice", Some("rejected"), None, 100, 0).await.unwrap();
        assert_eq!((total, items[0].id.clone()), (1, ids[1].clone()));
        skills.delete_candidate("alice", &ids[0], Some("alice"), None).await.unwrap();
        assert_eq!(skills.list_candidates("alice", None, None, 100, 0).await.unwrap().1, 2);
    }

    #[tokio::test]
    async fn evaluation_sets_status_and_latest_result() {
        let skills = Skills::new(test_db().await);
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let c = skills.create_candidate("alice", manual("k", vec![ex])).await.unwrap();
        let e = skills
            .evaluate_candidate(
                "alice",
                &c.id,
                NewEvaluation {
                    passed: true,
                    score: Some(0.9),
                    benchmark_id: Some("b1".into()),
                    report: Some("ok".into()),
                    evaluated_by: Some("alice".into()),
                },
            )
            .await
            .unwrap();
        assert!(e.id.starts_with("se-"));
        let v = serde_json::to_value(EvaluationView::from(e)).unwrap();
        assert_eq!(v["candidate_id"], c.id.as_str());
        assert_eq!((v["score"].as_f64(), &v["passed"], &v["benchmark_id"]), (Some(0.9), &serde_json::json!(true), &serde_json::json!("b1")));
        assert_eq!(v["evaluated_by"], "alice");
        let got = skills.get_candidate("alice", &c.id).await.unwrap();
        assert_eq!((got.status.as_str(), got.latest_score, got.latest_pass), ("evaluating", Some(0.9), Some(1)));
        assert!(got.last_evaluated_at.is_some());

        skills.evaluate_candidate("alice", &c.id, NewEvaluation { passed: false, ..Default::default() }).await.unwrap();
        let got = skills.get_candidate("alice", &c.id).await.unwrap();
        assert_eq!((got.status.as_str(), got.latest_score, got.latest_pass), ("rejected", None, Some(0)));
        let latest = skills.latest_evaluation("alice", &c.id).await.unwrap().unwrap();
        assert_eq!(latest.passed, 0);

        let e = skills.evaluate_candidate("bob", &c.id, NewEvaluation::default()).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
    }

    #[tokio::test]
    async fn delete_is_soft_and_404_afterwards() {
        let skills = Skills::new(test_db().await);
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let c = skills.create_candidate("alice", manual("k", vec![ex])).await.unwrap();
        assert_eq!(skills.delete_candidate("bob", &c.id, Some("bob"), None).await.unwrap_err().status().as_u16(), 404);
        let d = skills.delete_candidate("alice", &c.id, Some("alice"), Some("obsolete")).await.unwrap();
        assert_eq!((d.id.as_str(), d.deleted_by.as_deref(), d.delete_reason.as_deref()), (c.id.as_str(), Some("alice"), Some("obsolete")));
        assert_eq!(skills.get_candidate("alice", &c.id).await.unwrap_err().status().as_u16(), 404);
        assert_eq!(skills.delete_candidate("alice", &c.id, None, None).await.unwrap_err().status().as_u16(), 404);
        let row: (i64, Option<i64>, Option<String>) =
            sqlx::query_as(skills.db().sql("SELECT is_deleted, deleted_at, delete_reason FROM skill_candidates WHERE id = $1"))
                .bind(&c.id)
                .fetch_one(skills.db().pool())
                .await
                .unwrap();
        assert_eq!((row.0, row.1.is_some(), row.2.as_deref()), (1, true, Some("obsolete")));
    }
}
