//! Several Bay replicas on one PostgreSQL database and the real Docker
//! engine (runs in `./dev test`'s PostgreSQL pass; needs `BAY_TEST_POSTGRES`).
//! Requests for one sandbox go through different replicas; one replica is
//! killed mid-flight; nothing is lost or duplicated and GC keeps running.

use std::time::{Duration, Instant};

use bay_tests::{BayProcess, Client, database_url, engine, free_port, on_postgres};
use futures::future::join_all;
use serde_json::{Value, json};

const INSTANCE: &str = "bay-e2e-replicas";

fn start_replica(cluster_dir: &std::path::Path, name: &str, db: &str) -> BayProcess {
    let dir = cluster_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    // All replicas share the database and the instance id (the labels on
    // containers), as the deploy manifests configure them.
    let yaml = BayProcess::base_config(&dir, INSTANCE, port)
        .lines()
        .map(|l| {
            if l.starts_with("database:") {
                format!("database: {{url: \"{db}\"}}")
            } else if l.starts_with("gc:") {
                format!("gc: {{instance_id: {INSTANCE}, run_on_startup: true, interval_seconds: 1}}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\nprofiles:\n  - { id: python-default, image: \"ship:latest\" }\n  - { id: quick-idle, image: \"ship:latest\", idle_timeout: 2 }\n";
    BayProcess::spawn(&dir, port, &yaml)
}

async fn leaders(clients: &[Client]) -> Vec<bool> {
    let mut out = Vec::new();
    for c in clients {
        let (_, s) = c.get("/v1/admin/gc/status").await;
        out.push(s["leader"] == true);
    }
    out
}

async fn create(c: &Client, body: Value) -> Option<String> {
    let resp = c.req(reqwest::Method::POST, "/v1/sandboxes").json(&body).send().await.ok()?;
    if resp.status() != 201 {
        return None;
    }
    resp.json::<Value>().await.ok()?["id"].as_str().map(String::from)
}

#[tokio::test]
async fn replicas_share_one_postgres_and_survive_losing_one() {
    if !on_postgres() {
        eprintln!("skipped: needs PostgreSQL (BAY_TEST_POSTGRES); `./dev test` runs it in its PostgreSQL pass");
        return;
    }
    bay_tests::remove_instance(INSTANCE);
    let cluster = tempfile::Builder::new().prefix("bay-e2e-replicas-").tempdir().unwrap();
    let db = database_url(cluster.path());
    let mut replicas = vec![start_replica(cluster.path(), "a", &db)];
    replicas[0].wait_ready().await;
    replicas.push(start_replica(cluster.path(), "b", &db));
    replicas.push(start_replica(cluster.path(), "c", &db));
    for r in &replicas[1..] {
        r.wait_ready().await;
    }
    let clients: Vec<Client> = replicas.iter().map(|r| r.client()).collect();
    assert_eq!(leaders(&clients).await.iter().filter(|l| **l).count(), 1, "exactly one leader");

    // Create through one replica, run through the others: Python state lives
    // in the one session all replicas share.
    let ids: Vec<String> = join_all((0..9).map(|i| {
        let c = clients[i % 3].clone();
        async move { create(&c, json!({})).await.expect("create") }
    }))
    .await;
    join_all(ids.iter().enumerate().map(|(i, id)| {
        let (c1, c2) = (clients[(i + 1) % 3].clone(), clients[(i + 2) % 3].clone());
        async move {
            assert_eq!(c1.python(id, &format!("x = {i}"), 60).await["success"], true);
            assert_eq!(c2.python(id, "print(x * 10)", 60).await["output"], format!("{}", i * 10));
        }
    }))
    .await;
    for id in &ids {
        assert_eq!(engine::containers_with("bay.sandbox_id", id).len(), 1, "one container for {id}");
    }

    // Concurrent first calls through all replicas start one container.
    let fresh = create(&clients[0], json!({})).await.unwrap();
    let outs = join_all(clients.iter().map(|c| {
        let (c, id) = (c.clone(), fresh.clone());
        async move { c.shell(&id, "hostname").await["output"].as_str().unwrap_or_default().trim().to_owned() }
    }))
    .await;
    assert!(outs.iter().all(|o| !o.is_empty() && *o == outs[0]), "all calls hit one container: {outs:?}");
    assert_eq!(engine::containers_with("bay.sandbox_id", &fresh).len(), 1);

    // One Idempotency-Key through all replicas at once: one sandbox.
    let key = format!("replicas-{}", free_port());
    let same: Vec<Option<String>> = join_all((0..9).map(|i| {
        let c = clients[i % 3].clone();
        let key = key.clone();
        async move {
            let resp = c.req(reqwest::Method::POST, "/v1/sandboxes").header("Idempotency-Key", key).json(&json!({})).send().await.ok()?;
            resp.json::<Value>().await.ok()?["id"].as_str().map(String::from)
        }
    }))
    .await;
    let first = same[0].clone().expect("idempotent create");
    assert!(same.iter().all(|s| s.as_deref() == Some(first.as_str())), "{same:?}");

    // Kill the leader with work in flight through every replica.
    let leader = leaders(&clients).await.iter().position(|l| *l).unwrap();
    let survivors: Vec<Client> = (0..3).filter(|i| *i != leader).map(|i| clients[i].clone()).collect();
    let in_flight = join_all((0..12).map(|i| {
        let c = clients[i % 3].clone();
        async move {
            let id = create(&c, json!({})).await?;
            // This replica may die under the call: its answer may never come.
            let _ = c.req(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/python/exec")).json(&json!({"code": "1+1"})).send().await;
            Some(id)
        }
    }));
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        replicas[leader].kill();
    };
    let (made, ()) = tokio::join!(in_flight, killer);
    let made: Vec<String> = made.into_iter().flatten().collect();

    // Every sandbox whose create answered 201 works through the survivors,
    // and is listed exactly once.
    for (i, id) in made.iter().chain(&ids).enumerate() {
        let c = &survivors[i % 2];
        let r = c.python(id, "print('alive')", 90).await;
        assert_eq!(r["output"], "alive", "{id}: {r}");
    }
    let (_, listed) = survivors[0].get("/v1/sandboxes?limit=200").await;
    let listed: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in made.iter().chain(&ids) {
        assert_eq!(listed.iter().filter(|l| **l == id.as_str()).count(), 1, "{id} listed once");
    }

    // Another replica takes over the background work, and GC keeps running:
    // an idle session is reclaimed without any call.
    let deadline = Instant::now() + Duration::from_secs(60);
    while leaders(&survivors).await.iter().filter(|l| **l).count() != 1 {
        assert!(Instant::now() < deadline, "no replica took over leadership");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle = create(&survivors[0], json!({"profile": "quick-idle"})).await.unwrap();
    survivors[1].python(&idle, "1", 60).await;
    assert_eq!(engine::containers_with("bay.sandbox_id", &idle).len(), 1);
    while !engine::containers_with("bay.sandbox_id", &idle).is_empty() {
        assert!(Instant::now() < deadline + Duration::from_secs(30), "idle GC did not run after the leader died");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Delete everything through the survivors: nothing is left on the engine.
    let all: Vec<String> = made.iter().chain(&ids).cloned().chain([fresh, first, idle]).collect();
    for (i, id) in all.iter().enumerate() {
        survivors[i % 2].delete_sandbox(id).await;
    }
    let left = bay_tests::engine::cli().args(["ps", "-aq", "--filter", &format!("label=bay.instance_id={INSTANCE}")]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout).lines().count();
    // Creates that the killed replica never answered may have left a sandbox
    // (committed, never reported): listed, so the survivors' GC owns it.
    let (_, rest) = survivors[0].get("/v1/sandboxes?limit=200").await;
    let rest = rest["items"].as_array().unwrap().len();
    assert!(left <= rest, "{left} containers left for {rest} sandboxes nobody was told about");
    drop(replicas);
    bay_tests::remove_instance(INSTANCE);
}
