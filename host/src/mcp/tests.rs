//! The MCP endpoint end to end inside the process: JSON-RPC over HTTP into
//! `/mcp`, tools calling the real REST router, a real lifecycle on the
//! in-memory driver with fake runtimes (`crate::sandbox::testing`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{self, AppState};
use crate::auth::{Auth, hash_key};
use crate::gc::Gc;
use crate::idempotency::Idempotency;
use crate::sandbox::testing::{self, Harness};

const KEY: &str = "sk-unit-mcp";

/// Every tool: Shipyard Neo's 27, then Bay's additions.
const TOOLS: [&str; 38] = [
    "create_sandbox",
    "delete_sandbox",
    "execute_python",
    "execute_shell",
    "read_file",
    "write_file",
    "list_files",
    "delete_file",
    "upload_file",
    "download_file",
    "get_execution_history",
    "get_execution",
    "get_last_execution",
    "annotate_execution",
    "create_skill_payload",
    "get_skill_payload",
    "create_skill_candidate",
    "evaluate_skill_candidate",
    "promote_skill_candidate",
    "list_skill_candidates",
    "list_skill_releases",
    "delete_skill_release",
    "delete_skill_candidate",
    "rollback_skill_release",
    "execute_browser",
    "execute_browser_batch",
    "list_profiles",
    "stop_sandbox",
    "pause_sandbox",
    "resume_sandbox",
    "preview_port",
    "keepalive_sandbox",
    "extend_ttl",
    "get_sandbox",
    "list_sandboxes",
    "create_cargo",
    "list_cargos",
    "delete_cargo",
];

/// Bay's router with `/mcp`, over a test lifecycle.
async fn app(anonymous: bool) -> (Router, Harness) {
    let h = Harness::new(testing::config("")).await;
    let key = crate::db::api_keys::ActiveKey { id: "k1".into(), key_hash: hash_key(KEY), owner: "default".into(), scopes: "admin".into() };
    let auth = Arc::new(Auth::new(vec![key], anonymous, true));
    let limits = Arc::new(h.config.limits.clone());
    let state = AppState {
        auth: auth.clone(),
        sandboxes: h.manager.clone(),
        idempotency: Idempotency::new(h.manager.db().clone(), &h.config.idempotency),
        gc: Gc::new(h.config.gc.clone(), h.manager.clone()),
        limits: limits.clone(),
        previews: Arc::new(crate::preview::PreviewSigner::load(h.manager.db()).await.unwrap()),
    };
    (super::mount(api::router(state), auth, limits), h)
}

/// One JSON-RPC request to `/mcp` with these extra headers: `(status, body, x-request-id)`.
async fn rpc(app: &Router, headers: &[(&str, &str)], method: &str, params: Value) -> (StatusCode, Value, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = Request::post(super::PATH)
        .header("host", "bay.example:8114")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())), id)
}

const BEARER: (&str, &str) = ("authorization", "Bearer sk-unit-mcp");

/// `tools/call`: (text of every content block, isError).
async fn call(app: &Router, headers: &[(&str, &str)], tool: &str, args: Value) -> (Vec<String>, bool) {
    let (status, body, _) = rpc(app, headers, "tools/call", json!({"name": tool, "arguments": args})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    let texts =
        result["content"].as_array().unwrap_or_else(|| panic!("{body}")).iter().filter_map(|c| c["text"].as_str().map(str::to_owned)).collect();
    (texts, result["isError"].as_bool().unwrap_or(false))
}

/// The sandbox id in create_sandbox's text.
fn sandbox_id(text: &str) -> String {
    let start = text.find("`sandbox-").expect(text) + 1;
    text[start..].split('`').next().unwrap().to_owned()
}

#[tokio::test]
async fn initialize_and_tool_list_publish_every_tool_with_its_schema() {
    let (app, _h) = app(false).await;
    let (status, init, _) = rpc(
        &app,
        &[BEARER],
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "unit", "version": "1"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "bay");
    assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");

    let (status, list, _) = rpc(&app, &[BEARER], "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let tools = list["result"]["tools"].as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected = TOOLS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap().clone();
    for t in tools {
        assert!(t["description"].as_str().is_some_and(|d| d.len() > 20), "{t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let py = tool("execute_python");
    let mut required: Vec<&str> = py["inputSchema"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    required.sort();
    assert_eq!(required, ["code", "sandbox_id"]);
    let timeout = &py["inputSchema"]["properties"]["timeout"];
    assert_eq!((timeout["minimum"].as_i64(), timeout["maximum"].as_i64(), timeout["default"].as_i64()), (Some(1), Some(300), Some(30)), "{timeout}");
    assert_eq!(tool("execute_browser_batch")["inputSchema"]["properties"]["timeout"]["maximum"], 600);
    let upload = tool("upload_file");
    assert!(upload["inputSchema"]["properties"]["content_base64"].is_object(), "{upload}");
    assert!(upload["inputSchema"]["properties"].get("local_path").is_none());
    assert!(upload["description"].as_str().unwrap().contains("base64"));
    assert!(tool("create_skill_payload")["inputSchema"]["properties"]["payload"]["anyOf"].is_array());
    assert_eq!(tool("list_profiles")["inputSchema"]["type"], "object");
}

#[tokio::test]
async fn tool_calls_run_through_the_rest_api() {
    let (app, h) = app(false).await;
    let (texts, err) = call(&app, &[BEARER], "create_sandbox", json!({})).await;
    assert!(!err && texts[0].starts_with("Sandbox created successfully."), "{texts:?}");
    assert!(texts[0].contains("**Profile:** python-default") && texts[0].contains("**TTL:** 3600 seconds"), "{texts:?}");
    let id = sandbox_id(&texts[0]);

    let (texts, err) = call(&app, &[BEARER, ("x-request-id", "mcp-unit-1")], "execute_python", json!({"sandbox_id": id, "code": "print(1)"})).await;
    assert!(!err, "{texts:?}");
    assert!(texts[0].starts_with("**Execution successful**\n\n```\n") && texts[0].contains("ran print(1)"), "{texts:?}");
    assert!(texts[0].contains("\n\nexecution_id: exec-"), "{texts:?}");

    // The REST handler wrote the history row, under the caller's owner.
    let (texts, _) = call(&app, &[BEARER], "get_last_execution", json!({"sandbox_id": id})).await;
    assert!(texts[0].contains("type: python\nsuccess: True") && texts[0].ends_with("code:\nprint(1)"), "{texts:?}");
    let sandbox = h.manager.find_for_call("default", &id).await.expect("owned by the key's owner");
    assert_eq!(sandbox.id, id);

    // Errors come back as text, REST's code and message included.
    let (texts, err) = call(&app, &[BEARER], "execute_python", json!({"sandbox_id": "sandbox-000000000000", "code": "1"})).await;
    assert!(err && texts[0].starts_with("**API Error:** [not_found] "), "{texts:?}");
    let (texts, err) = call(&app, &[BEARER], "read_file", json!({"sandbox_id": "../x", "path": "a"})).await;
    assert!(err && texts[0].starts_with("**Validation Error:** invalid sandbox_id format"), "{texts:?}");
    let (texts, err) = call(&app, &[BEARER], "execute_python", json!({"sandbox_id": id})).await;
    assert!(err && texts[0].starts_with("**Validation Error:** ") && texts[0].contains("code"), "{texts:?}");
    let (texts, err) = call(&app, &[BEARER], "execute_python", json!({"sandbox_id": id, "code": "1", "timeout": 301})).await;
    assert_eq!((texts[0].as_str(), err), ("**Validation Error:** field 'timeout' must be <= 300", true));
    let (texts, err) = call(&app, &[BEARER], "no_such_tool", json!({})).await;
    assert_eq!((texts[0].as_str(), err), ("Unknown tool: no_such_tool", true));

    let (texts, err) = call(&app, &[BEARER], "delete_sandbox", json!({"sandbox_id": id})).await;
    assert_eq!((texts[0].clone(), err), (format!("Sandbox `{id}` deleted successfully."), false));
    let (texts, _) = call(&app, &[BEARER], "get_sandbox", json!({"sandbox_id": id})).await;
    assert!(texts[0].starts_with("**API Error:** [not_found]"), "{texts:?}");
}

#[tokio::test]
async fn mcp_has_rests_head_limits() {
    let (app, _h) = app(false).await;
    // Over `limits.header_bytes` (64 KiB): the 431 envelope, not rmcp's answer.
    let big = "x".repeat(70 << 10);
    let (status, body, id) = rpc(&app, &[BEARER, ("x-padding", &big)], "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");
    assert_eq!(body["error"]["request_id"], id.as_str(), "{body}");
}

#[tokio::test]
async fn mcp_authenticates_like_rest() {
    let (app, _h) = app(false).await;
    for headers in [vec![], vec![("authorization", "Bearer sk-wrong")], vec![("x-owner", "alice")]] {
        let (status, body, id) = rpc(&app, &headers, "tools/list", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert!(!id.is_empty() && body["error"]["request_id"] == id.as_str(), "{body}");
    }
}

#[tokio::test]
async fn anonymous_owners_are_isolated_as_in_rest() {
    let (app, _h) = app(true).await;
    let alice = [("x-owner", "alice")];
    let (texts, _) = call(&app, &alice, "create_sandbox", json!({"ttl": 0})).await;
    let id = sandbox_id(&texts[0]);
    let (texts, err) = call(&app, &[("x-owner", "bob")], "get_sandbox", json!({"sandbox_id": id})).await;
    assert!(err && texts[0].starts_with("**API Error:** [not_found]"), "{texts:?}");
    let (texts, err) = call(&app, &alice, "list_sandboxes", json!({})).await;
    assert!(!err && texts[0].contains(&id) && texts[0].contains("expires_at=None"), "{texts:?}");
    // A wrong key is refused even in anonymous mode, as REST does.
    let (status, _, _) = rpc(&app, &[("authorization", "Bearer nope")], "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
