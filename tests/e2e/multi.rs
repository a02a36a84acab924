//! Multi-container sessions (Shipyard Neo's contract, docs/compatibility.md): one network per session, sibling
//! DNS by container name, one cargo shared by all, all-or-nothing start.

use bay_tests::{engine, strict};
use serde_json::json;

fn network_exists(name: &str) -> bool {
    bay_tests::engine::cli().args(["network", "inspect", name]).output().map(|o| o.status.success()).unwrap_or(false)
}

#[tokio::test]
async fn containers_share_a_network_and_the_cargo() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "two-ships"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["capabilities"], json!(["filesystem", "python", "shell"]));
    c.shell(&id, "echo from-ship > shared.txt").await;
    // The sibling is reachable by its name; its API, like every runtime's,
    // needs the session secret, which code in the sandbox does not have.
    let r = c.shell(&id, "curl -s http://worker:8123/health").await;
    assert!(r["output"].as_str().unwrap().contains("healthy"), "{r}");
    let r = c.shell(&id, r#"curl -s -o /dev/null -w '%{http_code}' -X POST http://worker:8123/fs/read_file -H 'content-type: application/json' -d '{"path":"shared.txt"}'"#).await;
    assert_eq!(r["output"], "401", "{r}");

    let (_, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    let containers = g["containers"].as_array().unwrap();
    let names: Vec<&str> = containers.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ship", "worker"], "{g}");
    assert!(containers.iter().all(|c| c["healthy"] == true && c["version"].is_string()));
    assert_eq!(containers[1]["capabilities"], json!(["python"]));

    let ids = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(ids.len(), 2);
    // Docker's CLI prints names with a leading slash, Podman's without.
    let mut names: Vec<String> = ids.iter().map(|c| engine::inspect(c, "{{.Name}}").trim_start_matches('/').to_owned()).collect();
    names.sort();
    let session = engine::inspect(&ids[0], "{{index .Config.Labels \"bay.session_id\"}}");
    assert_eq!(names, [format!("bay-{session}-ship"), format!("bay-{session}-worker")]);
    let network = format!("bay_net_{session}");
    assert!(network_exists(&network));
    // Both mount the sandbox's cargo: the worker sees what Ship wrote.
    let worker = ids.iter().find(|c| engine::inspect(c, "{{.Name}}").ends_with("-worker")).unwrap();
    let out = bay_tests::engine::cli().args(["exec", worker, "cat", "/workspace/shared.txt"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-ship");

    // Stop removes both and the network; the next call starts both again.
    c.post(&format!("/v1/sandboxes/{id}/stop"), json!(null)).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    assert!(!network_exists(&network));
    assert_eq!(c.shell(&id, "cat shared.txt").await["output"], "from-ship");
    assert_eq!(engine::containers_with("bay.sandbox_id", &id).len(), 2);
    c.delete_sandbox(&id).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
}

#[tokio::test]
async fn a_failed_container_fails_the_whole_session_and_leaves_nothing() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "half-broken"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "1"})).await;
    assert_eq!(status, 500, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("bay-e2e-no-such-image"), "{r}");
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty(), "the healthy sibling was removed too");
    let out = bay_tests::engine::cli().args(["network", "ls", "-q", "--filter", &format!("label=bay.sandbox_id={id}")]).output().unwrap();
    assert!(out.stdout.is_empty(), "the session network was removed");
    c.delete_sandbox(&id).await;
}
