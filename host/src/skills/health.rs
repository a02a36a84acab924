//! Release health (`GET /v1/skills/releases/{id}/health`): the success and
//! error rates of the executions tagged `release:<id>` within the release's
//! health window, compared with a baseline.
//!
//! - Window: `promoted_at` to `health_window_end_at` (or `promoted_at` +
//!   24 h); samples are counted up to `min(now, window end)`.
//! - Baseline: the previous release's metrics over its own active period
//!   (its `promoted_at` to this release's); if it has no samples, the
//!   previous candidate's latest evaluation report (JSON `replay_success`,
//!   `error_rate`, `samples`); else `{samples 0, success 1.0, error 0.0}`.
//! - A baseline error rate of 0 makes the multiplier 1e6 when errors were
//!   observed, else 1.0.
//! - With samples, `success_rate_drop` (drop > threshold) and
//!   `error_rate_regression` (multiplier > threshold) are rollback reasons;
//!   healthy = samples and no reasons.

use serde::Serialize;

use super::{Json, Release, Skills};
use crate::error::BayResult;
use crate::ids::{Micros, format_ts, now_micros};

/// Default window when a release has no `health_window_end_at`.
pub const DEFAULT_WINDOW: Micros = 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HealthThresholds {
    pub success_drop: f64,
    pub error_rate_multiplier: f64,
}

impl Default for HealthThresholds {
    fn default() -> HealthThresholds {
        HealthThresholds { success_drop: 0.03, error_rate_multiplier: 2.0 }
    }
}

/// SkillReleaseHealthResponse.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseHealth {
    pub release_id: String,
    pub skill_key: String,
    pub stage: String,
    pub window_start_at: String,
    pub window_end_at: String,
    pub window_complete: bool,
    pub samples: i64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub p95_duration: i64,
    pub baseline_success_rate: f64,
    pub baseline_error_rate: f64,
    pub baseline_samples: i64,
    pub success_drop: f64,
    pub error_rate_multiplier: f64,
    pub healthy: bool,
    pub should_rollback: bool,
    pub rollback_reasons: Vec<String>,
    pub thresholds: HealthThresholds,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub samples: i64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub p95_duration: i64,
}

impl Metrics {
    /// What a missing baseline assumes: everything succeeds.
    const NO_BASELINE: Metrics = Metrics { samples: 0, success_rate: 1.0, error_rate: 0.0, p95_duration: 0 };

    /// Aggregates `(success, execution_time_ms)` samples; p95 is the
    /// nearest-rank percentile (`ceil(0.95 n)`-th smallest duration).
    pub fn aggregate(rows: &[(i64, i64)]) -> Metrics {
        let samples = rows.len() as i64;
        if samples == 0 {
            return Metrics { samples: 0, success_rate: 0.0, error_rate: 0.0, p95_duration: 0 };
        }
        let successes = rows.iter().filter(|(s, _)| *s != 0).count() as i64;
        let mut durations: Vec<i64> = rows.iter().map(|(_, ms)| (*ms).max(0)).collect();
        durations.sort_unstable();
        let index = ((0.95 * samples as f64).ceil() as i64 - 1).max(0) as usize;
        Metrics {
            samples,
            success_rate: successes as f64 / samples as f64,
            error_rate: (samples - successes) as f64 / samples as f64,
            p95_duration: durations[index.min(durations.len() - 1)],
        }
    }

    /// A baseline from an evaluation report (`{"replay_success", "error_rate",
    /// "samples", "p95_duration"}`); `None` when the report is not a JSON object.
    fn from_report(report: &str) -> Option<Metrics> {
        let data = Json::parse(report).ok().filter(Json::is_object)?;
        let number = |key: &str| match data.get(key)? {
            Json::Number(n) => n.as_f64(),
            Json::Bool(b) => Some(*b as i64 as f64),
            Json::String(s) => s.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        };
        let success_rate = number("replay_success").unwrap_or(1.0);
        let error_rate = number("error_rate").unwrap_or_else(|| (1.0 - success_rate).max(0.0));
        let samples = number("samples").map(|v| v.trunc() as i64).unwrap_or(0);
        Some(Metrics {
            samples: samples.max(0),
            success_rate: success_rate.clamp(0.0, 1.0),
            error_rate: error_rate.clamp(0.0, 1.0),
            p95_duration: number("p95_duration").map(|v| v.trunc() as i64).unwrap_or(0),
        })
    }
}

impl Skills {
    /// Metrics of the owner's executions tagged `release:<id>` created in
    /// `[start, end]`. Callers flush the history writer first.
    pub async fn release_metrics(&self, owner: &str, release_id: &str, start: Micros, end: Micros) -> BayResult<Metrics> {
        let pattern = format!("%release:{}%", release_id.to_lowercase());
        let rows: Vec<(i64, i64)> = sqlx::query_as(self.db.sql(
            "SELECT success, execution_time_ms FROM execution_history WHERE owner = $1 AND created_at >= $2 AND created_at <= $3 AND LOWER(tags) LIKE $4",
        ))
        .bind(owner)
        .bind(start)
        .bind(end)
        .bind(pattern)
        .fetch_all(self.db.pool())
        .await?;
        Ok(Metrics::aggregate(&rows))
    }

    async fn baseline_metrics(&self, owner: &str, release: &Release) -> BayResult<Metrics> {
        // The previous version, deleted or not.
        let previous: Option<(String, String, Micros)> = sqlx::query_as(self.db.sql(
            "SELECT id, candidate_id, promoted_at FROM skill_releases WHERE owner = $1 AND skill_key = $2 AND version < $3 ORDER BY version DESC LIMIT 1",
        ))
        .bind(owner)
        .bind(&release.skill_key)
        .bind(release.version)
        .fetch_optional(self.db.pool())
        .await?;
        let Some((previous_id, previous_candidate, previous_promoted_at)) = previous else {
            return Ok(Metrics::NO_BASELINE);
        };
        let metrics = self.release_metrics(owner, &previous_id, previous_promoted_at, release.promoted_at).await?;
        if metrics.samples > 0 {
            return Ok(metrics);
        }
        let report = self.latest_evaluation(owner, &previous_candidate).await?.and_then(|e| e.report);
        Ok(report.and_then(|r| Metrics::from_report(&r)).unwrap_or(Metrics::NO_BASELINE))
    }

    /// The health of a live release as of now.
    pub async fn release_health(&self, owner: &str, release_id: &str, thresholds: HealthThresholds) -> BayResult<ReleaseHealth> {
        self.release_health_at(owner, release_id, thresholds, now_micros()).await
    }

    pub async fn release_health_at(&self, owner: &str, release_id: &str, thresholds: HealthThresholds, now: Micros) -> BayResult<ReleaseHealth> {
        let release = self.get_release(owner, release_id).await?;
        let window_end = release.health_window_end_at.unwrap_or(release.promoted_at + DEFAULT_WINDOW);
        let observed = self.release_metrics(owner, &release.id, release.promoted_at, now.min(window_end)).await?;
        let baseline = self.baseline_metrics(owner, &release).await?;

        let success_drop = baseline.success_rate - observed.success_rate;
        let error_rate_multiplier = if baseline.error_rate <= 0.0 {
            if observed.error_rate > 0.0 { 1_000_000.0 } else { 1.0 }
        } else {
            observed.error_rate / baseline.error_rate
        };
        let mut reasons = Vec::new();
        if observed.samples > 0 {
            if success_drop > thresholds.success_drop {
                reasons.push("success_rate_drop".to_owned());
            }
            if error_rate_multiplier > thresholds.error_rate_multiplier {
                reasons.push("error_rate_regression".to_owned());
            }
        }
        Ok(ReleaseHealth {
            release_id: release.id.clone(),
            skill_key: release.skill_key.clone(),
            stage: release.stage.clone(),
            window_start_at: format_ts(release.promoted_at),
            window_end_at: format_ts(window_end),
            window_complete: now >= window_end,
            samples: observed.samples,
            success_rate: observed.success_rate,
            error_rate: observed.error_rate,
            p95_duration: observed.p95_duration,
            baseline_success_rate: baseline.success_rate,
            baseline_error_rate: baseline.error_rate,
            baseline_samples: baseline.samples,
            success_drop,
            error_rate_multiplier,
            healthy: reasons.is_empty() && observed.samples > 0,
            should_rollback: observed.samples > 0 && !reasons.is_empty(),
            rollback_reasons: reasons,
            thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;
    use crate::skills::testutil::execution;
    use crate::skills::{NewCandidate, NewEvaluation, NewRelease};

    #[test]
    fn aggregation_and_p95() {
        assert_eq!(Metrics::aggregate(&[]), Metrics { samples: 0, success_rate: 0.0, error_rate: 0.0, p95_duration: 0 });
        let rows: Vec<(i64, i64)> = (1..=20).map(|i| ((i % 4 != 0) as i64, i * 10)).collect();
        let m = Metrics::aggregate(&rows);
        assert_eq!((m.samples, m.success_rate, m.error_rate, m.p95_duration), (20, 0.75, 0.25, 190));
        assert_eq!(Metrics::aggregate(&[(1, -5)]).p95_duration, 0);
        assert_eq!(Metrics::aggregate(&[(1, 7), (0, 3)]).p95_duration, 7);
    }

    #[test]
    fn report_baselines() {
        let m = Metrics::from_report(r#"{"replay_success": 0.9, "samples": 30}"#).unwrap();
        assert_eq!((m.samples, m.success_rate), (30, 0.9));
        assert!((m.error_rate - 0.1).abs() < 1e-12);
        let m = Metrics::from_report(r#"{"replay_success": 1.5, "error_rate": -1, "samples": -3}"#).unwrap();
        assert_eq!((m.samples, m.success_rate, m.error_rate), (0, 1.0, 0.0));
        assert!(Metrics::from_report("not json").is_none());
        assert!(Metrics::from_report("[1]").is_none());
    }

    async fn promoted(skills: &Skills, key: &str, report: Option<&str>) -> Release {
        let ex = execution(skills.db(), "alice", true, 5, None, None).await;
        let c = skills.create_candidate("alice", NewCandidate::new(key, vec![ex])).await.unwrap();
        let eval = NewEvaluation { passed: true, report: report.map(str::to_owned), ..Default::default() };
        skills.evaluate_candidate("alice", &c.id, eval).await.unwrap();
        skills.promote_candidate("alice", &c.id, NewRelease::manual("canary", None)).await.unwrap()
    }

    #[tokio::test]
    async fn no_samples_is_neither_healthy_nor_a_rollback() {
        let skills = Skills::new(test_db().await);
        let r = promoted(&skills, "k", None).await;
        let h = skills.release_health("alice", &r.id, HealthThresholds::default()).await.unwrap();
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["samples"], 0);
        assert_eq!((v["success_rate"].as_f64(), v["error_rate"].as_f64()), (Some(0.0), Some(0.0)));
        assert_eq!(
            (v["baseline_success_rate"].as_f64(), v["baseline_error_rate"].as_f64(), &v["baseline_samples"]),
            (Some(1.0), Some(0.0), &serde_json::json!(0))
        );
        assert_eq!(v["success_drop"].as_f64(), Some(1.0));
        assert_eq!(v["error_rate_multiplier"].as_f64(), Some(1.0));
        assert_eq!((&v["healthy"], &v["should_rollback"]), (&serde_json::json!(false), &serde_json::json!(false)));
        assert_eq!(v["rollback_reasons"], serde_json::json!([]));
        assert_eq!(serde_json::to_string(&v["thresholds"]).unwrap(), r#"{"error_rate_multiplier":2.0,"success_drop":0.03}"#);
        assert_eq!(serde_json::to_string(&h.thresholds).unwrap(), r#"{"success_drop":0.03,"error_rate_multiplier":2.0}"#);
        assert_eq!(v["window_start_at"], format_ts(r.promoted_at));
        assert_eq!(v["window_end_at"], format_ts(r.promoted_at + DEFAULT_WINDOW));
        assert_eq!(v["window_complete"], false);
        assert_eq!((v["release_id"].as_str(), v["skill_key"].as_str(), v["stage"].as_str()), (Some(r.id.as_str()), Some("k"), Some("canary")));
        assert_eq!(v.as_object().unwrap().len(), 19);
        assert_eq!(skills.release_health("bob", &r.id, HealthThresholds::default()).await.unwrap_err().status().as_u16(), 404);
        let later = skills.release_health_at("alice", &r.id, HealthThresholds::default(), r.promoted_at + DEFAULT_WINDOW).await.unwrap();
        assert!(later.window_complete);
    }

    #[tokio::test]
    async fn errors_against_a_clean_baseline_trigger_rollback() {
        let skills = Skills::new(test_db().await);
        let r = promoted(&skills, "k", None).await;
        let tag = format!("release:{},skill:k", r.id);
        let t = r.promoted_at + 10;
        execution(skills.db(), "alice", true, 100, Some(&tag), Some(t)).await;
        execution(skills.db(), "alice", false, 300, Some(&tag), Some(t)).await;
        // Not counted: another owner, untagged, before promotion, after the window.
        execution(skills.db(), "bob", false, 1, Some(&tag), Some(t)).await;
        execution(skills.db(), "alice", false, 1, Some("skill:k"), Some(t)).await;
        execution(skills.db(), "alice", false, 1, Some(&tag), Some(r.promoted_at - 1)).await;
        execution(skills.db(), "alice", false, 1, Some(&tag), Some(r.promoted_at + DEFAULT_WINDOW + 1)).await;

        let h = skills.release_health_at("alice", &r.id, HealthThresholds::default(), r.promoted_at + 1_000).await.unwrap();
        assert_eq!((h.samples, h.success_rate, h.error_rate, h.p95_duration), (2, 0.5, 0.5, 300));
        assert_eq!((h.success_drop, h.error_rate_multiplier), (0.5, 1_000_000.0));
        assert_eq!(h.rollback_reasons, vec!["success_rate_drop", "error_rate_regression"]);
        assert!(h.should_rollback && !h.healthy);
        // Samples are only counted up to "now".
        let h = skills.release_health_at("alice", &r.id, HealthThresholds::default(), r.promoted_at + 5).await.unwrap();
        assert_eq!(h.samples, 0);
    }

    #[tokio::test]
    async fn baselines_come_from_the_previous_release_or_its_evaluation() {
        let skills = Skills::new(test_db().await);
        let r1 = promoted(&skills, "k", Some(r#"{"replay_success": 0.8, "error_rate": 0.2, "samples": 40}"#)).await;
        let r2 = promoted(&skills, "k", None).await;
        // r1 had no tagged executions: the baseline is its candidate's report.
        let tag2 = format!("release:{}", r2.id);
        for ok in [true, true, true, false] {
            execution(skills.db(), "alice", ok, 10, Some(&tag2), Some(r2.promoted_at + 1)).await;
        }
        let h = skills.release_health_at("alice", &r2.id, HealthThresholds::default(), r2.promoted_at + 100).await.unwrap();
        assert_eq!((h.baseline_samples, h.baseline_success_rate, h.baseline_error_rate), (40, 0.8, 0.2));
        assert_eq!((h.samples, h.success_rate, h.error_rate), (4, 0.75, 0.25));
        assert!((h.success_drop - 0.05).abs() < 1e-9 && (h.error_rate_multiplier - 1.25).abs() < 1e-9);
        assert_eq!(h.rollback_reasons, vec!["success_rate_drop"]);
        assert!(h.should_rollback);

        // Once r1 has samples in its own period, they are the baseline.
        let tag1 = format!("release:{}", r1.id);
        for ok in [true, false] {
            execution(skills.db(), "alice", ok, 10, Some(&tag1), Some(r1.promoted_at)).await;
        }
        let h = skills.release_health_at("alice", &r2.id, HealthThresholds::default(), r2.promoted_at + 100).await.unwrap();
        assert_eq!((h.baseline_samples, h.baseline_success_rate, h.baseline_error_rate), (2, 0.5, 0.5));
        assert_eq!(h.error_rate_multiplier, 0.5);
        assert!(h.healthy && h.rollback_reasons.is_empty());

        // A release window given explicitly.
        let mut r3 = promoted(&skills, "other", None).await;
        r3.health_window_end_at = Some(r3.promoted_at + 50);
        skills
            .db()
            .query("UPDATE skill_releases SET health_window_end_at = $1 WHERE id = $2")
            .bind(r3.health_window_end_at)
            .bind(&r3.id)
            .execute(skills.db().pool())
            .await
            .unwrap();
        let h = skills.release_health_at("alice", &r3.id, HealthThresholds::default(), r3.promoted_at + 60).await.unwrap();
        assert!(h.window_complete);
        assert_eq!(h.window_end_at, format_ts(r3.promoted_at + 50));
    }
}
