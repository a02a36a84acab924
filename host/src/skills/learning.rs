//! The browser-learning scheduler (Shipyard Neo's contract,
//! docs/compatibility.md): turns learn-enabled browser executions into
//! browser skill candidates, evaluates them offline, releases the passing
//! ones as automatic canaries, and later rolls a canary back or promotes it
//! to stable according to its release health.
//!
//! One cycle ([`run_cycle`]):
//! 1. up to `batch_size` learn-enabled `browser`/`browser_batch` executions
//!    whose `learn_status` is pending or null, oldest first, each claimed by
//!    moving it to `processing` (a conditional update, so two replicas never
//!    learn from the same execution);
//! 2. the trace's steps are cut into segments ([`super::segments`]);
//! 3. each segment becomes a `browser_segment` blob, a candidate
//!    (`system:auto`), an evaluation (`browser-replay-v1`) and, when it
//!    passes and `browser_auto_release_enabled`, an `auto` canary release
//!    with a `canary_window_hours` health window;
//! 4. every active auto canary is checked: `should_rollback` → automatic
//!    rollback; window complete and healthy → automatic stable release;
//! 5. the execution ends `processed`, `skipped` (`no_actionable_segments`)
//!    or `error` (the error's message).
//!
//! [`Learning::spawn`] runs a cycle at startup (`run_on_startup`) and then
//! every `interval_seconds`, on the replica that holds the leader lease, as
//! GC does.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::segments::{self, Step};
use super::{HealthThresholds, Json, NewCandidate, NewEvaluation, NewRelease, RELEASE_MODE_AUTO, Release, SKILL_TYPE_BROWSER, Skills};
use crate::config::BrowserLearningConfig;
use crate::db::history::{Execution, learn};
use crate::error::BayResult;
use crate::ids::{Micros, now_micros, secs};
use crate::sandbox::SandboxManager;

/// Who the scheduler acts as.
pub const SYSTEM_AUTO: &str = "system:auto";
pub const BENCHMARK: &str = "browser-replay-v1";
/// At most this many auto canaries are checked per cycle.
const CANARY_LIMIT: i64 = 200;

/// What one cycle did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CycleResult {
    pub processed_executions: u64,
    pub skipped_executions: u64,
    pub errored_executions: u64,
    pub created_candidates: u64,
    pub promoted_canary: u64,
    pub promoted_stable: u64,
    pub rolled_back: u64,
    pub audit_events: Vec<String>,
}

/// The settings a cycle runs with.
#[derive(Debug, Clone)]
pub struct Policy {
    pub config: BrowserLearningConfig,
    /// `browser_auto_release_enabled`: release passing candidates as canaries
    /// and promote healthy canaries (rollbacks happen either way).
    pub auto_release: bool,
}

impl Policy {
    fn thresholds(&self) -> HealthThresholds {
        HealthThresholds { success_drop: self.config.success_drop_threshold, error_rate_multiplier: self.config.error_rate_multiplier_threshold }
    }
}

/// One learning cycle as of `now`. Fails only when the waiting executions
/// cannot be listed; an execution that fails is marked `error`, a canary
/// that cannot be acted on is logged and left for the next cycle.
pub async fn run_cycle(skills: &Skills, policy: &Policy, now: Micros) -> BayResult<CycleResult> {
    let mut result = CycleResult::default();
    if !policy.config.enabled {
        return Ok(result);
    }
    let batch = i64::from(policy.config.batch_size.clamp(1, 500));
    for entry in skills.db.pending_learning(batch).await? {
        if !skills.db.claim_learning(&entry.id).await? {
            continue;
        }
        match learn_from(skills, policy, &entry, now, &mut result).await {
            Ok(true) => result.processed_executions += 1,
            Ok(false) => result.skipped_executions += 1,
            Err(e) => {
                result.errored_executions += 1;
                tracing::warn!(execution_id = %entry.id, error = %e.message, "browser learning failed for an execution");
                skills.db.set_learning(&entry.id, learn::ERROR, Some(&e.message), Some(now)).await?;
            }
        }
    }
    canary_lifecycle(skills, policy, now, &mut result).await?;
    Ok(result)
}

/// Steps 2, 3 and 5 for one claimed execution; false when it had nothing to learn.
async fn learn_from(skills: &Skills, policy: &Policy, entry: &Execution, now: Micros, result: &mut CycleResult) -> BayResult<bool> {
    let trace = match &entry.payload_ref {
        Some(r) => Some(skills.payload_by_ref(&entry.owner, r).await?.1),
        None => None,
    };
    let steps = segments::normalize_steps(trace.as_ref(), &entry.code, entry.success != 0);
    let found = segments::segments(&steps);
    if found.is_empty() {
        skills.db.set_learning(&entry.id, learn::SKIPPED, Some("no_actionable_segments"), Some(now)).await?;
        return Ok(false);
    }
    let skill_key = segments::skill_key(entry.tags.as_deref(), &entry.sandbox_id).trim().to_owned();
    let scenario_key = segments::scenario_key(entry.description.as_deref());
    for (index, segment) in found.iter().enumerate() {
        learn_segment(skills, policy, entry, &skill_key, scenario_key.as_deref(), index, segment, now, result).await?;
    }
    skills.db.set_learning(&entry.id, learn::PROCESSED, None, Some(now)).await?;
    Ok(true)
}

fn segment_payload(entry: &Execution, index: usize, segment: &[Step]) -> Json {
    Json::Object(vec![
        ("skill_type".into(), Json::String(SKILL_TYPE_BROWSER.into())),
        ("segment_index".into(), Json::Number((index as u64).into())),
        ("source_execution_id".into(), Json::String(entry.id.clone())),
        ("commands".into(), Json::Array(segment.iter().map(|s| Json::String(s.cmd.clone())).collect())),
        ("steps".into(), Json::Array(segment.iter().map(Step::to_json).collect())),
    ])
}

#[allow(clippy::too_many_arguments)]
async fn learn_segment(
    skills: &Skills,
    policy: &Policy,
    entry: &Execution,
    skill_key: &str,
    scenario_key: Option<&str>,
    index: usize,
    segment: &[Step],
    now: Micros,
    result: &mut CycleResult,
) -> BayResult<()> {
    let owner = entry.owner.as_str();
    let blob = skills.create_payload(owner, "browser_segment", &segment_payload(entry, index, segment)).await?;
    let candidate = skills
        .create_candidate(
            owner,
            NewCandidate {
                scenario_key: scenario_key.map(str::to_owned),
                payload_ref: Some(blob.payload_ref),
                created_by: Some(SYSTEM_AUTO.into()),
                skill_type: SKILL_TYPE_BROWSER.into(),
                auto_release_eligible: false,
                auto_release_reason: Some("pending_evaluation".into()),
                ..NewCandidate::new(skill_key, vec![entry.id.clone()])
            },
        )
        .await?;
    result.created_candidates += 1;

    let c = &policy.config;
    let score = segments::score(segment.len());
    let passed = score.passes(c.score_threshold, c.replay_success_threshold, c.min_samples);
    let evaluation = NewEvaluation {
        passed,
        score: Some(score.score),
        benchmark_id: Some(BENCHMARK.into()),
        report: Some(score.report(c.score_threshold, c.replay_success_threshold, c.min_samples)),
        evaluated_by: Some(SYSTEM_AUTO.into()),
    };
    skills.evaluate_candidate(owner, &candidate.id, evaluation).await?;
    if !passed {
        return skills.set_auto_release(owner, &candidate.id, false, Some("threshold_not_met")).await;
    }
    if !policy.auto_release {
        return skills.set_auto_release(owner, &candidate.id, false, Some("auto_release_disabled")).await;
    }
    let active = skills.active_release(owner, skill_key).await?;
    let release = skills
        .promote_candidate(
            owner,
            &candidate.id,
            NewRelease {
                release_mode: RELEASE_MODE_AUTO.into(),
                auto_promoted_from: active.map(|r| r.id),
                health_window_end_at: Some(now + secs(i64::from(c.canary_window_hours) * 3600)),
                ..NewRelease::manual("canary", Some(SYSTEM_AUTO.into()))
            },
        )
        .await?;
    result.promoted_canary += 1;
    skills.set_auto_release(owner, &candidate.id, true, Some("threshold_passed")).await?;
    tracing::info!(candidate_id = %candidate.id, release_id = %release.id, score = score.score, "browser skill released as an automatic canary");
    result.audit_events.push(format!("auto_promote_canary:{}", release.id));
    Ok(())
}

/// Step 4: roll back unhealthy auto canaries, promote healthy ones whose
/// window is over.
async fn canary_lifecycle(skills: &Skills, policy: &Policy, now: Micros, result: &mut CycleResult) -> BayResult<()> {
    for release in skills.active_auto_canaries(CANARY_LIMIT).await? {
        if let Err(e) = check_canary(skills, policy, &release, now, result).await {
            tracing::warn!(release_id = %release.id, error = %e.message, "browser learning could not act on an automatic canary");
        }
    }
    Ok(())
}

async fn check_canary(skills: &Skills, policy: &Policy, release: &Release, now: Micros, result: &mut CycleResult) -> BayResult<()> {
    let owner = release.owner.as_str();
    let health = skills.release_health_at(owner, &release.id, policy.thresholds(), now).await?;
    if health.should_rollback {
        let rollback = skills.rollback_release(owner, &release.id, Some(SYSTEM_AUTO), RELEASE_MODE_AUTO).await?;
        tracing::warn!(release_id = %release.id, new_release_id = %rollback.id, reasons = ?health.rollback_reasons, "browser skill canary rolled back automatically");
        result.rolled_back += 1;
        result.audit_events.push(format!("auto_rollback:{}", release.id));
        return Ok(());
    }
    if policy.auto_release && health.window_complete && health.healthy {
        let stable = NewRelease {
            release_mode: RELEASE_MODE_AUTO.into(),
            auto_promoted_from: Some(release.id.clone()),
            ..NewRelease::manual("stable", Some(SYSTEM_AUTO.into()))
        };
        let stable = skills.promote_candidate(owner, &release.candidate_id, stable).await?;
        tracing::info!(canary_release_id = %release.id, stable_release_id = %stable.id, "browser skill promoted to stable automatically");
        result.promoted_stable += 1;
        result.audit_events.push(format!("auto_promote_stable:{}", stable.id));
    }
    Ok(())
}

/// The periodic scheduler.
pub struct Learning {
    policy: Policy,
    manager: Arc<SandboxManager>,
    run_lock: tokio::sync::Mutex<()>,
}

impl Learning {
    pub fn new(manager: Arc<SandboxManager>) -> Arc<Learning> {
        let config = &manager.config;
        let policy = Policy { config: config.browser_learning.clone(), auto_release: config.browser_auto_release_enabled.unwrap_or(true) };
        Arc::new(Learning { policy, manager, run_lock: tokio::sync::Mutex::new(()) })
    }

    /// One cycle now, unless one is running (then `None`).
    pub async fn run_once(&self) -> Option<BayResult<CycleResult>> {
        let _running = self.run_lock.try_lock().ok()?;
        // Executions answered a moment ago are still in the history writer.
        self.manager.history().flush().await;
        let result = run_cycle(&Skills::new(self.manager.db().clone()), &self.policy, now_micros()).await;
        match &result {
            Ok(r) if *r != CycleResult::default() => tracing::info!(
                processed = r.processed_executions,
                skipped = r.skipped_executions,
                errored = r.errored_executions,
                candidates = r.created_candidates,
                promoted_canary = r.promoted_canary,
                promoted_stable = r.promoted_stable,
                rolled_back = r.rolled_back,
                "browser learning cycle"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.message, "browser learning cycle failed"),
        }
        Some(result)
    }

    /// The background loop: a cycle at startup (`run_on_startup`), then one
    /// per `interval_seconds`, each on the leader replica only.
    pub fn spawn(self: &Arc<Self>) {
        let c = &self.policy.config;
        tracing::info!(
            enabled = c.enabled,
            run_on_startup = c.run_on_startup,
            interval_seconds = c.interval_seconds,
            batch_size = c.batch_size,
            auto_release_enabled = self.policy.auto_release,
            "browser learning scheduler"
        );
        if !c.enabled {
            return;
        }
        let learning = self.clone();
        tokio::spawn(async move {
            let is_leader = || learning.manager.cluster.is_leader();
            if learning.policy.config.run_on_startup && is_leader() {
                learning.run_once().await;
            }
            let mut tick = tokio::time::interval(Duration::from_secs(learning.policy.config.interval_seconds.max(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                if is_leader() {
                    learning.run_once().await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod api_tests;
