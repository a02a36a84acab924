//! Bay's MCP endpoint (`/mcp`, host/src/mcp/) on a real Bay and Docker engine,
//! spoken as plain JSON-RPC over HTTP. The official Python client drives the
//! same endpoint in tests/mcp/ (`./dev test` runs both).

use bay_tests::{Client, strict};
use serde_json::{Value, json};

/// One JSON-RPC request to `/mcp`: (HTTP status, body).
async fn rpc(c: &Client, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = c
        .req(reqwest::Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /mcp");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `tools/call`: the first text block, and whether it is an error.
async fn call(c: &Client, tool: &str, args: Value) -> (String, bool) {
    let (status, body) = rpc(c, "tools/call", json!({"name": tool, "arguments": args})).await;
    assert_eq!(status, 200, "{body}");
    (body["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned(), body["result"]["isError"] == true)
}

#[tokio::test]
async fn mcp_tools_drive_a_real_sandbox() {
    let c = strict().client();
    let (status, init) =
        rpc(&c, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}})).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "bay");
    let (_, list) = rpc(&c, "tools/list", json!({})).await;
    assert_eq!(list["result"]["tools"].as_array().map(Vec::len), Some(38), "{list}");

    let (text, err) = call(&c, "create_sandbox", json!({"ttl": 600})).await;
    assert!(!err, "{text}");
    let id = text.split('`').nth(1).unwrap().to_owned();
    assert!(id.starts_with("sandbox-"), "{text}");
    // The sandbox is the key's, visible through REST.
    let (status, sb) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!((status, sb["profile"].as_str()), (200, Some("python-default")), "{sb}");

    let (text, err) = call(&c, "execute_python", json!({"sandbox_id": id, "code": "print(sum(range(10)))"})).await;
    assert!(!err && text.starts_with("**Execution successful**\n\n```\n45\n```"), "{text}");
    let (text, err) = call(&c, "write_file", json!({"sandbox_id": id, "path": "a/b.txt", "content": "héllo"})).await;
    assert_eq!((text.as_str(), err), ("File `a/b.txt` written successfully (6 bytes).", false));
    let (text, _) = call(&c, "execute_shell", json!({"sandbox_id": id, "command": "cat a/b.txt"})).await;
    assert!(text.starts_with("**Command successful** (exit code: 0)\n\n```\nhéllo\n```"), "{text}");
    let (text, _) = call(&c, "read_file", json!({"sandbox_id": id, "path": "a/b.txt"})).await;
    assert_eq!(text, "**File: a/b.txt**\n\n```\nhéllo\n```");
    let (text, err) = call(&c, "execute_shell", json!({"sandbox_id": id, "command": "ls nope"})).await;
    assert!(!err && text.starts_with("**Command failed** (exit code: 2)") && text.contains("\n\nstderr:\n"), "{text}");

    // Pause keeps the kernel's state; the next call resumes it.
    call(&c, "execute_python", json!({"sandbox_id": id, "code": "kept = 7"})).await;
    let (text, err) = call(&c, "pause_sandbox", json!({"sandbox_id": id})).await;
    assert!(!err && text.contains("paused"), "{text}");
    assert_eq!(c.get(&format!("/v1/sandboxes/{id}")).await.1["status"], "paused");
    let (text, err) = call(&c, "resume_sandbox", json!({"sandbox_id": id})).await;
    assert!(!err && text.ends_with("**Status:** ready"), "{text}");
    let (text, _) = call(&c, "execute_python", json!({"sandbox_id": id, "code": "print(kept * 6)"})).await;
    assert!(text.contains("42"), "{text}");

    // A preview URL names this Bay and works without a key (docs/previews.md).
    let (text, err) = call(&c, "preview_port", json!({"sandbox_id": id, "port": 70000})).await;
    assert!(err && text.contains("port"), "{text}");
    let (text, err) = call(&c, "preview_port", json!({"sandbox_id": id, "port": 8000, "ttl_seconds": 60})).await;
    let prefix = format!("{}/v1/sandboxes/{id}/ports/8000/?bay_token=bpv1.", c.base);
    assert!(!err && text.contains(&prefix), "{text}");

    let (text, err) = call(&c, "stop_sandbox", json!({"sandbox_id": id})).await;
    assert!(!err, "{text}");
    let (text, _) = call(&c, "read_file", json!({"sandbox_id": id, "path": "a/b.txt"})).await;
    assert!(text.contains("héllo"), "files survive a stop: {text}");

    let (text, err) = call(&c, "delete_sandbox", json!({"sandbox_id": id})).await;
    assert_eq!((text, err), (format!("Sandbox `{id}` deleted successfully."), false));
    let (status, _) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn mcp_refuses_a_wrong_key_like_rest() {
    let mut c = strict().client();
    c.auth = Some(("authorization".into(), "Bearer sk-wrong".into()));
    let (status, body) = rpc(&c, "tools/list", json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
}
