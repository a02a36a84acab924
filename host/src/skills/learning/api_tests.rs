//! The learning loop end to end inside the process: a learn-enabled batch
//! through the REST router (fake browser runtime, in-memory driver and
//! SQLite), one scheduler cycle, then the learned skill through the skills
//! API and replayed with `browser/skills/{key}/run`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::Learning;
use crate::api::{self, AppState};
use crate::auth::{Auth, hash_key};
use crate::gc::Gc;
use crate::idempotency::Idempotency;
use crate::sandbox::testing::{self, Harness};

const KEY: &str = "sk-unit-learning";

async fn app() -> (Router, Harness) {
    let h = Harness::new(testing::config("  - { id: browser-test, image: \"ship:latest\", capabilities: [filesystem, browser] }")).await;
    let key = crate::db::api_keys::ActiveKey { id: "k1".into(), key_hash: hash_key(KEY), owner: "default".into(), scopes: "admin".into() };
    let auth = Arc::new(Auth::new(vec![key], false, true));
    let state = AppState {
        auth,
        sandboxes: h.manager.clone(),
        idempotency: Idempotency::new(h.manager.db().clone(), &h.config.idempotency),
        gc: Gc::new(h.config.gc.clone(), h.manager.clone()),
        limits: Arc::new(h.config.limits.clone()),
        previews: Arc::new(crate::preview::PreviewSigner::load(h.manager.db()).await.unwrap()),
    };
    (api::router(state), h)
}

async fn send(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(format!("/v1{path}")).header("authorization", format!("Bearer {KEY}"));
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_learned_batch_becomes_a_released_skill_that_replays() {
    let (app, h) = app().await;
    let (status, sandbox) = send(&app, "POST", "/sandboxes", Some(json!({"profile": "browser-test"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{sandbox}");
    let id = sandbox["id"].as_str().unwrap().to_owned();

    let batch = json!({
        "commands": ["open https://example.com", "snapshot -i", "click @e1", "fill @e2 hello", "press Enter", "get title"],
        "learn": true,
        "tags": "skill:demo-login",
        "description": "Demo login flow",
    });
    let (status, ran) = send(&app, "POST", &format!("/sandboxes/{id}/browser/exec_batch"), Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!((ran["success"].as_bool(), ran["trace_ref"].is_null()), (Some(true), true), "{ran}");
    let execution_id = ran["execution_id"].as_str().unwrap().to_owned();
    // Not told to learn: left alone.
    let plain = json!({"commands": ["open https://example.com", "click @e1", "fill @e2 x"]});
    assert_eq!(send(&app, "POST", &format!("/sandboxes/{id}/browser/exec_batch"), Some(plain)).await.0, StatusCode::OK);

    // The cycle flushes the history writer itself.
    let learning = Learning::new(h.manager.clone());
    let cycle = learning.run_once().await.expect("not running").expect("cycle");
    assert_eq!((cycle.processed_executions, cycle.created_candidates, cycle.promoted_canary), (1, 1, 1));

    let (_, row) = send(&app, "GET", &format!("/sandboxes/{id}/history/{execution_id}"), None).await;
    assert_eq!((row["learn_enabled"].as_bool(), row["learn_status"].as_str(), &row["learn_error"]), (Some(true), Some("processed"), &Value::Null));
    assert!(row["learn_processed_at"].is_string(), "{row}");

    let (_, candidates) = send(&app, "GET", "/skills/candidates", None).await;
    assert_eq!(candidates["total"], 1, "{candidates}");
    let c = &candidates["items"][0];
    assert_eq!(
        (c["skill_key"].as_str(), c["scenario_key"].as_str(), c["skill_type"].as_str()),
        (Some("demo-login"), Some("demo-login-flow"), Some("browser"))
    );
    assert_eq!(
        (c["status"].as_str(), c["created_by"].as_str(), c["auto_release_eligible"].as_bool()),
        (Some("promoted_canary"), Some("system:auto"), Some(true))
    );
    assert_eq!(c["source_execution_ids"], json!([execution_id]));
    let (_, payload) = send(&app, "GET", &format!("/skills/payloads/{}", c["payload_ref"].as_str().unwrap()), None).await;
    assert_eq!(payload["kind"], "browser_segment");
    assert_eq!(payload["payload"]["commands"], json!(["click @e1", "fill @e2 hello", "press Enter"]));

    let (_, releases) = send(&app, "GET", "/skills/releases?active_only=true", None).await;
    let r = &releases["items"][0];
    assert_eq!((r["stage"].as_str(), r["release_mode"].as_str(), r["promoted_by"].as_str()), (Some("canary"), Some("auto"), Some("system:auto")));
    assert!(r["health_window_end_at"].is_string(), "{r}");

    // The learned skill replays its segment through the active release.
    let (status, replay) = send(&app, "POST", &format!("/sandboxes/{id}/browser/skills/demo-login/run"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!((replay["release_id"].as_str(), replay["total_steps"].as_u64(), replay["success"].as_bool()), (r["id"].as_str(), Some(3), Some(true)));

    // Nothing new on the next cycle (the replay is not learn-enabled).
    assert_eq!(learning.run_once().await.unwrap().unwrap(), super::CycleResult::default());
}
