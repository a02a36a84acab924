//! Lifecycle you can trust: dead runtimes are replaced, and a Bay killed at
//! any moment restarts with no orphan and no stuck sandbox.

use std::process::Command;
use std::time::Duration;

use bay_tests::{BayProcess, engine, free_port, strict};
use rand::Rng;
use serde_json::json;

#[tokio::test]
async fn a_killed_runtime_is_replaced_on_the_next_call() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    c.shell(&id, "echo survives > f.txt").await;
    c.python(&id, "x = 1", 30).await;
    let first = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(first.len(), 1);
    bay_tests::engine::cli().args(["kill", &first[0]]).output().unwrap();

    // The next call succeeds on a new runtime; files are kept, memory is not.
    let r = c.python(&id, "print('x' in globals())", 60).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["output"], "False");
    assert_eq!(c.shell(&id, "cat f.txt").await["output"], "survives");
    let second: Vec<String> = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);

    // Killed right before a call, without giving Bay time to see the event.
    bay_tests::engine::cli().args(["kill", &second[0]]).output().unwrap();
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), json!({"command": "cat f.txt"})).await;
    assert!(status == 200 || status == 503, "{status} {r}");
    if status == 503 {
        assert_eq!(r["error"]["code"], "session_not_ready");
        assert!(r["error"]["details"]["retry_after_ms"].is_u64());
    }
    assert_eq!(c.shell(&id, "cat f.txt").await["output"], "survives");
    c.delete_sandbox(&id).await;
}

fn engine_objects(instance: &str) -> (Vec<String>, Vec<String>) {
    let list = |args: &[&str]| -> Vec<String> {
        let out = bay_tests::engine::cli().args(args).args(["--filter", &format!("label=bay.instance_id={instance}")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    };
    (list(&["ps", "-aq"]), list(&["volume", "ls", "-q"]))
}

/// 20 rounds of `kill -9` during creates, execs and deletes, each followed by
/// a restart: afterwards the API and the engine agree exactly.
#[tokio::test]
async fn kill_dash_nine_during_work_leaves_no_orphans_and_nothing_stuck() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-crash-").tempdir().unwrap();
    let instance = "bay-e2e-crash";
    let port = free_port();
    for round in 0..20 {
        let mut bay = BayProcess::start(dir.path(), instance, port);
        bay.wait_ready().await;
        let c = bay.client();
        // Some work in flight: creates, execs and a delete.
        let work = async {
            let mut ids = Vec::new();
            for _ in 0..3 {
                let (status, s) = c.post("/v1/sandboxes", json!({})).await;
                if status == 201 {
                    ids.push(s["id"].as_str().unwrap().to_owned());
                }
            }
            let execs = ids.iter().map(|id| {
                let (c, path) = (&c, format!("/v1/sandboxes/{id}/python/exec"));
                async move { c.post(&path, json!({"code": "sum(range(10))"})).await }
            });
            futures::future::join_all(execs).await;
            if let Some(id) = ids.first() {
                c.json(reqwest::Method::DELETE, &format!("/v1/sandboxes/{id}"), None).await;
            }
        };
        let delay = Duration::from_millis(rand::rng().random_range(50..1500));
        tokio::select! {
            _ = work => {},
            _ = tokio::time::sleep(delay) => {},
        }
        bay.kill();
        eprintln!("round {round}: killed after {delay:?}");
    }

    let bay = BayProcess::start(dir.path(), instance, port);
    bay.wait_ready().await;
    let c = bay.client();
    let (_, list) = c.get("/v1/sandboxes?limit=200").await;
    let sandboxes = list["items"].as_array().unwrap().clone();
    assert!(!sandboxes.is_empty(), "some creates completed");
    for s in &sandboxes {
        let status = s["status"].as_str().unwrap();
        assert!(status == "idle" || status == "ready", "stuck sandbox {s}");
    }
    // Every container belongs to a listed sandbox; every volume to its cargo.
    let (containers, volumes) = engine_objects(instance);
    let ids: Vec<&str> = sandboxes.iter().map(|s| s["id"].as_str().unwrap()).collect();
    for cid in &containers {
        let owner = engine::inspect(cid, "{{index .Config.Labels \"bay.sandbox_id\"}}");
        assert!(ids.contains(&owner.as_str()), "orphan container {cid} of {owner}");
    }
    let cargos: Vec<String> = sandboxes.iter().map(|s| format!("bay-cargo-{}", s["cargo_id"].as_str().unwrap())).collect();
    for v in &volumes {
        assert!(cargos.contains(v), "orphan volume {v}");
    }
    // Every sandbox still works, then deleting them all leaves nothing.
    for id in &ids {
        let r = c.python(id, "print(6 * 7)", 60).await;
        assert_eq!(r["output"], "42", "{id}: {r}");
        c.delete_sandbox(id).await;
    }
    let (containers, volumes) = engine_objects(instance);
    assert!(containers.is_empty(), "{containers:?}");
    assert!(volumes.is_empty(), "{volumes:?}");
}

/// Idle GC running while a call is in progress on the same sandbox keeps the
/// session (and the data); once the call is over, the next cycle reclaims it.
#[tokio::test]
async fn idle_gc_never_reclaims_a_session_mid_call() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "quick-idle"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    c.python(&id, "data = list(range(5))", 30).await;
    let long = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "import time; time.sleep(4); print(sum(data))"}));
    let gc = async {
        // The 2 s idle deadline passes while the call runs.
        tokio::time::sleep(Duration::from_millis(2800)).await;
        c.post("/v1/admin/gc/run", json!({"tasks": ["idle_session"]})).await
    };
    let ((status, r), (_, gc)) = tokio::join!(long, gc);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"], "10", "the call completed on its session");
    assert_eq!(gc["results"][0]["skipped_count"], 1, "{gc}");
    let r = c.python(&id, "print(len(data))", 30).await;
    assert_eq!(r["output"], "5", "the session survived");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, gc) = c.post("/v1/admin/gc/run", json!({"tasks": ["idle_session"]})).await;
    assert!(gc["results"][0]["cleaned_count"].as_u64().unwrap() >= 1, "{gc}");
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    c.delete_sandbox(&id).await;
}

/// 50 concurrent creates all succeed, each with its own cargo.
#[tokio::test]
async fn fifty_concurrent_creates_succeed() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-creates-").tempdir().unwrap();
    let bay = BayProcess::start_with(dir.path(), "bay-e2e-creates", free_port(), "sessions: {warmup_on_create: false}\n");
    bay.wait_ready().await;
    let c = bay.client();
    let creates = (0..50).map(|_| {
        let c = &c;
        async move { c.post("/v1/sandboxes", json!({})).await }
    });
    let results = futures::future::join_all(creates).await;
    let ids: Vec<String> = results
        .iter()
        .map(|(status, s)| {
            assert_eq!(*status, 201, "{s}");
            s["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 50);
    let (_, list) = c.get("/v1/sandboxes?limit=200").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 50);
    let deletes = ids.iter().map(|id| c.json(reqwest::Method::DELETE, &format!("/v1/sandboxes/{id}"), None));
    for (status, r) in futures::future::join_all(deletes).await {
        assert_eq!(status, 204, "{r}");
    }
    let (containers, volumes) = engine_objects("bay-e2e-creates");
    assert!(containers.is_empty() && volumes.is_empty(), "{containers:?} {volumes:?}");
}

/// SIGTERM (host/src/api/serve.rs): Bay stops taking connections, lets the
/// call in flight finish and answer (within `server.shutdown_grace_s`, 30 s
/// by default), then exits successfully on its own.
#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_then_exits_cleanly() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-drain-").tempdir().unwrap();
    let instance = "bay-e2e-drain";
    let mut bay = BayProcess::start(dir.path(), instance, free_port());
    bay.wait_ready().await;
    let c = bay.client();
    let id = c.create_sandbox().await;
    c.python(&id, "1 + 1", 60).await;
    let call = tokio::spawn({
        let (c, id) = (c.clone(), id.clone());
        async move {
            c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "import time; time.sleep(3); print('finished')", "timeout": 30})).await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = bay.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    let (status, r) = call.await.unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"].as_str().map(str::trim), Some("finished"), "{r}");
    let mut exit = None;
    for _ in 0..300 {
        if let Some(s) = bay.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = exit.expect("Bay exited after the call in flight finished");
    assert!(exit.success(), "{exit:?}");
    assert!(reqwest::get(format!("{}/health", bay.base)).await.is_err(), "nothing listens any more");
    bay_tests::remove_instance(instance);
}
