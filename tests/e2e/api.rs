//! Cross-cutting API behaviour: auth, owner isolation, the error envelope.

use bay_tests::{anonymous, strict};
use reqwest::Method;

#[tokio::test]
async fn health_and_profiles_need_no_auth() {
    let http = reqwest::Client::new();
    let r: serde_json::Value = http.get(format!("{}/health", strict().base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "ok");
    let version = r["version"].as_str().unwrap();
    assert_eq!(version.split('.').count(), 3, "semver: {version}");
    let resp = http.get(format!("{}/v1/profiles", strict().base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: serde_json::Value = resp.json().await.unwrap();
    let p = r["items"].as_array().unwrap().iter().find(|p| p["id"] == "python-default").unwrap().clone();
    assert_eq!(p["image"], "ship:latest");
    assert_eq!(p["capabilities"], serde_json::json!(["filesystem", "shell", "python"]));
    assert!(p["containers"].is_null() && p["description"].is_null());
    let r: serde_json::Value = http.get(format!("{}/v1/profiles?detail=true", strict().base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["items"][0]["containers"][0]["runtime_type"], "ship");
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let bay = strict();
    let http = reqwest::Client::new();
    let cases: [Option<&str>; 4] = [None, Some("Bearer wrong"), Some("bearer sk-e2e-strict-key"), Some("Basic abc")];
    for auth in cases {
        let mut r = http.get(format!("{}/v1/sandboxes", bay.base));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().contains_key("x-request-id"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let expected = if auth == Some("Bearer wrong") { "Invalid API key" } else { "Authentication required" };
        assert_eq!(body["error"]["message"], expected);
    }
    // X-Owner does not help in strict mode.
    let resp = http.get(format!("{}/v1/sandboxes", bay.base)).header("x-owner", "default").send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn another_owners_sandbox_is_404() {
    let bay = anonymous();
    let alice = bay.owner("alice");
    let bob = bay.owner("bob");
    let id = alice.create_sandbox().await;
    for (method, path) in [
        (Method::GET, format!("/v1/sandboxes/{id}")),
        (Method::POST, format!("/v1/sandboxes/{id}/stop")),
        (Method::POST, format!("/v1/sandboxes/{id}/keepalive")),
        (Method::POST, format!("/v1/sandboxes/{id}/pause")),
        (Method::POST, format!("/v1/sandboxes/{id}/resume")),
        (Method::DELETE, format!("/v1/sandboxes/{id}")),
        (Method::GET, format!("/v1/sandboxes/{id}/filesystem/files?path=x")),
    ] {
        let (status, r) = bob.json(method.clone(), &path, None).await;
        assert_eq!(status, 404, "{method} {path}: {r}");
        assert_eq!(r["error"]["message"], format!("Sandbox not found: {id}"));
    }
    let (status, _) = bob.post(&format!("/v1/sandboxes/{id}/python/exec"), serde_json::json!({"code": "1"})).await;
    assert_eq!(status, 404);
    let (_, list) = bob.get("/v1/sandboxes").await;
    assert!(list["items"].as_array().unwrap().iter().all(|s| s["id"] != id.as_str()));
    // Alice still has it; a wrong bearer token is refused even in anonymous mode.
    let (status, _) = alice.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 200);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/sandboxes/{id}", bay.base))
        .header("authorization", "Bearer nope")
        .header("x-owner", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    alice.delete_sandbox(&id).await;
}

#[tokio::test]
async fn errors_use_the_envelope_with_the_request_id() {
    let c = strict().client();
    // Unknown route.
    let resp = c.req(Method::GET, "/v1/nothing-here").header("x-request-id", "req-e2e-1").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "req-e2e-1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "req-e2e-1");
    // Malformed JSON.
    let resp = c.req(Method::POST, "/v1/sandboxes").header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_error");
    assert!(body["error"]["request_id"].is_string());
    // Wrong method on a known route.
    let resp = c.req(Method::PATCH, "/v1/sandboxes").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // A generated request id when the client sends none.
    let resp = c.req(Method::GET, "/health").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 36);
}

/// `/ready` (no auth): the database, the engine and an adapter for every
/// profile's runtime type; a runtime type nothing serves makes it 503.
#[tokio::test]
async fn readiness_checks_database_engine_and_adapters() {
    let http = reqwest::Client::new();
    let dir = tempfile::Builder::new().prefix("bay-e2e-ready-").tempdir().unwrap();
    let profiles = "profiles:\n  - {id: python-default, image: \"ship:latest\"}\n  - {id: odd, image: \"ship:latest\", runtime_type: nosuch, runtime_port: 9000}\n";
    let odd = bay_tests::BayProcess::start_with(dir.path(), "bay-e2e-ready", bay_tests::free_port(), profiles);
    odd.wait_ready().await;
    let resp = http.get(format!("{}/ready", odd.base)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(r["status"], "not_ready", "{r}");
    assert_eq!(r["checks"]["database"], "ok", "{r}");
    assert_eq!(r["checks"]["engine"], "ok", "{r}");
    assert_eq!(r["error"]["code"], "not_ready", "{r}");
    assert!(r["checks"]["adapters"].as_str().unwrap().contains("nosuch (profile odd)"), "{r}");
    drop(odd);

    let dir = tempfile::Builder::new().prefix("bay-e2e-ready-").tempdir().unwrap();
    let fine = bay_tests::BayProcess::start_with(
        dir.path(),
        "bay-e2e-ready",
        bay_tests::free_port(),
        "profiles:\n  - {id: python-default, image: \"ship:latest\"}\n",
    );
    fine.wait_ready().await;
    let resp = http.get(format!("{}/ready", fine.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(r, serde_json::json!({"status": "ready", "checks": {"adapters": "ok", "database": "ok", "engine": "ok"}}));
}
