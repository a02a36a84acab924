//! Every error code of Shipyard Neo's contract that Bay raises, with its status.
//! `forbidden` (admin routes) and `quota_exceeded` (per-owner quotas), never
//! raised by Shipyard Neo, are covered in attacks.rs with Bay's own codes
//! (`payload_too_large`, `uri_too_long`, `headers_too_large`,
//! `unsupported_media_type`). Codes covered elsewhere: `not_found`, `unauthorized` (api.rs),
//! `invalid_path`, `file_not_found`, `ship_error` (files.rs), `conflict` for
//! cargos and idempotency (v1.rs).

use bay_tests::strict;
use reqwest::Method;
use serde_json::json;

async fn create(c: &bay_tests::Client, profile: &str) -> String {
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": profile})).await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_owned()
}

fn code(r: &serde_json::Value) -> &str {
    r["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn capability_not_supported_at_the_profile_level() {
    let c = strict().client();
    let id = create(&c, "python-only").await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), json!({"command": "true"})).await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(code(&r), "capability_not_supported");
    assert_eq!(r["error"]["message"], "Profile 'python-only' does not support capability: shell");
    assert_eq!(r["error"]["details"]["capability"], "shell");
    assert_eq!(r["error"]["details"]["available"], json!(["python", "filesystem"]));
    // Browser endpoints exist and check the profile the same way.
    for path in ["browser/exec", "browser/exec_batch", "browser/skills/k/run"] {
        let (status, r) = c.post(&format!("/v1/sandboxes/{id}/{path}"), json!({"cmd": "open about:blank", "commands": ["x"]})).await;
        assert_eq!((status, code(&r)), (400, "capability_not_supported"), "{path}: {r}");
        assert_eq!(r["error"]["details"]["capability"], "browser");
    }
    // The check comes before the body is parsed (Shipyard Neo's contract, docs/compatibility.md).
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), json!({})).await;
    assert_eq!((status, code(&r)), (400, "capability_not_supported"));
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn a_missing_image_is_a_500_envelope_not_a_bare_500() {
    let c = strict().client();
    let id = create(&c, "missing-image").await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "1"})).await;
    assert_eq!(status, 500, "{r}");
    assert_eq!(code(&r), "internal_error");
    assert!(r["error"]["message"].as_str().unwrap().contains("bay-e2e-no-such-image"), "{r}");
    assert!(r["error"]["request_id"].is_string());
    // Nothing is left behind, and the sandbox stays usable for the next attempt.
    assert!(bay_tests::engine::containers_with("bay.sandbox_id", &id).is_empty());
    // The warmup queued at create may still be making its own (failing)
    // attempt; once it is over the sandbox is idle again.
    let mut g = serde_json::Value::Null;
    for _ in 0..120 {
        g = c.get(&format!("/v1/sandboxes/{id}")).await.1;
        if g["status"] != "starting" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(g["status"], "idle", "{g}");
    assert!(bay_tests::engine::containers_with("bay.sandbox_id", &id).is_empty());
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn a_runtime_that_never_answers_is_session_not_ready() {
    let c = strict().client();
    let id = create(&c, "never-ready").await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "1"})).await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(code(&r), "session_not_ready");
    assert_eq!(r["error"]["details"]["sandbox_id"], id.as_str());
    assert!(r["error"]["details"]["retry_after_ms"].as_u64().unwrap() > 0);
    // The half-started container was removed.
    assert!(bay_tests::engine::containers_with("bay.sandbox_id", &id).is_empty());
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn validation_conflict_and_ttl_errors() {
    let c = strict().client();
    // validation_error (400): unknown profile, extend_by <= 0.
    let (status, r) = c.post("/v1/sandboxes", json!({"profile": "nope"})).await;
    assert_eq!((status, code(&r)), (400, "validation_error"));
    assert_eq!(r["error"]["message"], "Invalid profile: nope");

    // sandbox_ttl_infinite (409).
    let forever = c.create_sandbox().await;
    let (status, r) = c.post(&format!("/v1/sandboxes/{forever}/extend_ttl"), json!({"extend_by": 60})).await;
    assert_eq!((status, code(&r)), (409, "sandbox_ttl_infinite"), "{r}");
    assert_eq!(r["error"]["details"]["sandbox_id"], forever.as_str());
    let (status, r) = c.post(&format!("/v1/sandboxes/{forever}/extend_ttl"), json!({"extend_by": 0})).await;
    assert_eq!((status, code(&r)), (400, "validation_error"));
    assert_eq!(r["error"]["message"], "extend_by must be a positive integer");
    let (status, _) = c.post(&format!("/v1/sandboxes/{forever}/extend_ttl"), json!({})).await;
    assert_eq!(status, 422);

    // sandbox_expired (409).
    let (_, s) = c.post("/v1/sandboxes", json!({"ttl": 1})).await;
    let short = s["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (_, g) = c.get(&format!("/v1/sandboxes/{short}")).await;
    assert_eq!(g["status"], "expired");
    let (status, r) = c.post(&format!("/v1/sandboxes/{short}/extend_ttl"), json!({"extend_by": 60})).await;
    assert_eq!((status, code(&r)), (409, "sandbox_expired"), "{r}");
    assert!(r["error"]["details"]["expires_at"].is_string());

    // conflict (409): a malformed idempotency key.
    let resp = c.req(Method::POST, "/v1/sandboxes").header("idempotency-key", "not a key!").json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code(&r), "conflict");
    assert_eq!(r["error"]["details"]["key"], "not a key!");

    for id in [forever, short] {
        c.delete_sandbox(&id).await;
    }
}

#[tokio::test]
async fn a_runtime_that_stops_answering_is_a_504_timeout() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    c.python(&id, "x = 1", 30).await;
    let container = bay_tests::engine::containers_with("bay.sandbox_id", &id).remove(0);
    // A paused container still accepts the connection but never answers.
    bay_tests::engine::cli().args(["pause", &container]).output().unwrap();
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "x", "timeout": 1})).await;
    bay_tests::engine::cli().args(["unpause", &container]).output().unwrap();
    assert_eq!(status, 504, "{r}");
    assert_eq!(code(&r), "timeout");
    assert_eq!(r["error"]["message"], "Ship request timed out: /ipython/exec");
    // Once it answers again, the session (and its state) is still there.
    let r = c.python(&id, "print(x)", 30).await;
    assert_eq!(r["output"], "1");
    c.delete_sandbox(&id).await;
}
