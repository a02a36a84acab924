//! Pause and resume (host/src/sandbox/pause.rs) on the real engine: Python
//! state survives a pause, a paused sandbox uses no CPU (read from its
//! cgroup) and its next call resumes it; `idle_action: pause` pauses an idle
//! session; a sandbox with no running session cannot be paused.

use std::time::{Duration, Instant};

use bay_tests::{BayProcess, Client, engine, free_port, remove_instance, strict};
use serde_json::{Value, json};

fn container_of(id: &str) -> String {
    engine::containers_with("bay.sandbox_id", id).remove(0)
}

async fn status(c: &Client, id: &str) -> String {
    let (code, v) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(code, 200, "{v}");
    v["status"].as_str().unwrap_or_default().to_owned()
}

async fn output(c: &Client, id: &str, code: &str) -> String {
    let r = c.python(id, code, 60).await;
    r["output"].as_str().unwrap_or_default().trim().to_owned()
}

/// A cgroup v1 file of a container (Docker's cgroupfs layout).
fn cgroup_file(container: &str, controller: &str, file: &str) -> Option<String> {
    let id = engine::inspect(container, "{{.Id}}");
    std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/docker/{id}/{file}")).ok().map(|s| s.trim().to_owned())
}

#[tokio::test]
async fn python_state_survives_a_pause_and_the_next_call_resumes_it() {
    let c = strict().client();
    let id = c.create_sandbox().await;

    // Nothing runs (stopped): nothing to pause (the error envelope, 409).
    c.post(&format!("/v1/sandboxes/{id}/stop"), json!(null)).await;
    let (code, r) = c.post(&format!("/v1/sandboxes/{id}/pause"), json!(null)).await;
    assert_eq!(code, 409, "{r}");
    assert_eq!(r["error"]["code"], "conflict", "{r}");

    assert_eq!(output(&c, &id, "x = 41\nprint('set')").await, "set");
    let (code, r) = c.post(&format!("/v1/sandboxes/{id}/pause"), json!(null)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["status"], "paused");
    assert_eq!(status(&c, &id).await, "paused");
    let (_, list) = c.get("/v1/sandboxes?status=paused").await;
    assert!(list["items"].as_array().unwrap().iter().any(|s| s["id"] == id.as_str()), "{list}");

    // Frozen on the engine: the freezer says so, and no CPU time accrues.
    let container = container_of(&id);
    assert_eq!(engine::inspect(&container, "{{.State.Status}}"), "paused");
    // (Docker on cgroup v1 with the cgroupfs driver, as `docker info` shows
    // on the machines this suite runs on.)
    if !engine::is_podman() {
        assert_eq!(cgroup_file(&container, "freezer", "freezer.state").as_deref(), Some("FROZEN"));
        let usage = || cgroup_file(&container, "cpuacct", "cpuacct.usage").and_then(|u| u.parse::<u64>().ok());
        let before = usage().expect("the container's cpuacct cgroup");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(usage(), Some(before), "a paused sandbox used CPU");
    }

    // The next call resumes it, with the kernel's state intact.
    assert_eq!(output(&c, &id, "x + 1").await, "42");
    assert_eq!(status(&c, &id).await, "ready");
    assert_eq!(engine::inspect(&container, "{{.State.Status}}"), "running");

    // An explicit resume, then delete while paused leaves nothing behind.
    c.post(&format!("/v1/sandboxes/{id}/pause"), json!(null)).await;
    let (code, r) = c.post(&format!("/v1/sandboxes/{id}/resume"), json!(null)).await;
    assert_eq!((code, r["status"].clone()), (200, Value::from("ready")), "{r}");
    assert_eq!(output(&c, &id, "x").await, "41");
    c.post(&format!("/v1/sandboxes/{id}/pause"), json!(null)).await;
    c.delete_sandbox(&id).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty(), "the paused container was removed");
}

#[tokio::test]
async fn an_idle_session_is_paused_with_idle_action_pause() {
    let dir = tempfile::tempdir().unwrap();
    let (instance, port) = ("bay-e2e-idle-pause", free_port());
    let yaml: String = BayProcess::base_config(dir.path(), instance, port)
        .lines()
        .map(|l| if l.starts_with("gc:") { format!("gc: {{instance_id: {instance}, run_on_startup: true, interval_seconds: 1}}") } else { l.to_owned() } + "\n")
        .collect::<String>()
        + "profiles:\n  - { id: python-default, image: \"ship:latest\", idle_timeout: 2, idle_action: pause, paused_timeout: 3600 }\n";
    let bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    let id = c.create_sandbox().await;
    assert_eq!(output(&c, &id, "x = 41\nprint('set')").await, "set");
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&c, &id).await != "paused" {
        assert!(Instant::now() < deadline, "the idle session was not paused");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(engine::inspect(&container_of(&id), "{{.State.Status}}"), "paused");
    assert_eq!(output(&c, &id, "x + 1").await, "42");
    c.delete_sandbox(&id).await;
    drop(bay);
    remove_instance(instance);
}
