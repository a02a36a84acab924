//! The warm pool (Shipyard Neo's contract, docs/compatibility.md): creates claim a running sandbox. Runs its
//! own Bay (warm sandboxes are not visible to tests and outlive a test process).

use std::time::{Duration, Instant};

use bay_tests::{BayProcess, engine, free_port};
use serde_json::json;

const INSTANCE: &str = "bay-e2e-warm";

/// Warm-pool containers whose runtime is ready (Ship's kernel has started,
/// which is when Bay marks a warm sandbox available), except those of
/// `claimed` sandboxes (container labels keep the owner they were created with).
fn warm_running(claimed: &[&str]) -> usize {
    let out = bay_tests::engine::cli()
        .args(["ps", "--format", "{{.ID}} {{.Label \"bay.sandbox_id\"}}", "--filter", "label=bay.owner=warm-pool"])
        .args(["--filter", &format!("label=bay.instance_id={INSTANCE}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, sandbox)| !claimed.contains(sandbox))
        .filter(|(container, _)| {
            bay_tests::engine::cli()
                // The runtime answers only with its session secret (in the container's environment).
                .args(["exec", container, "sh", "-c", r#"curl -s -H "X-Bay-Token: $BAY_RUNTIME_TOKEN" http://127.0.0.1:8123/ipython/kernel/status"#])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("alive"))
                .unwrap_or(false)
        })
        .count()
}

async fn wait_for_pool(n: usize, claimed: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while warm_running(claimed) < n {
        assert!(Instant::now() < deadline, "the warm pool did not fill up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the worker a moment to mark it available after the runtime answered.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_create_claims_a_running_warm_sandbox_and_the_pool_refills() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-warm-").tempdir().unwrap();
    let profiles = "profiles:\n  - {id: warm, image: \"ship:latest\", warm_pool_size: 2, env: {WARM_MARK: bound}}\n";
    let mut bay = BayProcess::start_with(dir.path(), INSTANCE, free_port(), profiles);
    bay.wait_ready().await;
    let c = bay.client();
    wait_for_pool(2, &[]).await;
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "warm", "ttl": 300})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    assert!(s["expires_at"].is_string(), "the caller's TTL is bound at claim time");
    // Its container was already running: the first exec starts nothing.
    let before = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(before.len(), 1, "claimed a warm sandbox");
    // (How fast that is, is measured by `./dev bench`, not asserted here.)
    let r = c.python(&id, "import os; print(os.environ['WARM_MARK'])", 30).await;
    assert_eq!(r["output"], "bound");
    assert_eq!(engine::containers_with("bay.sandbox_id", &id), before, "the first exec ran in the warm container");
    // It is the caller's now: listed, with its cargo.
    let (_, l) = c.get("/v1/sandboxes?limit=200").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1, "warm sandboxes are not listed");
    assert_eq!(l["items"][0]["id"], id.as_str());
    let (status, _) = c.get(&format!("/v1/cargos/{}", s["cargo_id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    // The pool refills in the background.
    wait_for_pool(2, &[&id]).await;
    c.delete_sandbox(&id).await;
    bay.kill();
    bay_tests::remove_instance(INSTANCE);
}
