//! The lifecycle core on the in-memory engine (`super::testing`): starting,
//! caching and adopting sessions, recovery from dead runtimes, startup
//! reconcile, the four GC tasks, the warm pool, and the per-sandbox lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::testing::{Harness, config, config_with};
use crate::driver::{DriverError, Labels, labels};
use crate::ids::now_micros;

fn launches(h: &Harness) -> usize {
    h.driver.launches.load(Ordering::SeqCst)
}

async fn current_session(h: &Harness, id: &str) -> Option<String> {
    h.manager.db().sandbox(id).await.unwrap().and_then(|s| s.current_session_id)
}

#[tokio::test]
async fn the_first_call_starts_a_session_and_later_calls_reuse_it() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    assert_eq!(launches(&h), 0, "create starts nothing (no warmup configured)");
    let out = h.python(&id, "1+1").await.unwrap();
    let session = current_session(&h, &id).await.expect("a session");
    assert!(out.starts_with(&format!("mem://{session}/")), "{out}");
    h.python(&id, "2").await.unwrap();
    assert_eq!(launches(&h), 1);
    // The runtime got the session's secret with every call.
    let token = h.manager.db().session(&session).await.unwrap().unwrap().runtime_token.expect("a secret");
    assert_eq!(token.len(), 64);
    assert_eq!(h.runtimes.token_seen(&format!("mem://{session}")), Some(token));
}

#[tokio::test]
async fn concurrent_first_calls_start_one_session() {
    let h = Arc::new(Harness::new(config("")).await);
    let id = h.create("o").await;
    let calls = (0..20).map(|i| {
        let (h, id) = (h.clone(), id.clone());
        tokio::spawn(async move { h.python(&id, &i.to_string()).await })
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(launches(&h), 1);
    assert_eq!(h.driver.session_ids().len(), 1);
}

#[tokio::test]
async fn a_restarted_bay_adopts_the_running_session() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    h.python(&id, "x = 1").await.unwrap();
    let session = current_session(&h, &id).await.unwrap();
    let restarted = h.restart();
    restarted.manager.reconcile().await.unwrap();
    restarted.python(&id, "x").await.unwrap();
    assert_eq!(launches(&h), 1, "adopted, not restarted");
    assert_eq!(current_session(&restarted, &id).await.as_deref(), Some(session.as_str()));
}

#[tokio::test]
async fn a_runtime_dead_before_the_call_is_replaced_and_the_call_retried() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    h.python(&id, "1").await.unwrap();
    let first = current_session(&h, &id).await.unwrap();
    h.driver.kill(&first);
    h.runtimes.refuse(&format!("mem://{first}"));
    let out = h.python(&id, "2").await.unwrap();
    let second = current_session(&h, &id).await.unwrap();
    assert_ne!(first, second);
    assert!(out.starts_with(&format!("mem://{second}")), "the retry ran on the new session: {out}");
    assert_eq!(launches(&h), 2);
    assert!(!h.driver.session_ids().contains(&first), "the dead session was removed");
}

#[tokio::test]
async fn a_runtime_that_dies_during_the_call_is_reported_not_retried() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    h.python(&id, "1").await.unwrap();
    let session = current_session(&h, &id).await.unwrap();
    // The connection is lost mid-call and the container is found dead after
    // the call started: the call may have run, so it is not repeated.
    h.runtimes.reset(&format!("mem://{session}"));
    let held = h.runtimes.hold_calls();
    let call = {
        let h2 = h.restart();
        let id = id.clone();
        tokio::spawn(async move { h2.python(&id, "2").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    h.driver.kill(&session);
    held.add_permits(1);
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err:?}");
    assert_eq!(err.details["retry_after_ms"], 1000);
}

#[tokio::test]
async fn a_failed_launch_leaves_nothing_and_the_next_call_starts_afresh() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    h.driver.fail_next_launch(DriverError::ImageMissing("ship:latest".into()));
    let err = h.python(&id, "1").await.unwrap_err();
    assert!(err.message.contains("ship:latest"), "{}", err.message);
    assert!(h.driver.session_ids().is_empty());
    assert_eq!(current_session(&h, &id).await, None);
    h.python(&id, "1").await.unwrap();
    assert_eq!(h.driver.session_ids().len(), 1);
}

#[tokio::test]
async fn a_runtime_not_ready_in_time_fails_the_start() {
    let h = Harness::new(config("  - { id: slow, image: \"ship:latest\", startup: { ready_timeout_seconds: 1 } }\n")).await;
    let req = super::CreateSandbox { profile: "slow".into(), cargo_id: None, ttl: None };
    let id = h.manager.create("o", req).await.unwrap().id;
    h.runtimes.starting_for(usize::MAX);
    let err = h.python(&id, "1").await.unwrap_err();
    assert_eq!(err.status().as_u16(), 503, "{err:?}");
    assert!(h.driver.session_ids().is_empty(), "the half-started session was destroyed");
}

#[tokio::test]
async fn reconcile_resets_lost_sessions_and_removes_orphans() {
    let h = Harness::new(config("")).await;
    let kept = h.create("o").await;
    let lost = h.create("o").await;
    h.python(&kept, "1").await.unwrap();
    h.python(&lost, "1").await.unwrap();
    let lost_session = current_session(&h, &lost).await.unwrap();
    h.driver.kill(&lost_session);
    // Something of this instance Bay's database does not know.
    let mut l = Labels::new();
    l.insert(labels::MANAGED.into(), "true".into());
    l.insert(labels::INSTANCE_ID.into(), "unit".into());
    l.insert(labels::SESSION_ID.into(), "sess-orphan".into());
    h.driver.plant("sess-orphan", l);

    let restarted = h.restart();
    let report = restarted.manager.reconcile().await.unwrap();
    assert_eq!((report.sessions_kept, report.sessions_reset, report.orphan_sessions_removed), (1, 1, 1), "{report:?}");
    assert_eq!(current_session(&restarted, &lost).await, None, "back to idle");
    assert!(!h.driver.session_ids().contains(&"sess-orphan".to_owned()));
    // The lost sandbox starts again on its next call.
    restarted.python(&lost, "1").await.unwrap();
}

#[tokio::test]
async fn gc_stops_idle_sessions_but_not_one_in_use() {
    let h = Harness::new(config_with("gc: { instance_id: unit, orphan_container: { enabled: true } }", "")).await;
    let idle = h.create("o").await;
    let busy = h.create("o").await;
    h.python(&idle, "1").await.unwrap();
    h.python(&busy, "1").await.unwrap();
    let past = now_micros() - 1_000_000;
    for id in [&idle, &busy] {
        h.manager.db().touch_sandbox(id, past, Some(past)).await.unwrap();
    }
    // A call in progress on `busy`.
    let held = h.runtimes.hold_calls();
    let call = {
        let m = h.manager.clone();
        let busy = busy.clone();
        tokio::spawn(async move {
            let sandbox = m.find_for_call("o", &busy).await.unwrap();
            let profile = m.profile_of(&sandbox).unwrap().clone();
            m.call(&sandbox, &profile, crate::adapter::CapabilityCall::PythonExec { code: "long".into(), timeout_s: 30 }).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // The call pushed `busy`'s deadline out when it started; push it back.
    h.manager.db().touch_sandbox(&busy, past, Some(past)).await.unwrap();
    let gc = crate::gc::Gc::new(h.config.gc.clone(), h.manager.clone());
    let run = gc.run_once().await.unwrap();
    let idle_task = run.results.iter().find(|r| r.task_name == "idle_session").unwrap();
    assert_eq!((idle_task.cleaned_count, idle_task.skipped_count), (1, 1), "{idle_task:?}");
    assert_eq!(current_session(&h, &idle).await, None);
    assert!(current_session(&h, &busy).await.is_some());
    held.add_permits(1);
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn gc_deletes_expired_sandboxes_with_their_cargo_and_removes_orphans() {
    let h = Harness::new(config_with("gc: { instance_id: unit, orphan_container: { enabled: true } }", "")).await;
    let expired = h.create("o").await;
    let alive = h.create("o").await;
    h.python(&expired, "1").await.unwrap();
    let cargo = h.manager.db().sandbox(&expired).await.unwrap().unwrap().cargo_id;
    h.manager.db().set_sandbox_expiry(&expired, Some(now_micros() - 1)).await.unwrap();
    // An orphan on the engine, and a managed cargo whose sandbox is gone.
    let mut l = Labels::new();
    for (k, v) in [
        (labels::MANAGED, "true"),
        (labels::INSTANCE_ID, "unit"),
        (labels::SESSION_ID, "sess-gone"),
        (labels::SANDBOX_ID, "sandbox-gone"),
        (labels::CARGO_ID, "ws-gone"),
    ] {
        l.insert(k.into(), v.into());
    }
    h.driver.plant("sess-gone", l);
    let orphan_cargo = h.manager.new_cargo("o", Some("sandbox-never-stored"), 10).await.unwrap();
    {
        let mut tx = h.manager.db().begin().await.unwrap();
        h.manager.db().insert_cargo(&mut *tx, &orphan_cargo).await.unwrap();
        tx.commit().await.unwrap();
    }

    let gc = crate::gc::Gc::new(h.config.gc.clone(), h.manager.clone());
    let run = gc.run_once().await.unwrap();
    let cleaned = |task: &str| run.results.iter().find(|r| r.task_name == task).unwrap().cleaned_count;
    assert_eq!(cleaned("expired_sandbox"), 1);
    assert_eq!(cleaned("orphan_container"), 1);
    assert!(cleaned("orphan_cargo") >= 1);
    assert!(h.manager.db().sandbox(&expired).await.unwrap().is_none());
    assert!(h.manager.db().cargo(&cargo).await.unwrap().is_none(), "the managed cargo went with it");
    let volumes = h.driver.volume_names();
    assert!(!volumes.iter().any(|v| v.ends_with(&cargo) || v.ends_with(&orphan_cargo.id)), "{volumes:?}");
    assert!(!h.driver.session_ids().contains(&"sess-gone".to_owned()));
    // The live sandbox is untouched.
    h.python(&alive, "1").await.unwrap();
}

#[tokio::test]
async fn the_warm_pool_fills_hands_out_a_running_sandbox_and_refills() {
    let h = Harness::new(config("  - { id: warm, image: \"ship:latest\", warm_pool_size: 2 }\n")).await;
    h.manager.maintain_warm_pool().await.unwrap();
    let warm: Vec<String> = h.manager.db().warm_sandboxes("warm").await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(warm.len(), 2);
    for id in &warm {
        h.manager.warm_up(id).await;
    }
    assert_eq!(launches(&h), 2);
    let req = super::CreateSandbox { profile: "warm".into(), cargo_id: None, ttl: Some(60) };
    let view = h.manager.create("alice", req).await.unwrap();
    assert!(warm.contains(&view.id), "a warm sandbox was claimed");
    assert!(view.expires_at.is_some(), "the TTL is bound at claim time");
    // Its session was already running: the first call starts nothing.
    let sandbox = h.manager.find_for_call("alice", &view.id).await.unwrap();
    let profile = h.manager.profile_of(&sandbox).unwrap().clone();
    h.manager.call(&sandbox, &profile, crate::adapter::CapabilityCall::PythonExec { code: "1".into(), timeout_s: 30 }).await.unwrap();
    assert_eq!(launches(&h), 2);
    // The claimed sandbox is alice's now (and no one else's).
    assert!(h.manager.find("o", &view.id).await.is_err());
    // The pool refills.
    h.manager.maintain_warm_pool().await.unwrap();
    assert_eq!(h.manager.db().warm_sandboxes("warm").await.unwrap().len(), 2);
}

#[tokio::test]
async fn stop_and_calls_on_one_sandbox_never_leave_two_sessions() {
    let h = Arc::new(Harness::new(config("")).await);
    let id = h.create("o").await;
    let work = (0..30).map(|i| {
        let (h, id) = (h.clone(), id.clone());
        tokio::spawn(async move { if i % 3 == 0 { h.manager.stop("o", &id).await.map(|_| String::new()) } else { h.python(&id, "1").await } })
    });
    for r in futures::future::join_all(work).await {
        r.unwrap().unwrap();
    }
    // Whatever the interleaving: at most the current session is on the engine.
    let current = current_session(&h, &id).await;
    let on_engine = h.driver.session_ids();
    assert!(on_engine.len() <= 1, "{on_engine:?}");
    assert_eq!(on_engine.first(), current.as_ref());
}

#[tokio::test]
async fn sessions_start_lazily_unless_the_profile_asks_for_a_start_on_create() {
    let yaml = "gc: { instance_id: unit }\nprofiles:\n  - { id: lazy, image: \"ship:latest\" }\n  - { id: eager, image: \"ship:latest\", start_on_create: true }\n";
    let config = crate::config::Config::from_yaml_and_env(yaml, &[]).unwrap().0;
    let h = Harness::new(config).await;
    h.manager.spawn_warmup_workers();
    let lazy = h.manager.create("o", super::CreateSandbox { profile: "lazy".into(), cargo_id: None, ttl: None }).await.unwrap();
    assert_eq!(lazy.status, super::SandboxStatus::Idle);
    let eager = h.manager.create("o", super::CreateSandbox { profile: "eager".into(), cargo_id: None, ttl: None }).await.unwrap();
    for _ in 0..200 {
        if current_session(&h, &eager.id).await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(launches(&h), 1, "only the eager profile's sandbox started");
    assert_eq!(h.manager.get("o", &lazy.id).await.unwrap().status, super::SandboxStatus::Idle);
    assert_eq!(h.manager.get("o", &eager.id).await.unwrap().status, super::SandboxStatus::Ready);
}

#[tokio::test]
async fn a_stop_right_after_create_is_not_undone_by_the_creates_warmup() {
    let yaml = "gc: { instance_id: unit }\nprofiles:\n  - { id: eager, image: \"ship:latest\", start_on_create: true }\n";
    let config = crate::config::Config::from_yaml_and_env(yaml, &[]).unwrap().0;
    let h = Harness::new(config).await;
    // Queued, not yet taken by a worker (none runs yet): the stop drops it.
    let queued = h.manager.create("o", super::CreateSandbox { profile: "eager".into(), cargo_id: None, ttl: None }).await.unwrap();
    h.manager.stop("o", &queued.id).await.unwrap();
    // Taken by a worker that waits for the sandbox's lock while the stop holds it.
    let taken = h.manager.create("o", super::CreateSandbox { profile: "eager".into(), cargo_id: None, ttl: None }).await.unwrap();
    let lock = h.manager.locks.lock(&taken.id).await;
    h.manager.spawn_warmup_workers();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h.manager.warmup.cancel(&taken.id);
    drop(lock);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(launches(&h), 0, "neither warmup started a session after its stop");
    assert_eq!(h.manager.get("o", &queued.id).await.unwrap().status, super::SandboxStatus::Idle);
    assert_eq!(h.manager.get("o", &taken.id).await.unwrap().status, super::SandboxStatus::Idle);
    // A later create still warms up.
    let later = h.manager.create("o", super::CreateSandbox { profile: "eager".into(), cargo_id: None, ttl: None }).await.unwrap();
    for _ in 0..200 {
        if current_session(&h, &later.id).await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(launches(&h), 1);
}

#[tokio::test]
async fn readiness_names_a_runtime_type_no_adapter_serves() {
    let h = Harness::new(config("")).await;
    let r = h.manager.readiness().await;
    assert!(r.ready(), "{:?}", r.checks);
    let h = Harness::new(config("  - { id: odd, image: x, runtime_type: nosuch, runtime_port: 9000 }\n")).await;
    let r = h.manager.readiness().await;
    assert!(!r.ready());
    assert_eq!(r.checks["database"], "ok");
    assert_eq!(r.checks["engine"], "ok");
    assert_eq!(r.reasons(), ["adapters: no adapter plugin serves nosuch (profile odd)"]);
}

#[tokio::test]
async fn a_paused_session_keeps_its_session_and_the_next_call_resumes_it() {
    let h = Harness::new(config("")).await;
    let id = h.create("o").await;
    // Nothing to pause before a session runs: a conflict.
    let err = h.manager.pause("o", &id).await.unwrap_err();
    assert_eq!(err.code, crate::error::ErrorCode::Conflict);
    h.python(&id, "x = 41").await.unwrap();
    let session = current_session(&h, &id).await.unwrap();
    let view = h.manager.pause("o", &id).await.unwrap();
    assert_eq!(view.status, super::SandboxStatus::Paused);
    assert_eq!(h.manager.pause("o", &id).await.unwrap().status, super::SandboxStatus::Paused, "idempotent");
    let listed = h.manager.list("o", 10, None, Some(super::SandboxStatus::Paused)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    // The next call resumes the same session: no new launch.
    h.python(&id, "x + 1").await.unwrap();
    assert_eq!(current_session(&h, &id).await.as_deref(), Some(session.as_str()));
    assert_eq!(launches(&h), 1);
    assert_eq!(h.manager.get("o", &id).await.unwrap().status, super::SandboxStatus::Ready);
    // Explicit resume of a running sandbox changes nothing; another owner's is 404.
    assert_eq!(h.manager.resume("o", &id).await.unwrap().status, super::SandboxStatus::Ready);
    assert_eq!(h.manager.pause("other", &id).await.unwrap_err().code, crate::error::ErrorCode::NotFound);
    // A paused session survives a restart of Bay and resumes there.
    h.manager.pause("o", &id).await.unwrap();
    let restarted = h.restart();
    let report = restarted.manager.reconcile().await.unwrap();
    assert_eq!(report.sessions_kept, 1, "{report:?}");
    assert_eq!(restarted.manager.resume("o", &id).await.unwrap().status, super::SandboxStatus::Ready);
    restarted.python(&id, "x").await.unwrap();
    assert_eq!(launches(&h), 1);
}

#[tokio::test]
async fn idle_action_pause_pauses_then_stops_after_paused_timeout() {
    let yaml = "gc: { instance_id: unit }\nprofiles:\n  - { id: p, image: \"ship:latest\", idle_action: pause, paused_timeout: 60 }\n";
    let config = crate::config::Config::from_yaml_and_env(yaml, &[]).unwrap().0;
    let h = Harness::new(config).await;
    let id = h.manager.create("o", super::CreateSandbox { profile: "p".into(), cargo_id: None, ttl: None }).await.unwrap().id;
    h.python(&id, "1").await.unwrap();
    let past = now_micros() - 1_000_000;
    h.manager.db().touch_sandbox(&id, past, Some(past)).await.unwrap();
    let gc = crate::gc::Gc::new(h.config.gc.clone(), h.manager.clone());
    gc.run_once().await.unwrap();
    let view = h.manager.get("o", &id).await.unwrap();
    assert_eq!(view.status, super::SandboxStatus::Paused);
    // Its deadline is now when it is stopped: paused_timeout from now.
    let sandbox = h.manager.db().sandbox(&id).await.unwrap().unwrap();
    let left = sandbox.idle_expires_at.unwrap() - now_micros();
    assert!((50_000_000..=60_000_000).contains(&left), "{left}");
    // keepalive keeps it paused that long again (not `idle_timeout`, 1800 s).
    h.manager.keepalive("o", &id).await.unwrap();
    let left = h.manager.db().sandbox(&id).await.unwrap().unwrap().idle_expires_at.unwrap() - now_micros();
    assert!((50_000_000..=60_000_000).contains(&left), "{left}");
    // Past it, the next GC stops the paused session.
    h.manager.db().set_idle_deadline(&id, Some(past)).await.unwrap();
    gc.run_once().await.unwrap();
    assert_eq!(current_session(&h, &id).await, None);
    assert!(h.driver.session_ids().is_empty());
    assert_eq!(h.manager.get("o", &id).await.unwrap().status, super::SandboxStatus::Idle);
}

#[tokio::test]
async fn a_bad_paused_timeout_is_refused_at_load_naming_the_key() {
    for bad in ["paused_timeout: 0", "idle_action: freeze"] {
        let yaml = format!("profiles:\n  - {{ id: p, image: x, {bad} }}\n");
        let err = crate::config::Config::from_yaml_and_env(&yaml, &[]).and_then(|(c, _)| c.validate()).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(bad.split(':').next().unwrap()), "{bad}: {text}");
    }
}
