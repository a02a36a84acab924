use bay_tests::{engine, strict};
use reqwest::Method;

#[tokio::test]
async fn create_get_list_shapes() {
    let c = strict().client();
    let (status, s) = c.post("/v1/sandboxes", serde_json::json!({"ttl": 3600})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sandbox-") && id.len() == "sandbox-".len() + 12);
    assert!(s["cargo_id"].as_str().unwrap().starts_with("ws-"));
    assert_eq!(s["status"], "idle");
    assert_eq!(s["profile"], "python-default");
    assert_eq!(s["capabilities"], serde_json::json!(["filesystem", "shell", "python"]));
    assert!(s["expires_at"].is_string());
    assert!(s["containers"].is_null());
    for key in ["created_at", "idle_expires_at"] {
        assert!(s.get(key).is_some(), "{key} is always present");
    }
    assert!(!s["created_at"].as_str().unwrap().ends_with('Z'), "naive UTC timestamps");

    c.python(&id, "1", 30).await;
    let (status, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(g["status"], "ready", "{g}");
    let containers = g["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["runtime_type"], "ship");
    assert_eq!(containers[0]["healthy"], true);
    assert!(containers[0]["version"].is_string());
    assert!(g["idle_expires_at"].is_string());

    let (status, l) = c.get("/v1/sandboxes?limit=200").await;
    assert_eq!(status, 200);
    let item = l["items"].as_array().unwrap().iter().find(|i| i["id"] == id.as_str()).expect("listed");
    assert!(item["containers"].is_null(), "list never carries containers");
    let (status, _) = c.get("/v1/sandboxes?limit=0").await;
    assert_eq!(status, 422);
    let (status, _) = c.post("/v1/sandboxes", serde_json::json!({"profile": "no-such-profile"})).await;
    assert_eq!(status, 400);
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn stop_drops_the_session_and_keeps_files() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    c.python(&id, "secret = 'kept in memory'", 30).await;
    c.shell(&id, "echo persisted > file.txt").await;
    let first = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(first.len(), 1);

    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/stop"), serde_json::json!(null)).await;
    assert_eq!((status, &r), (200, &serde_json::json!({"status": "stopped"})));
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty(), "stop removes the compute");
    let (_, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(g["status"], "idle");
    assert!(g["idle_expires_at"].is_null());
    // Idempotent.
    let (status, _) = c.post(&format!("/v1/sandboxes/{id}/stop"), serde_json::json!(null)).await;
    assert_eq!(status, 200);

    // The next call starts a new session: variables are gone, files are kept.
    let r = c.python(&id, "print('secret' in globals())", 30).await;
    assert_eq!(r["output"], "False");
    let r = c.shell(&id, "cat file.txt").await;
    assert_eq!(r["output"], "persisted");
    let second = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn delete_removes_container_volume_and_sandbox() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", serde_json::json!({})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let volume = format!("bay-cargo-{}", s["cargo_id"].as_str().unwrap());
    c.shell(&id, "echo x > f").await;
    let containers = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(containers.len(), 1);
    assert!(engine::volume_exists(&volume));
    // The container carries Bay's labels and runs hardened.
    let c0 = &containers[0];
    assert_eq!(engine::inspect(c0, "{{index .Config.Labels \"bay.instance_id\"}}"), strict().instance_id);
    assert_eq!(engine::inspect(c0, "{{index .Config.Labels \"bay.managed\"}}"), "true");
    assert_eq!(engine::inspect(c0, "{{.Config.User}}"), "1000:1000");
    // Docker reports the request (`[ALL]`), Podman the capabilities it
    // dropped; either way the bounding set inside is empty (below).
    let cap_drop = engine::inspect(c0, "{{.HostConfig.CapDrop}}");
    assert!(cap_drop == "[ALL]" || ["CHOWN", "DAC_OVERRIDE", "SETUID", "KILL"].iter().all(|c| cap_drop.contains(c)), "{cap_drop}");
    assert_eq!(engine::inspect(c0, "{{.HostConfig.PidsLimit}}"), "256");
    assert_eq!(engine::inspect(c0, "{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert!(engine::inspect(c0, "{{.HostConfig.SecurityOpt}}").contains("no-new-privileges"));
    let status = c.shell(&id, "grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status").await;
    assert_eq!(status["output"], "CapBnd:\t0000000000000000\nNoNewPrivs:\t1", "{status}");
    assert!(engine::inspect(c0, "{{json .HostConfig.Tmpfs}}").contains("/tmp"));
    assert_eq!(engine::inspect(c0, "{{.HostConfig.Memory}}"), (1u64 << 30).to_string());
    // Only the workspace and tmp are writable; the Docker socket is not there.
    let r = c
        .shell(
            &id,
            "touch /workspace/ok /tmp/ok && echo fine; touch /var/cache/x 2>&1 | grep -c 'Read-only'; test -e /var/run/docker.sock || echo no-socket",
        )
        .await;
    assert_eq!(r["output"], "fine\n1\nno-socket", "{r}");
    assert!(engine::inspect(c0, "{{json .NetworkSettings.Ports}}").contains("\"HostIp\":\"127.0.0.1\""));

    c.delete_sandbox(&id).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    assert!(!engine::volume_exists(&volume), "the managed cargo volume is deleted");
    let (status, r) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 404, "{r}");
    assert_eq!(r["error"]["code"], "not_found");
    // A second delete is a no-op; an id that never existed is 404.
    c.delete_sandbox(&id).await;
    let (status, _) = c.json(Method::DELETE, "/v1/sandboxes/sandbox-000000000000", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn concurrent_first_calls_start_one_container() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", serde_json::json!({})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let calls = (0..8).map(|i| {
        let c = &c;
        let id = &id;
        async move { c.python(id, &format!("print({i} * 2)"), 60).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["output"], (i * 2).to_string(), "{r}");
    }
    assert_eq!(engine::containers_with("bay.sandbox_id", &id).len(), 1);
    c.delete_sandbox(&id).await;
}
