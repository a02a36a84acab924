use super::*;
use crate::db::test_db;
use crate::ids::execution_id;
use crate::skills::testutil::execution;

const HOUR: Micros = 3600 * 1_000_000;

fn policy() -> Policy {
    Policy { config: BrowserLearningConfig::default(), auto_release: true }
}

/// A browser history row as `browser/exec_batch` records it.
struct Row<'a> {
    exec_type: &'a str,
    learn: bool,
    status: Option<&'a str>,
    payload_ref: Option<String>,
    tags: Option<&'a str>,
    description: Option<&'a str>,
    created_at: Micros,
}

impl Default for Row<'_> {
    fn default() -> Self {
        Row {
            exec_type: "browser_batch",
            learn: true,
            status: Some("pending"),
            payload_ref: None,
            tags: None,
            description: None,
            created_at: now_micros(),
        }
    }
}

async fn insert(skills: &Skills, row: Row<'_>) -> String {
    let id = execution_id();
    skills
        .db
        .insert_execution(&Execution {
            id: id.clone(),
            owner: "alice".into(),
            sandbox_id: "sandbox-abc".into(),
            session_id: None,
            exec_type: row.exec_type.into(),
            code: "open x\nclick @e1".into(),
            success: 1,
            execution_time_ms: 12,
            output: None,
            error: None,
            payload_ref: row.payload_ref,
            description: row.description.map(str::to_owned),
            tags: row.tags.map(str::to_owned),
            notes: None,
            learn_enabled: row.learn as i64,
            learn_status: row.status.map(str::to_owned),
            learn_error: None,
            learn_processed_at: None,
            created_at: row.created_at,
        })
        .await
        .unwrap();
    id
}

/// Stores a `browser_batch_trace` whose steps are `(cmd, exit_code)`.
async fn trace(skills: &Skills, steps: &[(&str, i64)]) -> String {
    let steps: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, (cmd, code))| format!(r#"{{"kind": "individual_action", "cmd": "{cmd}", "stdout": "", "stderr": "", "exit_code": {code}, "step_index": {i}, "duration_ms": 3}}"#))
        .collect();
    let text = format!(r#"{{"kind": "browser_batch_trace", "steps": [{}], "success": true}}"#, steps.join(", "));
    skills.create_payload("alice", "browser_trace", &Json::parse(&text).unwrap()).await.unwrap().payload_ref
}

async fn learning_row(skills: &Skills, id: &str) -> (Option<String>, Option<String>, Option<Micros>) {
    sqlx::query_as(skills.db.sql("SELECT learn_status, learn_error, learn_processed_at FROM execution_history WHERE id = $1"))
        .bind(id)
        .fetch_one(skills.db.pool())
        .await
        .unwrap()
}

const THREE_STEPS: [(&str, i64); 5] =
    [("snapshot -i", 0), ("open https://example.com", 0), ("click @e1", 0), ("fill @e2 hello", 0), ("get title", 0)];

#[tokio::test]
async fn a_three_step_trace_becomes_an_evaluated_candidate_and_an_auto_canary() {
    let skills = Skills::new(test_db().await);
    let payload_ref = trace(&skills, &THREE_STEPS).await;
    let tags = Some("foo,skill:github-login");
    let ex = insert(&skills, Row { payload_ref: Some(payload_ref), tags, description: Some("Log in to GitHub!"), ..Default::default() }).await;
    let now = now_micros();

    let r = run_cycle(&skills, &policy(), now).await.unwrap();
    assert_eq!((r.processed_executions, r.skipped_executions, r.errored_executions), (1, 0, 0));
    assert_eq!((r.created_candidates, r.promoted_canary, r.promoted_stable, r.rolled_back), (1, 1, 0, 0));
    assert_eq!(learning_row(&skills, &ex).await, (Some("processed".into()), None, Some(now)));

    let (candidates, total) = skills.list_candidates("alice", None, None, 100, 0).await.unwrap();
    assert_eq!(total, 1);
    let c = &candidates[0];
    assert_eq!((c.skill_key.as_str(), c.scenario_key.as_deref(), c.skill_type.as_str()), ("github-login", Some("log-in-to-github"), "browser"));
    assert_eq!((c.created_by.as_deref(), c.status.as_str(), c.source_execution_ids.as_str()), (Some("system:auto"), "promoted_canary", ex.as_str()));
    assert_eq!(
        (c.auto_release_eligible, c.auto_release_reason.as_deref(), c.latest_score, c.latest_pass),
        (1, Some("threshold_passed"), Some(0.99), Some(1))
    );

    let (blob, segment) = skills.payload_by_ref("alice", c.payload_ref.as_deref().unwrap()).await.unwrap();
    assert_eq!(blob.kind, "browser_segment");
    assert_eq!(
        segment.to_text(),
        format!(
            r#"{{"skill_type":"browser","segment_index":0,"source_execution_id":"{ex}","commands":["open https://example.com","click @e1","fill @e2 hello"],"steps":[{{"cmd":"open https://example.com","exit_code":0,"kind":"individual_action"}},{{"cmd":"click @e1","exit_code":0,"kind":"individual_action"}},{{"cmd":"fill @e2 hello","exit_code":0,"kind":"individual_action"}}]}}"#
        )
    );

    let e = skills.latest_evaluation("alice", &c.id).await.unwrap().unwrap();
    assert_eq!(
        (e.passed, e.score, e.benchmark_id.as_deref(), e.evaluated_by.as_deref()),
        (1, Some(0.99), Some("browser-replay-v1"), Some("system:auto"))
    );
    let report = Json::parse(e.report.as_deref().unwrap()).unwrap();
    assert_eq!(report.get("replay_success"), Some(&Json::parse("1.0").unwrap()));
    assert_eq!(report.get("samples"), Some(&Json::Number(30.into())));
    assert_eq!(report.get("error_rate"), Some(&Json::parse("0.0").unwrap()));

    let release = skills.active_release("alice", "github-login").await.unwrap().unwrap();
    assert_eq!((release.stage.as_str(), release.release_mode.as_str(), release.is_active, release.version), ("canary", "auto", 1, 1));
    assert_eq!((release.candidate_id.as_str(), release.promoted_by.as_deref()), (c.id.as_str(), Some("system:auto")));
    assert_eq!((release.health_window_end_at, release.auto_promoted_from.as_deref()), (Some(now + 24 * HOUR), None));
    assert_eq!(r.audit_events, vec![format!("auto_promote_canary:{}", release.id)]);

    // A second cycle finds nothing new: the execution is processed and the
    // canary has neither samples nor a complete window.
    assert_eq!(run_cycle(&skills, &policy(), now_micros()).await.unwrap(), CycleResult::default());
    assert_eq!(skills.list_candidates("alice", None, None, 100, 0).await.unwrap().1, 1);
    assert_eq!(skills.list_releases("alice", &Default::default(), 100, 0).await.unwrap().1, 1);
}

#[tokio::test]
async fn segments_below_the_thresholds_are_rejected_and_the_kill_switch_blocks_release() {
    let skills = Skills::new(test_db().await);
    // A two-step segment (score 0.91 but only 20 samples < min_samples 30)
    // and a three-step one (0.99, 30 samples).
    let two = trace(&skills, &[("open x", 0), ("click @e1", 0), ("fill @e2 a", 1), ("click @e3", 0), ("click @e4", 0), ("press Enter", 0)]).await;
    let ex = insert(&skills, Row { payload_ref: Some(two), ..Default::default() }).await;
    let r = run_cycle(&skills, &policy(), now_micros()).await.unwrap();
    assert_eq!((r.processed_executions, r.created_candidates, r.promoted_canary), (1, 2, 1));
    let (candidates, _) = skills.list_candidates("alice", None, None, 100, 0).await.unwrap();
    for c in &candidates {
        assert_eq!((c.skill_key.as_str(), c.scenario_key.as_deref()), ("browser-sandbox-abc", None));
    }
    let mut outcomes: Vec<(&str, Option<&str>, i64)> =
        candidates.iter().map(|c| (c.status.as_str(), c.auto_release_reason.as_deref(), c.auto_release_eligible)).collect();
    outcomes.sort();
    assert_eq!(outcomes, [("promoted_canary", Some("threshold_passed"), 1), ("rejected", Some("threshold_not_met"), 0)]);
    assert_eq!(learning_row(&skills, &ex).await.0.as_deref(), Some("processed"));
    assert_eq!(skills.list_releases("alice", &Default::default(), 100, 0).await.unwrap().1, 1);

    let off = Policy { auto_release: false, ..policy() };
    let three = trace(&skills, &THREE_STEPS).await;
    insert(&skills, Row { payload_ref: Some(three), tags: Some("skill:other"), ..Default::default() }).await;
    let r = run_cycle(&skills, &off, now_micros()).await.unwrap();
    assert_eq!((r.processed_executions, r.created_candidates, r.promoted_canary), (1, 1, 0));
    let (candidates, _) = skills.list_candidates("alice", None, None, 1, 0).await.unwrap();
    assert_eq!((candidates[0].status.as_str(), candidates[0].auto_release_reason.as_deref()), ("evaluating", Some("auto_release_disabled")));
    assert_eq!(candidates[0].skill_key, "other");
    assert_eq!(skills.list_releases("alice", &Default::default(), 100, 0).await.unwrap().1, 1);
}

#[tokio::test]
async fn nothing_actionable_is_skipped_and_a_bad_trace_is_an_error() {
    let skills = Skills::new(test_db().await);
    let read_only = trace(&skills, &[("open x", 0), ("snapshot -i", 0), ("click @e1", 0), ("wait 100", 0), ("click @e2", 1)]).await;
    let skipped = insert(&skills, Row { payload_ref: Some(read_only), ..Default::default() }).await;
    // No trace: the row's code is one step, never a segment.
    let no_trace = insert(&skills, Row { exec_type: "browser", status: None, ..Default::default() }).await;
    let broken = insert(&skills, Row { payload_ref: Some("blob:blob-missing".into()), ..Default::default() }).await;
    let now = now_micros();
    let r = run_cycle(&skills, &policy(), now).await.unwrap();
    assert_eq!((r.processed_executions, r.skipped_executions, r.errored_executions, r.created_candidates), (0, 2, 1, 0));
    for id in [&skipped, &no_trace] {
        assert_eq!(learning_row(&skills, id).await, (Some("skipped".into()), Some("no_actionable_segments".into()), Some(now)));
    }
    let (status, error, at) = learning_row(&skills, &broken).await;
    assert_eq!((status.as_deref(), at), (Some("error"), Some(now)));
    assert!(error.unwrap().starts_with("Artifact blob not found"));
    assert_eq!(run_cycle(&skills, &policy(), now_micros()).await.unwrap(), CycleResult::default(), "errors are not retried");
}

#[tokio::test]
async fn only_waiting_learn_enabled_browser_executions_are_taken_oldest_first() {
    let skills = Skills::new(test_db().await);
    let t = now_micros() - 1_000;
    let mut untouched = Vec::new();
    for row in [
        Row { learn: false, status: Some("skipped"), ..Default::default() },
        Row { exec_type: "python", status: None, ..Default::default() },
        Row { status: Some("processing"), ..Default::default() },
        Row { status: Some("processed"), ..Default::default() },
        Row { status: Some("skipped"), ..Default::default() },
    ] {
        let payload_ref = Some(trace(&skills, &THREE_STEPS).await);
        untouched.push(insert(&skills, Row { payload_ref, ..row }).await);
    }
    let newest = insert(&skills, Row { created_at: t + 2, ..Default::default() }).await;
    let oldest = insert(&skills, Row { created_at: t, ..Default::default() }).await;
    let middle = insert(&skills, Row { exec_type: "browser", status: None, created_at: t + 1, ..Default::default() }).await;

    let small = Policy { config: BrowserLearningConfig { batch_size: 2, ..Default::default() }, auto_release: true };
    let r = run_cycle(&skills, &small, now_micros()).await.unwrap();
    assert_eq!(r.skipped_executions, 2);
    assert_eq!(learning_row(&skills, &oldest).await.0.as_deref(), Some("skipped"));
    assert_eq!(learning_row(&skills, &middle).await.0.as_deref(), Some("skipped"));
    assert_eq!(learning_row(&skills, &newest).await.0.as_deref(), Some("pending"));
    for id in &untouched {
        let (_, error, at) = learning_row(&skills, id).await;
        assert_eq!((error, at), (None, None), "{id}");
    }
    assert_eq!(skills.list_candidates("alice", None, None, 100, 0).await.unwrap().1, 0);

    // Disabled: nothing at all.
    let off = Policy { config: BrowserLearningConfig { enabled: false, ..Default::default() }, auto_release: true };
    assert_eq!(run_cycle(&skills, &off, now_micros()).await.unwrap(), CycleResult::default());
    assert_eq!(learning_row(&skills, &newest).await.0.as_deref(), Some("pending"));
}

/// A manual stable release of `key`, then a learned auto canary on top.
async fn stable_then_canary(skills: &Skills, key: &str) -> (Release, Release) {
    let ex = execution(&skills.db, "alice", true, 5, None, None).await;
    let c = skills.create_candidate("alice", NewCandidate::new(key, vec![ex])).await.unwrap();
    skills.evaluate_candidate("alice", &c.id, NewEvaluation { passed: true, score: Some(1.0), ..Default::default() }).await.unwrap();
    let stable = skills.promote_candidate("alice", &c.id, NewRelease::manual("stable", Some("alice".into()))).await.unwrap();
    let tag = format!("skill:{key}");
    let payload_ref = Some(trace(skills, &THREE_STEPS).await);
    insert(skills, Row { payload_ref, tags: Some(&tag), ..Default::default() }).await;
    run_cycle(skills, &policy(), now_micros()).await.unwrap();
    let canary = skills.active_release("alice", key).await.unwrap().unwrap();
    assert_eq!((canary.stage.as_str(), canary.release_mode.as_str()), ("canary", "auto"));
    assert_eq!(canary.auto_promoted_from.as_deref(), Some(stable.id.as_str()));
    (stable, canary)
}

#[tokio::test]
async fn an_unhealthy_auto_canary_is_rolled_back() {
    let skills = Skills::new(test_db().await);
    let (stable, canary) = stable_then_canary(&skills, "checkout").await;
    let tag = format!("release:{},skill:checkout", canary.id);
    execution(&skills.db, "alice", false, 11, Some(&tag), Some(canary.promoted_at + 10)).await;

    let r = run_cycle(&skills, &policy(), now_micros()).await.unwrap();
    assert_eq!((r.rolled_back, r.promoted_stable), (1, 0));
    assert_eq!(r.audit_events, vec![format!("auto_rollback:{}", canary.id)]);
    let active = skills.active_release("alice", "checkout").await.unwrap().unwrap();
    assert_eq!((active.candidate_id.as_str(), active.stage.as_str(), active.release_mode.as_str()), (stable.candidate_id.as_str(), "stable", "auto"));
    assert_eq!((active.rollback_of.as_deref(), active.promoted_by.as_deref()), (Some(canary.id.as_str()), Some("system:auto")));
    assert_eq!(skills.get_candidate("alice", &canary.candidate_id).await.unwrap().status, "rolled_back");
    // The rollback target is a stable release: nothing left to watch.
    assert_eq!(run_cycle(&skills, &policy(), now_micros()).await.unwrap(), CycleResult::default());
}

#[tokio::test]
async fn a_healthy_auto_canary_becomes_stable_once_its_window_is_over() {
    let skills = Skills::new(test_db().await);
    let (_, canary) = stable_then_canary(&skills, "search").await;
    let tag = format!("release:{}", canary.id);
    for _ in 0..3 {
        execution(&skills.db, "alice", true, 10, Some(&tag), Some(canary.promoted_at + 10)).await;
    }
    let window_end = canary.health_window_end_at.unwrap();
    // Healthy but the window is still open.
    assert_eq!(run_cycle(&skills, &policy(), canary.promoted_at + HOUR).await.unwrap(), CycleResult::default());
    // With auto release off, a finished healthy canary stays a canary.
    let off = Policy { auto_release: false, ..policy() };
    assert_eq!(run_cycle(&skills, &off, window_end + 1).await.unwrap(), CycleResult::default());

    let r = run_cycle(&skills, &policy(), window_end + 1).await.unwrap();
    assert_eq!((r.promoted_stable, r.rolled_back), (1, 0));
    let active = skills.active_release("alice", "search").await.unwrap().unwrap();
    assert_eq!(r.audit_events, vec![format!("auto_promote_stable:{}", active.id)]);
    assert_eq!((active.stage.as_str(), active.release_mode.as_str(), active.candidate_id.as_str()), ("stable", "auto", canary.candidate_id.as_str()));
    assert_eq!((active.auto_promoted_from.as_deref(), active.promoted_by.as_deref()), (Some(canary.id.as_str()), Some("system:auto")));
    assert_eq!(skills.get_candidate("alice", &canary.candidate_id).await.unwrap().status, "promoted_stable");
    assert_eq!(skills.get_release("alice", &canary.id).await.unwrap().is_active, 0);
    assert_eq!(run_cycle(&skills, &policy(), window_end + 2).await.unwrap(), CycleResult::default());
}

#[tokio::test]
async fn a_canary_without_a_previous_release_is_left_alone_when_rollback_is_impossible() {
    let skills = Skills::new(test_db().await);
    let payload_ref = Some(trace(&skills, &THREE_STEPS).await);
    insert(&skills, Row { payload_ref, tags: Some("skill:solo"), ..Default::default() }).await;
    run_cycle(&skills, &policy(), now_micros()).await.unwrap();
    let canary = skills.active_release("alice", "solo").await.unwrap().unwrap();
    let tag = format!("release:{}", canary.id);
    execution(&skills.db, "alice", false, 10, Some(&tag), Some(canary.promoted_at + 10)).await;
    // should_rollback, but there is nothing to roll back to (409): logged, not fatal.
    assert_eq!(run_cycle(&skills, &policy(), now_micros()).await.unwrap(), CycleResult::default());
    assert_eq!(skills.active_release("alice", "solo").await.unwrap().unwrap().id, canary.id);
}
