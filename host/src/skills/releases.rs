//! Skill releases: promotion of an evaluated candidate, versioning (one
//! active release per skill), rollback and soft delete.

use serde::Serialize;
use sqlx::{Any, FromRow, Transaction};

use super::candidates::candidate_not_found;
use super::{DeleteView, RELEASE_MODE_AUTO, RELEASE_MODE_MANUAL, RELEASE_STAGES, SKILL_TYPE_BROWSER, Skills, WRITES};
use crate::error::{BayError, BayResult};
use crate::ids::{Micros, format_opt_ts, format_ts, new_id, now_micros};

/// A `skill_releases` row.
#[derive(Debug, Clone, FromRow)]
pub struct Release {
    pub id: String,
    pub owner: String,
    pub skill_key: String,
    pub candidate_id: String,
    pub version: i64,
    pub stage: String,
    pub is_active: i64,
    pub release_mode: String,
    pub promoted_by: Option<String>,
    pub promoted_at: Micros,
    pub rollback_of: Option<String>,
    pub auto_promoted_from: Option<String>,
    pub health_window_end_at: Option<Micros>,
    pub upgrade_of_release_id: Option<String>,
    pub upgrade_reason: Option<String>,
    pub change_summary: Option<String>,
    pub is_deleted: i64,
    pub deleted_at: Option<Micros>,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
}

macro_rules! select_release {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, skill_key, candidate_id, version, stage, is_active, release_mode, promoted_by, promoted_at, rollback_of, auto_promoted_from, health_window_end_at, upgrade_of_release_id, upgrade_reason, change_summary, is_deleted, deleted_at, deleted_by, delete_reason FROM skill_releases ",
            $rest
        )
    };
}

/// SkillReleaseResponse.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub id: String,
    pub skill_key: String,
    pub candidate_id: String,
    pub version: i64,
    pub stage: String,
    pub is_active: bool,
    pub release_mode: String,
    pub promoted_by: Option<String>,
    pub promoted_at: String,
    pub rollback_of: Option<String>,
    pub auto_promoted_from: Option<String>,
    pub health_window_end_at: Option<String>,
    pub upgrade_of_release_id: Option<String>,
    pub upgrade_reason: Option<String>,
    pub change_summary: Option<String>,
    pub is_deleted: bool,
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
}

impl From<Release> for ReleaseView {
    fn from(r: Release) -> ReleaseView {
        ReleaseView {
            id: r.id,
            skill_key: r.skill_key,
            candidate_id: r.candidate_id,
            version: r.version,
            stage: r.stage,
            is_active: r.is_active != 0,
            release_mode: r.release_mode,
            promoted_by: r.promoted_by,
            promoted_at: format_ts(r.promoted_at),
            rollback_of: r.rollback_of,
            auto_promoted_from: r.auto_promoted_from,
            health_window_end_at: format_opt_ts(r.health_window_end_at),
            upgrade_of_release_id: r.upgrade_of_release_id,
            upgrade_reason: r.upgrade_reason,
            change_summary: r.change_summary,
            is_deleted: r.is_deleted != 0,
            deleted_at: format_opt_ts(r.deleted_at),
            deleted_by: r.deleted_by,
            delete_reason: r.delete_reason,
        }
    }
}

/// How a candidate is promoted.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub stage: String,
    pub release_mode: String,
    pub promoted_by: Option<String>,
    pub auto_promoted_from: Option<String>,
    pub health_window_end_at: Option<Micros>,
    pub upgrade_of_release_id: Option<String>,
    pub upgrade_reason: Option<String>,
    pub change_summary: Option<String>,
}

impl NewRelease {
    /// A manual promotion to `stage`.
    pub fn manual(stage: impl Into<String>, promoted_by: Option<String>) -> NewRelease {
        NewRelease {
            stage: stage.into(),
            release_mode: RELEASE_MODE_MANUAL.into(),
            promoted_by,
            auto_promoted_from: None,
            health_window_end_at: None,
            upgrade_of_release_id: None,
            upgrade_reason: None,
            change_summary: None,
        }
    }
}

/// Filters of `GET /v1/skills/releases`.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    pub skill_key: Option<String>,
    pub active_only: bool,
    pub stage: Option<String>,
}

/// 400 unless `stage` is `canary` or `stable`.
pub fn check_stage(stage: &str) -> BayResult<()> {
    if RELEASE_STAGES.contains(&stage) { Ok(()) } else { Err(BayError::validation(format!("Invalid release stage: {}", crate::error::echo(stage)))) }
}

pub(crate) fn release_not_found(id: &str) -> BayError {
    BayError::not_found(format!("Skill release not found: {}", crate::error::echo(id)))
}

impl Skills {
    async fn next_version(&self, tx: &mut Transaction<'static, Any>, owner: &str, skill_key: &str) -> sqlx::Result<i64> {
        let (max,): (Option<i64>,) = sqlx::query_as(self.db.sql("SELECT MAX(version) FROM skill_releases WHERE owner = $1 AND skill_key = $2"))
            .bind(owner)
            .bind(skill_key)
            .fetch_one(&mut **tx)
            .await?;
        Ok(max.unwrap_or(0) + 1)
    }

    async fn deactivate_all(&self, tx: &mut Transaction<'static, Any>, owner: &str, skill_key: &str) -> sqlx::Result<()> {
        self.db
            .query("UPDATE skill_releases SET is_active = 0 WHERE owner = $1 AND skill_key = $2 AND is_active = 1 AND is_deleted = 0")
            .bind(owner)
            .bind(skill_key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn insert_release(&self, tx: &mut Transaction<'static, Any>, r: &Release) -> sqlx::Result<()> {
        self.db
            .query("INSERT INTO skill_releases (id, owner, skill_key, candidate_id, version, stage, is_active, release_mode, promoted_by, promoted_at, rollback_of, auto_promoted_from, health_window_end_at, upgrade_of_release_id, upgrade_reason, change_summary, is_deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0)")
            .bind(&r.id)
            .bind(&r.owner)
            .bind(&r.skill_key)
            .bind(&r.candidate_id)
            .bind(r.version)
            .bind(&r.stage)
            .bind(r.is_active)
            .bind(&r.release_mode)
            .bind(&r.promoted_by)
            .bind(r.promoted_at)
            .bind(&r.rollback_of)
            .bind(&r.auto_promoted_from)
            .bind(r.health_window_end_at)
            .bind(&r.upgrade_of_release_id)
            .bind(&r.upgrade_reason)
            .bind(&r.change_summary)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Promotes a candidate whose latest evaluation passed: a new active
    /// release with version `max + 1`; the skill's other releases are
    /// deactivated and the candidate points at the new one.
    pub async fn promote_candidate(&self, owner: &str, candidate_id: &str, new: NewRelease) -> BayResult<Release> {
        check_stage(&new.stage)?;
        let _guard = WRITES.lock().await;
        let mut tx = self.write_tx().await?;
        let candidate: Option<(String, String, Option<i64>)> = sqlx::query_as(
            self.db.sql("SELECT skill_key, skill_type, latest_pass FROM skill_candidates WHERE id = $1 AND owner = $2 AND is_deleted = 0"),
        )
        .bind(candidate_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((skill_key, skill_type, latest_pass)) = candidate else {
            return Err(candidate_not_found(candidate_id));
        };
        if latest_pass != Some(1) {
            return Err(BayError::conflict("Candidate has no passing evaluation; promotion is blocked").with("candidate_id", candidate_id));
        }
        let version = self.next_version(&mut tx, owner, &skill_key).await?;
        self.deactivate_all(&mut tx, owner, &skill_key).await?;
        let now = now_micros();
        let release = Release {
            id: new_id("sr"),
            owner: owner.to_owned(),
            skill_key,
            candidate_id: candidate_id.to_owned(),
            version,
            stage: new.stage,
            is_active: 1,
            release_mode: new.release_mode,
            promoted_by: new.promoted_by,
            promoted_at: now,
            rollback_of: None,
            auto_promoted_from: new.auto_promoted_from,
            health_window_end_at: new.health_window_end_at,
            upgrade_of_release_id: new.upgrade_of_release_id,
            upgrade_reason: new.upgrade_reason,
            change_summary: new.change_summary,
            is_deleted: 0,
            deleted_at: None,
            deleted_by: None,
            delete_reason: None,
        };
        self.insert_release(&mut tx, &release).await?;
        let status = match (skill_type.as_str(), release.release_mode.as_str(), release.stage.as_str()) {
            (SKILL_TYPE_BROWSER, RELEASE_MODE_AUTO, "canary") => "promoted_canary",
            (SKILL_TYPE_BROWSER, RELEASE_MODE_AUTO, "stable") => "promoted_stable",
            _ => "promoted",
        };
        self.db
            .query("UPDATE skill_candidates SET status = $1, promotion_release_id = $2, updated_at = $3 WHERE id = $4 AND owner = $5")
            .bind(status)
            .bind(&release.id)
            .bind(now)
            .bind(candidate_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(release)
    }

    /// A live (not deleted) release of the owner, else 404.
    pub async fn get_release(&self, owner: &str, id: &str) -> BayResult<Release> {
        sqlx::query_as(self.db.sql(select_release!("WHERE id = $1 AND owner = $2 AND is_deleted = 0")))
            .bind(id)
            .bind(owner)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| release_not_found(id))
    }

    /// The release a skill runs: active, live, highest version.
    pub async fn active_release(&self, owner: &str, skill_key: &str) -> BayResult<Option<Release>> {
        Ok(sqlx::query_as(
            self.db.sql(select_release!("WHERE owner = $1 AND skill_key = $2 AND is_active = 1 AND is_deleted = 0 ORDER BY version DESC LIMIT 1")),
        )
        .bind(owner)
        .bind(skill_key)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Active, live canary releases made automatically, of every owner,
    /// oldest promotion first (the learning scheduler watches them).
    pub async fn active_auto_canaries(&self, limit: i64) -> BayResult<Vec<Release>> {
        Ok(sqlx::query_as(self.db.sql(select_release!(
            "WHERE stage = 'canary' AND is_active = 1 AND is_deleted = 0 AND release_mode = 'auto' ORDER BY promoted_at ASC, id ASC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Live releases, newest promotion first, and the total matching.
    pub async fn list_releases(&self, owner: &str, filter: &ReleaseFilter, limit: i64, offset: i64) -> BayResult<(Vec<Release>, i64)> {
        if let Some(stage) = &filter.stage {
            check_stage(stage)?;
        }
        let active_only = filter.active_only as i64;
        let (total,): (i64,) = sqlx::query_as(self.db.sql(
            "SELECT COUNT(*) FROM skill_releases WHERE owner = $1 AND is_deleted = 0 AND ($2 IS NULL OR skill_key = $2) AND ($3 = 0 OR is_active = 1) AND ($4 IS NULL OR stage = $4)",
        ))
        .bind(owner)
        .bind(filter.skill_key.as_deref())
        .bind(active_only)
        .bind(filter.stage.as_deref())
        .fetch_one(self.db.pool())
        .await?;
        let items = sqlx::query_as(self.db.sql(select_release!(
            "WHERE owner = $1 AND is_deleted = 0 AND ($2 IS NULL OR skill_key = $2) AND ($3 = 0 OR is_active = 1) AND ($4 IS NULL OR stage = $4) ORDER BY promoted_at DESC, version DESC LIMIT $5 OFFSET $6"
        )))
        .bind(owner)
        .bind(filter.skill_key.as_deref())
        .bind(active_only)
        .bind(filter.stage.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.db.pool())
        .await?;
        Ok((items, total))
    }

    /// Rolls a release back to the previous live release of its skill: a new
    /// active release (version `max + 1`) with the previous release's
    /// candidate and stage and `rollback_of` = this release. The rolled-back
    /// release's candidate becomes `rolled_back`.
    pub async fn rollback_release(&self, owner: &str, release_id: &str, rolled_back_by: Option<&str>, mode: &str) -> BayResult<Release> {
        let _guard = WRITES.lock().await;
        let mut tx = self.write_tx().await?;
        let current: Release = sqlx::query_as(self.db.sql(select_release!("WHERE id = $1 AND owner = $2 AND is_deleted = 0")))
            .bind(release_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| release_not_found(release_id))?;
        let previous: Option<Release> = sqlx::query_as(
            self.db.sql(select_release!("WHERE owner = $1 AND skill_key = $2 AND version < $3 AND is_deleted = 0 ORDER BY version DESC LIMIT 1")),
        )
        .bind(owner)
        .bind(&current.skill_key)
        .bind(current.version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else {
            return Err(BayError::conflict("Rollback is unavailable: no previous release exists").with("release_id", release_id));
        };
        let candidate_live: Option<(String,)> =
            sqlx::query_as(self.db.sql("SELECT id FROM skill_candidates WHERE id = $1 AND owner = $2 AND is_deleted = 0"))
                .bind(&current.candidate_id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
        if candidate_live.is_none() {
            return Err(candidate_not_found(&current.candidate_id));
        }
        let version = self.next_version(&mut tx, owner, &current.skill_key).await?;
        self.deactivate_all(&mut tx, owner, &current.skill_key).await?;
        let now = now_micros();
        let release = Release {
            id: new_id("sr"),
            owner: owner.to_owned(),
            skill_key: current.skill_key.clone(),
            candidate_id: previous.candidate_id,
            version,
            stage: previous.stage,
            is_active: 1,
            release_mode: mode.to_owned(),
            promoted_by: rolled_back_by.map(str::to_owned),
            promoted_at: now,
            rollback_of: Some(current.id.clone()),
            auto_promoted_from: (mode == RELEASE_MODE_AUTO).then(|| current.id.clone()),
            health_window_end_at: None,
            upgrade_of_release_id: None,
            upgrade_reason: None,
            change_summary: None,
            is_deleted: 0,
            deleted_at: None,
            deleted_by: None,
            delete_reason: None,
        };
        self.insert_release(&mut tx, &release).await?;
        self.db
            .query("UPDATE skill_candidates SET status = 'rolled_back', updated_at = $1 WHERE id = $2 AND owner = $3")
            .bind(now)
            .bind(&current.candidate_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(release)
    }

    /// Soft-deletes a release (active ones too: deleting deactivates) and
    /// clears candidate pointers to it.
    pub async fn delete_release(&self, owner: &str, id: &str, deleted_by: Option<&str>, reason: Option<&str>) -> BayResult<DeleteView> {
        let _guard = WRITES.lock().await;
        let mut tx = self.write_tx().await?;
        let live: Option<(i64,)> = sqlx::query_as(self.db.sql("SELECT is_deleted FROM skill_releases WHERE id = $1 AND owner = $2"))
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        if !matches!(live, Some((0,))) {
            return Err(release_not_found(id));
        }
        let now = now_micros();
        self.db
            .query("UPDATE skill_releases SET is_active = 0, is_deleted = 1, deleted_at = $1, deleted_by = $2, delete_reason = $3 WHERE id = $4 AND owner = $5")
            .bind(now)
            .bind(deleted_by)
            .bind(reason)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        self.db
            .query("UPDATE skill_candidates SET promotion_release_id = NULL, updated_at = $1 WHERE owner = $2 AND promotion_release_id = $3")
            .bind(now)
            .bind(owner)
            .bind(id)
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
    use crate::skills::{NewCandidate, NewEvaluation};

    async fn passing_candidate(skills: &Skills, owner: &str, key: &str) -> String {
        let ex = execution(skills.db(), owner, true, 5, None, None).await;
        let c = skills.create_candidate(owner, NewCandidate::new(key, vec![ex])).await.unwrap();
        skills.evaluate_candidate(owner, &c.id, NewEvaluation { passed: true, score: Some(1.0), ..Default::default() }).await.unwrap();
        c.id
    }

    fn canary() -> NewRelease {
        NewRelease::manual("canary", Some("alice".into()))
    }

    #[tokio::test]
    async fn promotion_needs_a_passing_evaluation_and_a_valid_stage() {
        let skills = Skills::new(test_db().await);
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let c = skills.create_candidate("alice", NewCandidate::new("k", vec![ex])).await.unwrap();
        let e = skills.promote_candidate("alice", &c.id, canary()).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (409, "Candidate has no passing evaluation; promotion is blocked"));
        assert_eq!(e.details["candidate_id"], c.id.as_str());
        skills.evaluate_candidate("alice", &c.id, NewEvaluation { passed: false, ..Default::default() }).await.unwrap();
        assert_eq!(skills.promote_candidate("alice", &c.id, canary()).await.unwrap_err().status().as_u16(), 409);
        let e = skills.promote_candidate("alice", &c.id, NewRelease::manual("prod", None)).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (400, "Invalid release stage: prod"));
        assert_eq!(skills.promote_candidate("bob", &c.id, canary()).await.unwrap_err().status().as_u16(), 404);
    }

    #[tokio::test]
    async fn promotion_versions_and_deactivates() {
        let skills = Skills::new(test_db().await);
        let c1 = passing_candidate(&skills, "alice", "k").await;
        let c2 = passing_candidate(&skills, "alice", "k").await;
        let other = passing_candidate(&skills, "alice", "other").await;
        let bob = passing_candidate(&skills, "bob", "k").await;

        let r1 = skills.promote_candidate("alice", &c1, canary()).await.unwrap();
        let mut new = NewRelease::manual("stable", Some("alice".into()));
        new.upgrade_of_release_id = Some(r1.id.clone());
        new.upgrade_reason = Some("faster".into());
        new.change_summary = Some("v2".into());
        let r2 = skills.promote_candidate("alice", &c2, new).await.unwrap();
        let o1 = skills.promote_candidate("alice", &other, canary()).await.unwrap();
        let b1 = skills.promote_candidate("bob", &bob, canary()).await.unwrap();
        assert!(r1.id.starts_with("sr-"));
        assert_eq!((r1.version, r2.version, o1.version, b1.version), (1, 2, 1, 1));
        assert_eq!(skills.get_release("alice", &r1.id).await.unwrap().is_active, 0);
        assert_eq!(skills.get_release("alice", &o1.id).await.unwrap().is_active, 1, "other skills untouched");

        let v = serde_json::to_value(ReleaseView::from(r2.clone())).unwrap();
        assert_eq!(v["stage"], "stable");
        assert_eq!(v["is_active"], true);
        assert_eq!(v["release_mode"], "manual");
        assert_eq!(v["promoted_by"], "alice");
        assert_eq!(v["upgrade_of_release_id"], r1.id.as_str());
        assert_eq!((v["upgrade_reason"].as_str(), v["change_summary"].as_str()), (Some("faster"), Some("v2")));
        assert!(v["rollback_of"].is_null() && v["health_window_end_at"].is_null() && v["deleted_at"].is_null());
        assert_eq!(v.as_object().unwrap().len(), 19);

        let cand = skills.get_candidate("alice", &c2).await.unwrap();
        assert_eq!((cand.status.as_str(), cand.promotion_release_id.as_deref()), ("promoted", Some(r2.id.as_str())));

        let (items, total) = skills.list_releases("alice", &ReleaseFilter::default(), 100, 0).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(items[0].id, o1.id, "newest promotion first");
        let f = ReleaseFilter { skill_key: Some("k".into()), active_only: true, stage: None };
        let (items, total) = skills.list_releases("alice", &f, 100, 0).await.unwrap();
        assert_eq!((total, items[0].id.clone()), (1, r2.id.clone()));
        let f = ReleaseFilter { stage: Some("canary".into()), ..Default::default() };
        assert_eq!(skills.list_releases("alice", &f, 100, 0).await.unwrap().1, 2);
        let f = ReleaseFilter { stage: Some("beta".into()), ..Default::default() };
        assert_eq!(skills.list_releases("alice", &f, 100, 0).await.unwrap_err().status().as_u16(), 400);
        assert_eq!(skills.list_releases("alice", &ReleaseFilter::default(), 1, 2).await.unwrap().0.len(), 1);
        assert_eq!(skills.active_release("alice", "k").await.unwrap().unwrap().id, r2.id);
    }

    #[tokio::test]
    async fn rollback_goes_to_the_previous_release() {
        let skills = Skills::new(test_db().await);
        let c1 = passing_candidate(&skills, "alice", "k").await;
        let c2 = passing_candidate(&skills, "alice", "k").await;
        let r1 = skills.promote_candidate("alice", &c1, NewRelease::manual("stable", None)).await.unwrap();
        let e = skills.rollback_release("alice", &r1.id, Some("alice"), RELEASE_MODE_MANUAL).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (409, "Rollback is unavailable: no previous release exists"));
        assert_eq!(e.details["release_id"], r1.id.as_str());

        let r2 = skills.promote_candidate("alice", &c2, canary()).await.unwrap();
        assert_eq!(skills.rollback_release("bob", &r2.id, None, RELEASE_MODE_MANUAL).await.unwrap_err().status().as_u16(), 404);
        let r3 = skills.rollback_release("alice", &r2.id, Some("alice"), RELEASE_MODE_MANUAL).await.unwrap();
        assert_eq!((r3.version, r3.candidate_id.as_str(), r3.stage.as_str()), (3, c1.as_str(), "stable"));
        assert_eq!((r3.rollback_of.as_deref(), r3.is_active, r3.release_mode.as_str()), (Some(r2.id.as_str()), 1, "manual"));
        assert_eq!(r3.promoted_by.as_deref(), Some("alice"));
        assert!(r3.auto_promoted_from.is_none());
        assert_eq!(skills.get_release("alice", &r2.id).await.unwrap().is_active, 0);
        assert_eq!(skills.get_candidate("alice", &c2).await.unwrap().status, "rolled_back");
        assert_eq!(skills.get_candidate("alice", &c1).await.unwrap().status, "promoted", "the target keeps its status");
        assert_eq!(skills.active_release("alice", "k").await.unwrap().unwrap().id, r3.id);

        // Deleted releases are skipped when looking for the previous one.
        skills.delete_release("alice", &r1.id, None, None).await.unwrap();
        let r4 = skills.rollback_release("alice", &r3.id, None, RELEASE_MODE_AUTO).await.unwrap();
        assert_eq!((r4.version, r4.candidate_id.as_str(), r4.stage.as_str()), (4, c2.as_str(), "canary"));
        assert_eq!(r4.auto_promoted_from.as_deref(), Some(r3.id.as_str()));
    }

    #[tokio::test]
    async fn deleting_releases_and_candidates() {
        let skills = Skills::new(test_db().await);
        let c1 = passing_candidate(&skills, "alice", "k").await;
        let r1 = skills.promote_candidate("alice", &c1, canary()).await.unwrap();

        let e = skills.delete_candidate("alice", &c1, None, None).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.as_str()), (409, "Candidate referenced by active release cannot be deleted"));
        assert_eq!(skills.delete_release("bob", &r1.id, None, None).await.unwrap_err().status().as_u16(), 404);

        let d = skills.delete_release("alice", &r1.id, Some("alice"), Some("bad")).await.unwrap();
        assert_eq!((d.deleted_by.as_deref(), d.delete_reason.as_deref()), (Some("alice"), Some("bad")));
        let e = skills.get_release("alice", &r1.id).await.unwrap_err();
        assert_eq!((e.status().as_u16(), e.message.clone()), (404, format!("Skill release not found: {}", r1.id)));
        assert_eq!(skills.delete_release("alice", &r1.id, None, None).await.unwrap_err().status().as_u16(), 404);
        let row: (i64, i64) = sqlx::query_as(skills.db().sql("SELECT is_active, is_deleted FROM skill_releases WHERE id = $1"))
            .bind(&r1.id)
            .fetch_one(skills.db().pool())
            .await
            .unwrap();
        assert_eq!(row, (0, 1));
        assert!(skills.get_candidate("alice", &c1).await.unwrap().promotion_release_id.is_none());
        assert_eq!(skills.list_releases("alice", &ReleaseFilter::default(), 100, 0).await.unwrap().1, 0);
        assert!(skills.active_release("alice", "k").await.unwrap().is_none());

        // Versions are never reused, even after a delete.
        let r2 = skills.promote_candidate("alice", &c1, canary()).await.unwrap();
        assert_eq!(r2.version, 2);
        // The candidate can be deleted once its release is inactive.
        let c2 = passing_candidate(&skills, "alice", "k").await;
        skills.promote_candidate("alice", &c2, canary()).await.unwrap();
        skills.delete_candidate("alice", &c1, None, None).await.unwrap();
    }

    #[tokio::test]
    async fn auto_browser_promotions_get_stage_specific_statuses() {
        let skills = Skills::new(test_db().await);
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let new = NewCandidate { skill_type: SKILL_TYPE_BROWSER.into(), created_by: Some("system:auto".into()), ..NewCandidate::new("b", vec![ex]) };
        let c = skills.create_candidate("alice", new).await.unwrap();
        skills.evaluate_candidate("alice", &c.id, NewEvaluation { passed: true, ..Default::default() }).await.unwrap();
        let auto = NewRelease { release_mode: RELEASE_MODE_AUTO.into(), health_window_end_at: Some(now_micros() + 1), ..canary() };
        skills.promote_candidate("alice", &c.id, auto.clone()).await.unwrap();
        assert_eq!(skills.get_candidate("alice", &c.id).await.unwrap().status, "promoted_canary");
        skills.promote_candidate("alice", &c.id, NewRelease { stage: "stable".into(), ..auto }).await.unwrap();
        assert_eq!(skills.get_candidate("alice", &c.id).await.unwrap().status, "promoted_stable");
        skills.promote_candidate("alice", &c.id, canary()).await.unwrap();
        assert_eq!(skills.get_candidate("alice", &c.id).await.unwrap().status, "promoted");
    }
}
