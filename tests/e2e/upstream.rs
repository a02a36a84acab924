//! An image shaped like Shipyard Neo's Ship at start (`tests/upstream/build.sh`:
//! runs as root, chowns the workspace under `set -e`, writes to `/app`, and
//! `sudo -u shipyard` works) under Bay's hardened defaults and under the three
//! settings `docs/runtimes.md` names for such images.

use bay_tests::{BayProcess, free_port, remove_instance};
use serde_json::json;

const IMAGE: &str = "bay-e2e-upstream-ship:latest";

#[tokio::test]
async fn an_upstream_shaped_image_needs_exactly_the_documented_settings() {
    let built = std::process::Command::new(bay_tests::workspace_root().join("tests/upstream/build.sh")).output().expect("tests/upstream/build.sh");
    assert!(built.status.success(), "building {IMAGE}: {}", String::from_utf8_lossy(&built.stderr));
    let dir = tempfile::Builder::new().prefix("bay-e2e-upstream-").tempdir().unwrap();
    let instance = "bay-e2e-upstream";
    let profiles = format!(
        "profiles:\n  - {{id: hardened, image: \"{IMAGE}\", startup: {{ready_timeout_seconds: 15}}}}\n  - {{id: upstream, image: \"{IMAGE}\", security: {{read_only_rootfs: false, no_new_privileges: false, cap_drop: []}}}}\n"
    );
    let bay = BayProcess::start_with(dir.path(), instance, free_port(), &profiles);
    bay.wait_ready().await;
    let c = bay.client();

    // Our defaults (no capabilities, read-only root, no new privileges): the
    // entrypoint's chown fails and the session does not start.
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "hardened"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), json!({"command": "true"})).await;
    assert!(status >= 500, "{status} {r}");
    assert!(r["error"]["code"].is_string(), "{r}");
    c.delete_sandbox(&id).await;

    // With the three settings it starts, and behaves as upstream's does.
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "upstream"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let (status, r) = c
        .post(
            &format!("/v1/sandboxes/{id}/shell/exec"),
            json!({"command": "sudo -u shipyard id -un; stat -c %U /workspace; test -s /app/started && echo app"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"], "shipyard\nshipyard\napp", "{r}");
    let r = c.python(&id, "print(6 * 7)", 60).await;
    assert_eq!(r["output"].as_str().unwrap().trim(), "42", "{r}");
    c.delete_sandbox(&id).await;
    drop(bay);
    remove_instance(instance);
}
