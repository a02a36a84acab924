//! Cargos, idempotency, TTL, history and admin GC (Shipyard Neo's contract, docs/compatibility.md).

use bay_tests::{engine, strict};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn external_cargos_are_shared_and_protected() {
    let c = strict().client();
    let (status, cargo) = c.post("/v1/cargos", json!({"size_limit_mb": 256})).await;
    assert_eq!(status, 201, "{cargo}");
    let cid = cargo["id"].as_str().unwrap().to_owned();
    assert!(cid.starts_with("ws-"));
    assert_eq!(cargo["managed"], false);
    assert_eq!(cargo["backend"], "docker_volume");
    assert_eq!(cargo["size_limit_mb"], 256);
    assert!(cargo["managed_by_sandbox_id"].is_null());
    assert!(engine::volume_exists(&format!("bay-cargo-{cid}")));
    let (status, _) = c.post("/v1/cargos", json!({"size_limit_mb": 0})).await;
    assert_eq!(status, 422);
    // No body at all is the default size.
    let resp = c.req(Method::POST, "/v1/cargos").send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let other: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(other["size_limit_mb"], 1024);

    // Two sandboxes on one cargo see the same files.
    let (_, a) = c.post("/v1/sandboxes", json!({"cargo_id": cid})).await;
    let (_, b) = c.post("/v1/sandboxes", json!({"cargo_id": cid})).await;
    let (a, b) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    c.shell(&a, "echo shared > s.txt").await;
    assert_eq!(c.shell(&b, "cat s.txt").await["output"], "shared");

    // Listing: external by default, managed on request; paginated by id.
    let (_, l) = c.get("/v1/cargos?limit=200").await;
    let ids: Vec<&str> = l["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&cid.as_str()));
    assert!(l["items"].as_array().unwrap().iter().all(|i| i["managed"] == false));
    let (_, m) = c.get("/v1/cargos?managed=true&limit=200").await;
    assert!(m["items"].as_array().unwrap().iter().all(|i| i["managed"] == true));
    let (_, p1) = c.get("/v1/cargos?limit=1").await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let cursor = p1["next_cursor"].as_str().expect("a second page exists").to_owned();
    let (_, p2) = c.get(&format!("/v1/cargos?limit=1&cursor={cursor}")).await;
    assert!(p2["items"][0]["id"].as_str().unwrap() > cursor.as_str());

    // In use → 409 with the sandboxes; deleting a sandbox never deletes an external cargo.
    let (status, r) = c.json(Method::DELETE, &format!("/v1/cargos/{cid}"), None).await;
    assert_eq!(status, 409, "{r}");
    let mut active: Vec<String> = serde_json::from_value(r["error"]["details"]["active_sandbox_ids"].clone()).unwrap();
    active.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(active, expected);
    c.delete_sandbox(&a).await;
    c.delete_sandbox(&b).await;
    assert!(engine::volume_exists(&format!("bay-cargo-{cid}")));
    let (status, _) = c.json(Method::DELETE, &format!("/v1/cargos/{cid}"), None).await;
    assert_eq!(status, 204);
    assert!(!engine::volume_exists(&format!("bay-cargo-{cid}")));
    let (status, _) = c.get(&format!("/v1/cargos/{cid}")).await;
    assert_eq!(status, 404);
    c.json(Method::DELETE, &format!("/v1/cargos/{}", other["id"].as_str().unwrap()), None).await;

    // A managed cargo cannot be deleted while its sandbox lives.
    let (_, s) = c.post("/v1/sandboxes", json!({})).await;
    let (status, r) = c.json(Method::DELETE, &format!("/v1/cargos/{}", s["cargo_id"].as_str().unwrap()), None).await;
    assert_eq!(status, 409);
    assert_eq!(r["error"]["details"]["managed_by_sandbox_id"], s["id"]);
    c.delete_sandbox(s["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn idempotent_create_replays_byte_for_byte() {
    let c = strict().client();
    let send = |key: &str, body: serde_json::Value| c.req(Method::POST, "/v1/sandboxes").header("idempotency-key", key).json(&body).send();
    let key = format!("e2e-{}", rand::random::<u32>());
    let first = send(&key, json!({})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    // `{}` and the explicit defaults are the same request.
    let again = send(&key, json!({"profile": "python-default"})).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.text().await.unwrap(), first);
    let different = send(&key, json!({"ttl": 60})).await.unwrap();
    assert_eq!(different.status(), 409);
    let r: serde_json::Value = different.json().await.unwrap();
    assert_eq!(r["error"]["details"]["key"], key.as_str());
    let id = serde_json::from_str::<serde_json::Value>(&first).unwrap()["id"].as_str().unwrap().to_owned();
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn fifty_parallel_creates_with_one_key_make_one_sandbox() {
    let c = strict().client();
    let key = format!("e2e-par-{}", rand::random::<u32>());
    let calls = (0..50).map(|_| {
        let c = &c;
        let key = &key;
        async move {
            let resp = c.req(Method::POST, "/v1/sandboxes").header("idempotency-key", key).json(&json!({"ttl": 600})).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    });
    let results = futures::future::join_all(calls).await;
    let bodies: std::collections::HashSet<&String> = results.iter().map(|(_, b)| b).collect();
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert_eq!(bodies.len(), 1, "every duplicate replays the one response");
    let id = serde_json::from_str::<serde_json::Value>(results[0].1.as_str()).unwrap()["id"].as_str().unwrap().to_owned();
    let (_, list) = c.get("/v1/sandboxes?limit=200").await;
    let mine = list["items"].as_array().unwrap().iter().filter(|s| s["id"] == id.as_str()).count();
    assert_eq!(mine, 1);
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn extend_ttl_moves_the_expiry_and_is_idempotent() {
    let c = strict().client();
    let (_, s) = c.post("/v1/sandboxes", json!({"ttl": 600})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let before = s["expires_at"].as_str().unwrap().to_owned();
    let send = |key: &'static str| {
        c.req(Method::POST, &format!("/v1/sandboxes/{id}/extend_ttl")).header("idempotency-key", key).json(&json!({"extend_by": 120})).send()
    };
    let r1 = send("ttl-once").await.unwrap().text().await.unwrap();
    let r2 = send("ttl-once").await.unwrap().text().await.unwrap();
    assert_eq!(r1, r2, "the replay does not extend twice");
    let v: serde_json::Value = serde_json::from_str(&r1).unwrap();
    assert!(v["expires_at"].as_str().unwrap() > before.as_str());
    assert_eq!(v["status"], "idle");
    let (_, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(g["expires_at"], v["expires_at"]);
    // keepalive refreshes the idle deadline only.
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/keepalive"), json!(null)).await;
    assert_eq!((status, r), (200, json!({"status": "ok"})));
    let (_, g2) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(g2["expires_at"], v["expires_at"]);
    assert!(g2["idle_expires_at"].is_string());
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn execution_history_filters_and_annotations() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    let exec = |code: &'static str, tags: Option<&'static str>, desc: Option<&'static str>| {
        let (c, path) = (&c, format!("/v1/sandboxes/{id}/python/exec"));
        async move { c.post(&path, json!({"code": code, "tags": tags, "description": desc})).await }
    };
    let (_, ok) = exec("1 + 1", Some(" b, a ,a"), Some("sum")).await;
    let (_, bad) = exec("1 / 0", None, None).await;
    let (_, sh) = c.post(&format!("/v1/sandboxes/{id}/shell/exec"), json!({"command": "echo hi", "tags": "shelly"})).await;

    let (status, h) = c.get(&format!("/v1/sandboxes/{id}/history")).await;
    assert_eq!(status, 200);
    assert_eq!(h["total"], 3);
    let entries = h["entries"].as_array().unwrap();
    assert_eq!(entries[0]["id"], sh["execution_id"], "newest first");
    assert_eq!(entries[2]["tags"], "a,b", "tags are normalised");
    assert_eq!(entries[2]["code"], "1 + 1");
    assert_eq!(entries[2]["output"], "2");
    assert_eq!(entries[2]["learn_enabled"], false);
    assert!(entries[2]["learn_status"].is_null());
    let q = |query: &str| {
        let (c, path) = (&c, format!("/v1/sandboxes/{id}/history?{query}"));
        async move { c.get(&path).await }
    };
    assert_eq!(q("exec_type=shell").await.1["total"], 1);
    assert_eq!(q("success_only=true").await.1["total"], 2);
    assert_eq!(q("tags=A").await.1["total"], 1);
    assert_eq!(q("tags=shelly,b").await.1["total"], 2);
    assert_eq!(q("has_description=true").await.1["total"], 1);
    assert_eq!(q("limit=1&offset=1").await.1["entries"][0]["id"], bad["execution_id"]);
    assert_eq!(q("exec_type=ruby").await.0, 422);
    assert_eq!(q("limit=501").await.0, 422);

    let (status, last) = c.get(&format!("/v1/sandboxes/{id}/history/last?exec_type=python")).await;
    assert_eq!(status, 200);
    assert_eq!(last["id"], bad["execution_id"]);
    assert_eq!(last["success"], false);
    let eid = ok["execution_id"].as_str().unwrap();
    let (status, one) = c.get(&format!("/v1/sandboxes/{id}/history/{eid}")).await;
    assert_eq!((status, &one["description"]), (200, &json!("sum")));
    let (status, patched) =
        c.json(Method::PATCH, &format!("/v1/sandboxes/{id}/history/{eid}"), Some(json!({"notes": "worked", "tags": "z, y"}))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["notes"], "worked");
    assert_eq!(patched["tags"], "y,z");
    assert_eq!(patched["description"], "sum", "fields not given are kept");
    assert_eq!(q("has_notes=true").await.1["total"], 1);
    let (status, r) = c.get(&format!("/v1/sandboxes/{id}/history/exec-000000000000")).await;
    assert_eq!((status, r["error"]["code"].as_str()), (404, Some("not_found")));

    // A fresh sandbox has no last execution.
    let other = c.create_sandbox().await;
    let (status, r) = c.get(&format!("/v1/sandboxes/{other}/history/last")).await;
    assert_eq!(status, 404);
    assert_eq!(r["error"]["message"], "No execution history found");
    // Executions are per sandbox.
    let (status, _) = c.get(&format!("/v1/sandboxes/{other}/history/{eid}")).await;
    assert_eq!(status, 404);
    c.delete_sandbox(&id).await;
    c.delete_sandbox(&other).await;
}

#[tokio::test]
async fn admin_gc_reclaims_idle_sessions_and_expired_sandboxes() {
    let c = strict().client();
    let (status, st) = c.get("/v1/admin/gc/status").await;
    assert_eq!(status, 200);
    assert_eq!(st["instance_id"], strict().instance_id.as_str());
    assert_eq!(st["tasks"]["idle_session"]["enabled"], true);
    assert_eq!(st["tasks"]["orphan_container"]["enabled"], false);
    assert!(st["is_running"].is_boolean() && st["interval_seconds"].is_u64());

    let (_, idle) = c.post("/v1/sandboxes", json!({"profile": "quick-idle"})).await;
    let idle = idle["id"].as_str().unwrap().to_owned();
    c.shell(&idle, "echo kept > f").await;
    let (_, exp) = c.post("/v1/sandboxes", json!({"ttl": 1})).await;
    let exp_id = exp["id"].as_str().unwrap().to_owned();
    let volume = format!("bay-cargo-{}", exp["cargo_id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;

    let (status, r) = c.post("/v1/admin/gc/run", json!({"tasks": ["idle_session", "expired_sandbox"]})).await;
    assert_eq!(status, 200, "{r}");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(r["total_cleaned"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["duration_ms"].is_u64());
    for t in results {
        assert!(t["cleaned_count"].is_u64() && t["skipped_count"].is_u64() && t["errors"].is_array());
    }
    // The idle sandbox lost its container but kept its files.
    assert!(engine::containers_with("bay.sandbox_id", &idle).is_empty());
    let (_, g) = c.get(&format!("/v1/sandboxes/{idle}")).await;
    assert_eq!(g["status"], "idle");
    assert_eq!(c.shell(&idle, "cat f").await["output"], "kept");
    // The expired one is gone, with its container and volume.
    let (status, _) = c.get(&format!("/v1/sandboxes/{exp_id}")).await;
    assert_eq!(status, 404);
    assert!(engine::containers_with("bay.sandbox_id", &exp_id).is_empty());
    assert!(!engine::volume_exists(&volume));
    c.delete_sandbox(&idle).await;
}
