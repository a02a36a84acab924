//! The skills control plane (Shipyard Neo's contract, docs/compatibility.md): payloads, candidates built from
//! real executions, evaluations, releases, rollback, release health and soft
//! deletes, with owner isolation (anonymous mode, owners from `X-Owner`).
//! Only the lifecycle test starts a container (one sandbox).

use bay_tests::{Client, anonymous, strict};
use reqwest::Method;
use serde_json::{Value, json};

fn code(r: &Value) -> &str {
    r["error"]["code"].as_str().unwrap_or_default()
}

fn message(r: &Value) -> &str {
    r["error"]["message"].as_str().unwrap_or_default()
}

/// Naive ISO-8601 like Python's `datetime.isoformat()`: no offset.
fn assert_ts(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp expected, got {v}"));
    assert!(s.len() == 19 || s.len() == 26, "{s}");
    assert_eq!(&s[10..11], "T", "{s}");
    assert!(!s.ends_with('Z') && !s.contains('+'), "{s}");
}

async fn delete(c: &Client, path: &str, body: Option<Value>) -> (u16, Value) {
    c.json(Method::DELETE, path, body).await
}

#[tokio::test]
async fn skills_endpoints_need_auth() {
    let bay = strict();
    let http = reqwest::Client::new();
    for path in ["/v1/skills/candidates", "/v1/skills/releases", "/v1/skills/payloads/blob:blob-000000000000"] {
        let resp = http.get(format!("{}{path}", bay.base)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let (status, r) = bay.client().get("/v1/skills/releases").await;
    assert_eq!(status, 200, "{r}");
    assert!(r["items"].is_array() && r["total"].is_i64(), "{r}");
}

#[tokio::test]
async fn payloads_round_trip_and_stay_with_their_owner() {
    let bay = anonymous();
    let alice = bay.owner("skills-payload-alice");
    let bob = bay.owner("skills-payload-bob");

    let payload = json!({"commands": ["open https://example.com", "click @e1"], "nested": {"k": [1, 2.5, null]}});
    let (status, r) = alice.post("/v1/skills/payloads", json!({"payload": payload, "kind": "browser_segment"})).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
    assert_eq!(r["kind"], "browser_segment");
    let pref = r["payload_ref"].as_str().unwrap().to_owned();
    let id = pref.strip_prefix("blob:blob-").expect("blob:blob-<hex>");
    assert!(id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()), "{pref}");

    let (status, r) = alice.get(&format!("/v1/skills/payloads/{pref}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r, json!({"payload_ref": pref, "kind": "browser_segment", "payload": payload}));
    // Key order is kept as sent.
    let raw = alice.req(Method::GET, &format!("/v1/skills/payloads/{pref}")).send().await.unwrap().text().await.unwrap();
    // (Sent as raw text: `json!` would sort the keys before sending.)
    let resp = alice
        .req(Method::POST, "/v1/skills/payloads")
        .header("content-type", "application/json")
        .body(r#"{"payload": {"zeta": 1, "alpha": 2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let r2: Value = resp.json().await.unwrap();
    assert_eq!(r2["kind"], "generic", "default kind");
    assert!(raw.contains(r#""payload":{"commands":"#), "{raw}");
    let raw =
        alice.req(Method::GET, &format!("/v1/skills/payloads/{}", r2["payload_ref"].as_str().unwrap())).send().await.unwrap().text().await.unwrap();
    assert!(raw.contains(r#"{"zeta":1,"alpha":2}"#), "{raw}");

    // Arrays are payloads too.
    let (status, r) = alice.post("/v1/skills/payloads", json!({"payload": [1, "two"]})).await;
    assert_eq!(status, 201, "{r}");
    let (_, r) = alice.get(&format!("/v1/skills/payloads/{}", r["payload_ref"].as_str().unwrap())).await;
    assert_eq!(r["payload"], json!([1, "two"]));

    // Schema errors are 422: scalars (a JSON string too), a missing payload, an empty kind.
    for body in [json!({"payload": "{\"a\": 1}"}), json!({"payload": 3}), json!({"payload": null}), json!({}), json!({"payload": {}, "kind": ""})] {
        let (status, r) = alice.post("/v1/skills/payloads", body.clone()).await;
        assert_eq!(status, 422, "{body} → {r}");
    }

    // References: another scheme, an empty id, unknown, another owner's.
    let (status, r) = alice.get("/v1/skills/payloads/file/a/b.json").await;
    assert_eq!((status, code(&r), message(&r)), (400, "validation_error", "Unsupported payload_ref: file/a/b.json"));
    let (status, r) = alice.get("/v1/skills/payloads/blob:").await;
    assert_eq!((status, code(&r)), (400, "validation_error"), "{r}");
    let (status, r) = alice.get("/v1/skills/payloads/").await;
    assert_eq!((status, message(&r)), (400, "Unsupported payload_ref: "), "{r}");
    let (status, r) = alice.get("/v1/skills/payloads/blob:blob-000000000000").await;
    assert_eq!((status, code(&r), message(&r)), (404, "not_found", "Artifact blob not found: blob-000000000000"));
    let (status, r) = bob.get(&format!("/v1/skills/payloads/{pref}")).await;
    assert_eq!((status, code(&r)), (404, "not_found"), "{r}");
}

#[tokio::test]
async fn request_and_business_validation() {
    let bay = anonymous();
    let c = bay.owner("skills-validation");

    // Candidate create: schema (422), then business rules (400).
    for body in [
        json!({"source_execution_ids": ["x"]}),
        json!({"skill_key": "k"}),
        json!({"skill_key": 1, "source_execution_ids": []}),
        json!({"skill_key": "k", "source_execution_ids": ["x"], "preconditions": [1]}),
    ] {
        let (status, r) = c.post("/v1/skills/candidates", body.clone()).await;
        assert_eq!(status, 422, "{body} → {r}");
    }
    let (status, r) = c.post("/v1/skills/candidates", json!({"skill_key": "  ", "source_execution_ids": ["x"]})).await;
    assert_eq!((status, code(&r), message(&r)), (400, "validation_error", "skill_key must not be empty"));
    let (status, r) = c.post("/v1/skills/candidates", json!({"skill_key": "k", "source_execution_ids": []})).await;
    assert_eq!((status, message(&r)), (400, "source_execution_ids must not be empty"));
    let (status, r) = c.post("/v1/skills/candidates", json!({"skill_key": "k", "source_execution_ids": ["exec-000000000000"]})).await;
    assert_eq!((status, message(&r)), (400, "Execution ID not found or not owned: exec-000000000000"));

    // Lists: bounds are 422, unknown status/stage 400.
    for path in [
        "/v1/skills/candidates?limit=0",
        "/v1/skills/candidates?limit=501",
        "/v1/skills/candidates?offset=-1",
        "/v1/skills/candidates?limit=x",
        "/v1/skills/releases?limit=0",
        "/v1/skills/releases?offset=-1",
        "/v1/skills/releases?active_only=maybe",
    ] {
        let (status, r) = c.get(path).await;
        assert_eq!(status, 422, "{path} → {r}");
    }
    let (status, r) = c.get("/v1/skills/candidates?status=bogus").await;
    assert_eq!((status, code(&r), message(&r)), (400, "validation_error", "Invalid candidate status: bogus"));
    let (status, r) = c.get("/v1/skills/releases?stage=prod").await;
    assert_eq!((status, message(&r)), (400, "Invalid release stage: prod"));
    let (status, r) = c.get("/v1/skills/candidates?status=&limit=500&offset=3").await;
    assert_eq!((status, r), (200, json!({"items": [], "total": 0})));
    let (status, r) = c.get("/v1/skills/releases?active_only=true&stage=stable").await;
    assert_eq!((status, r), (200, json!({"items": [], "total": 0})));

    // Unknown objects.
    let (status, r) = c.get("/v1/skills/candidates/sc-000000000000").await;
    assert_eq!((status, message(&r)), (404, "Skill candidate not found: sc-000000000000"));
    let (status, r) = c.post("/v1/skills/candidates/sc-000000000000/evaluate", json!({})).await;
    assert_eq!(status, 422, "missing `passed` is checked before the lookup: {r}");
    let (status, _) = c.post("/v1/skills/candidates/sc-000000000000/evaluate", json!({"passed": true})).await;
    assert_eq!(status, 404);
    let (status, r) = c.post("/v1/skills/candidates/sc-000000000000/promote", json!({"stage": "prod"})).await;
    assert_eq!((status, message(&r)), (400, "Invalid release stage: prod"));
    let (status, _) = c.post("/v1/skills/candidates/sc-000000000000/promote", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = delete(&c, "/v1/skills/candidates/sc-000000000000", Some(json!({}))).await;
    assert_eq!(status, 404);
    let (status, r) = c.post("/v1/skills/releases/sr-000000000000/rollback", json!(null)).await;
    assert_eq!((status, message(&r)), (404, "Skill release not found: sr-000000000000"));
    let (status, _) = c.get("/v1/skills/releases/sr-000000000000/health").await;
    assert_eq!(status, 404);
    let (status, _) = delete(&c, "/v1/skills/releases/sr-000000000000", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn skill_lifecycle_on_real_executions() {
    let bay = anonymous();
    let alice = bay.owner("skills-life-alice");
    let bob = bay.owner("skills-life-bob");
    let sandbox = alice.create_sandbox().await;
    let exec1 = alice.python(&sandbox, "1+1", 60).await["execution_id"].as_str().unwrap().to_owned();
    let exec2 = alice.python(&sandbox, "2+2", 60).await["execution_id"].as_str().unwrap().to_owned();

    // Evidence must be the caller's own.
    let (status, r) = bob.post("/v1/skills/candidates", json!({"skill_key": "csv", "source_execution_ids": [exec1]})).await;
    assert_eq!((status, message(&r).to_owned()), (400, format!("Execution ID not found or not owned: {exec1}")));

    // Create (201) with every optional field.
    let (_, p) = alice.post("/v1/skills/payloads", json!({"payload": {"steps": ["a", "b"]}})).await;
    let pref = p["payload_ref"].as_str().unwrap().to_owned();
    let (status, c1) = alice
        .post(
            "/v1/skills/candidates",
            json!({"skill_key": " csv-export ", "source_execution_ids": [exec1, exec2], "scenario_key": "monthly",
                   "payload_ref": pref, "summary": "export", "usage_notes": "notes",
                   "preconditions": {"file": "in.csv"}, "postconditions": {"rows": 3}}),
        )
        .await;
    assert_eq!(status, 201, "{c1}");
    let c1_id = c1["id"].as_str().unwrap().to_owned();
    assert!(c1_id.starts_with("sc-") && c1_id.len() == 15, "{c1_id}");
    assert_eq!(c1["skill_key"], "csv-export");
    assert_eq!(c1["source_execution_ids"], json!([exec1, exec2]));
    assert_eq!((c1["status"].as_str(), c1["skill_type"].as_str()), (Some("draft"), Some("code")));
    assert_eq!((c1["scenario_key"].as_str(), c1["payload_ref"].as_str()), (Some("monthly"), Some(pref.as_str())));
    assert_eq!((&c1["preconditions"], &c1["postconditions"]), (&json!({"file": "in.csv"}), &json!({"rows": 3})));
    assert_eq!((&c1["created_by"], &c1["is_deleted"], &c1["auto_release_eligible"]), (&json!("skills-life-alice"), &json!(false), &json!(false)));
    for key in [
        "latest_score",
        "latest_pass",
        "last_evaluated_at",
        "promotion_release_id",
        "auto_release_reason",
        "deleted_at",
        "deleted_by",
        "delete_reason",
    ] {
        assert!(c1.get(key).is_some_and(Value::is_null), "{key}: {c1}");
    }
    assert_eq!(c1.as_object().unwrap().len(), 24);
    assert_ts(&c1["created_at"]);
    assert_ts(&c1["updated_at"]);

    let (status, got) = alice.get(&format!("/v1/skills/candidates/{c1_id}")).await;
    assert_eq!((status, &got), (200, &c1));
    let (status, _) = bob.get(&format!("/v1/skills/candidates/{c1_id}")).await;
    assert_eq!(status, 404);

    // Promotion needs a passing evaluation.
    let (status, r) = alice.post(&format!("/v1/skills/candidates/{c1_id}/promote"), json!({})).await;
    assert_eq!((status, code(&r), message(&r)), (409, "conflict", "Candidate has no passing evaluation; promotion is blocked"));
    let (status, e) = alice.post(&format!("/v1/skills/candidates/{c1_id}/evaluate"), json!({"passed": false, "score": 0.2})).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(alice.get(&format!("/v1/skills/candidates/{c1_id}")).await.1["status"], "rejected");
    let report = json!({"replay_success": 1.0, "error_rate": 0.0, "samples": 10}).to_string();
    let (status, e) = alice
        .post(&format!("/v1/skills/candidates/{c1_id}/evaluate"), json!({"passed": true, "score": 0.95, "benchmark_id": "bench-1", "report": report}))
        .await;
    assert_eq!(status, 200, "{e}");
    assert!(e["id"].as_str().unwrap().starts_with("se-"));
    assert_eq!((e["candidate_id"].as_str(), e["score"].as_f64(), &e["passed"]), (Some(c1_id.as_str()), Some(0.95), &json!(true)));
    assert_eq!(
        (e["benchmark_id"].as_str(), e["report"].as_str(), e["evaluated_by"].as_str()),
        (Some("bench-1"), Some(report.as_str()), Some("skills-life-alice"))
    );
    assert_eq!(e.as_object().unwrap().len(), 8);
    assert_ts(&e["created_at"]);
    let (_, c) = alice.get(&format!("/v1/skills/candidates/{c1_id}")).await;
    assert_eq!((c["status"].as_str(), c["latest_score"].as_f64(), &c["latest_pass"]), (Some("evaluating"), Some(0.95), &json!(true)));
    assert_ts(&c["last_evaluated_at"]);
    let (status, _) = bob.post(&format!("/v1/skills/candidates/{c1_id}/evaluate"), json!({"passed": true})).await;
    assert_eq!(status, 404);
    let (status, _) = bob.post(&format!("/v1/skills/candidates/{c1_id}/promote"), json!({})).await;
    assert_eq!(status, 404);

    // Promote (canary by default) → version 1.
    let (status, r1) = alice.post(&format!("/v1/skills/candidates/{c1_id}/promote"), json!({})).await;
    assert_eq!(status, 200, "{r1}");
    let r1_id = r1["id"].as_str().unwrap().to_owned();
    assert!(r1_id.starts_with("sr-") && r1_id.len() == 15);
    assert_eq!((r1["version"].as_i64(), r1["stage"].as_str(), &r1["is_active"]), (Some(1), Some("canary"), &json!(true)));
    assert_eq!(
        (r1["release_mode"].as_str(), r1["promoted_by"].as_str(), r1["candidate_id"].as_str()),
        (Some("manual"), Some("skills-life-alice"), Some(c1_id.as_str()))
    );
    assert_eq!(r1["skill_key"], "csv-export");
    assert_eq!(r1.as_object().unwrap().len(), 19);
    assert_ts(&r1["promoted_at"]);
    let (_, c) = alice.get(&format!("/v1/skills/candidates/{c1_id}")).await;
    assert_eq!((c["status"].as_str(), c["promotion_release_id"].as_str()), (Some("promoted"), Some(r1_id.as_str())));

    // A second candidate promoted to stable → version 2; version 1 is deactivated.
    let (_, c2) = alice.post("/v1/skills/candidates", json!({"skill_key": "csv-export", "source_execution_ids": [exec2]})).await;
    let c2_id = c2["id"].as_str().unwrap().to_owned();
    alice.post(&format!("/v1/skills/candidates/{c2_id}/evaluate"), json!({"passed": true})).await;
    let (status, r2) = alice
        .post(
            &format!("/v1/skills/candidates/{c2_id}/promote"),
            json!({"stage": "stable", "upgrade_of_release_id": r1_id, "upgrade_reason": "faster", "change_summary": "v2"}),
        )
        .await;
    assert_eq!(status, 200, "{r2}");
    let r2_id = r2["id"].as_str().unwrap().to_owned();
    assert_eq!((r2["version"].as_i64(), r2["stage"].as_str()), (Some(2), Some("stable")));
    assert_eq!(
        (r2["upgrade_of_release_id"].as_str(), r2["upgrade_reason"].as_str(), r2["change_summary"].as_str()),
        (Some(r1_id.as_str()), Some("faster"), Some("v2"))
    );

    let (_, list) = alice.get("/v1/skills/releases?skill_key=csv-export").await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], r2_id.as_str(), "newest first");
    assert_eq!(list["items"][1]["is_active"], false);
    let (_, list) = alice.get("/v1/skills/releases?active_only=true").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["id"].as_str()), (Some(1), Some(r2_id.as_str())));
    let (_, list) = alice.get("/v1/skills/releases?stage=canary&limit=1").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["id"].as_str()), (Some(1), Some(r1_id.as_str())));
    let (_, list) = alice.get("/v1/skills/candidates?skill_key=csv-export&status=promoted").await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], c2_id.as_str(), "newest first");
    let (_, list) = alice.get("/v1/skills/candidates?limit=1&offset=1").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["id"].as_str()), (Some(2), Some(c1_id.as_str())));
    assert_eq!(bob.get("/v1/skills/releases").await.1, json!({"items": [], "total": 0}));
    assert_eq!(bob.get("/v1/skills/candidates").await.1, json!({"items": [], "total": 0}));

    // Release health from executions tagged with the release: one success,
    // one failure, against the previous candidate's report (no errors).
    let (status, h) = alice.get(&format!("/v1/skills/releases/{r2_id}/health")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!((h["samples"].as_i64(), &h["healthy"], &h["should_rollback"]), (Some(0), &json!(false), &json!(false)));
    let tags = format!("skill:csv-export,release:{r2_id}");
    for code in ["1+1", "1/0"] {
        let (status, r) = alice.post(&format!("/v1/sandboxes/{sandbox}/python/exec"), json!({"code": code, "tags": tags})).await;
        assert_eq!(status, 200, "{r}");
    }
    let (status, h) = alice.get(&format!("/v1/skills/releases/{r2_id}/health")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h.as_object().unwrap().len(), 19, "{h}");
    assert_eq!((h["release_id"].as_str(), h["skill_key"].as_str(), h["stage"].as_str()), (Some(r2_id.as_str()), Some("csv-export"), Some("stable")));
    assert_eq!(h["window_start_at"], r2["promoted_at"]);
    assert_ts(&h["window_end_at"]);
    assert_eq!(h["window_complete"], false);
    assert_eq!((h["samples"].as_i64(), h["success_rate"].as_f64(), h["error_rate"].as_f64()), (Some(2), Some(0.5), Some(0.5)));
    assert!(h["p95_duration"].as_i64().unwrap() >= 0);
    assert_eq!(
        (h["baseline_samples"].as_i64(), h["baseline_success_rate"].as_f64(), h["baseline_error_rate"].as_f64()),
        (Some(10), Some(1.0), Some(0.0))
    );
    assert_eq!((h["success_drop"].as_f64(), h["error_rate_multiplier"].as_f64()), (Some(0.5), Some(1_000_000.0)));
    assert_eq!(h["rollback_reasons"], json!(["success_rate_drop", "error_rate_regression"]));
    assert_eq!((&h["healthy"], &h["should_rollback"]), (&json!(false), &json!(true)));
    assert_eq!(h["thresholds"], json!({"success_drop": 0.03, "error_rate_multiplier": 2.0}));
    let (status, _) = bob.get(&format!("/v1/skills/releases/{r2_id}/health")).await;
    assert_eq!(status, 404);

    // An active release's candidate cannot be deleted.
    let (status, r) = delete(&alice, &format!("/v1/skills/candidates/{c2_id}"), Some(json!({}))).await;
    assert_eq!((status, code(&r), message(&r)), (409, "conflict", "Candidate referenced by active release cannot be deleted"));

    // Rollback: version 3 with the previous release's candidate and stage.
    let (status, _) = bob.post(&format!("/v1/skills/releases/{r2_id}/rollback"), json!(null)).await;
    assert_eq!(status, 404);
    let resp = alice.req(Method::POST, &format!("/v1/skills/releases/{r2_id}/rollback")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r3: Value = resp.json().await.unwrap();
    let r3_id = r3["id"].as_str().unwrap().to_owned();
    assert_eq!((r3["version"].as_i64(), r3["candidate_id"].as_str(), r3["stage"].as_str()), (Some(3), Some(c1_id.as_str()), Some("canary")));
    assert_eq!((r3["rollback_of"].as_str(), &r3["is_active"], r3["release_mode"].as_str()), (Some(r2_id.as_str()), &json!(true), Some("manual")));
    assert_eq!(alice.get(&format!("/v1/skills/candidates/{c2_id}")).await.1["status"], "rolled_back");
    let (_, list) = alice.get("/v1/skills/releases?active_only=1").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["id"].as_str()), (Some(1), Some(r3_id.as_str())));
    let (status, r) = alice.post(&format!("/v1/skills/releases/{r1_id}/rollback"), json!(null)).await;
    assert_eq!((status, message(&r)), (409, "Rollback is unavailable: no previous release exists"));
    assert_eq!(r["error"]["details"]["release_id"], r1_id.as_str());

    // Soft deletes, with and without a reason.
    let (status, _) = delete(&bob, &format!("/v1/skills/releases/{r3_id}"), Some(json!({}))).await;
    assert_eq!(status, 404);
    let (status, d) = delete(&alice, &format!("/v1/skills/releases/{r3_id}"), Some(json!({"reason": "superseded"}))).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["id"].as_str(), d["deleted_by"].as_str(), d["delete_reason"].as_str()),
        (Some(r3_id.as_str()), Some("skills-life-alice"), Some("superseded"))
    );
    assert_eq!(d.as_object().unwrap().len(), 4);
    assert_ts(&d["deleted_at"]);
    let (status, _) = delete(&alice, &format!("/v1/skills/releases/{r3_id}"), Some(json!({}))).await;
    assert_eq!(status, 404, "already deleted");
    let (status, _) = alice.get(&format!("/v1/skills/releases/{r3_id}/health")).await;
    assert_eq!(status, 404);
    let (_, list) = alice.get("/v1/skills/releases").await;
    assert_eq!(list["total"], 2);
    assert_eq!(alice.get("/v1/skills/releases?active_only=true").await.1["total"], 0);

    // Deleting the release that a candidate points at clears the pointer.
    let (status, _) = delete(&alice, &format!("/v1/skills/releases/{r2_id}"), None).await;
    assert_eq!(status, 200);
    assert!(alice.get(&format!("/v1/skills/candidates/{c2_id}")).await.1["promotion_release_id"].is_null());

    let (status, d) = delete(&alice, &format!("/v1/skills/candidates/{c2_id}"), Some(json!({}))).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!((d["id"].as_str(), d["deleted_by"].as_str(), &d["delete_reason"]), (Some(c2_id.as_str()), Some("skills-life-alice"), &Value::Null));
    let (status, _) = alice.get(&format!("/v1/skills/candidates/{c2_id}")).await;
    assert_eq!(status, 404);
    let (_, list) = alice.get("/v1/skills/candidates").await;
    assert_eq!((list["total"].as_i64(), list["items"][0]["id"].as_str()), (Some(1), Some(c1_id.as_str())));

    alice.delete_sandbox(&sandbox).await;
}
