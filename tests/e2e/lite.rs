//! The plugin tutorial's example runtime (`runtimes/lite` + the
//! `plugins/lite-adapter` component): a runtime type added with a plugin and
//! a profile, no change to Bay.

use bay_tests::strict;
use serde_json::json;

#[tokio::test]
async fn the_tutorial_runtime_serves_shell_and_files() {
    let c = strict().client();
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "lite"})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["capabilities"], json!(["shell", "filesystem"]));

    let r = c.shell(&id, "echo out; echo err >&2; exit 3").await;
    assert_eq!((r["exit_code"].as_i64(), r["success"].as_bool()), (Some(3), Some(false)), "{r}");
    assert!(r["output"].as_str().unwrap().contains("out"), "{r}");

    let files = format!("/v1/sandboxes/{id}/filesystem/files");
    let resp = c.req(reqwest::Method::PUT, &files).json(&json!({"path": "notes/a.txt", "content": "lite"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (status, r) = c.get(&format!("{files}?path=notes/a.txt")).await;
    assert_eq!((status, r["content"].as_str()), (200, Some("lite")), "{r}");
    assert_eq!(c.shell(&id, "cat notes/a.txt").await["output"].as_str().map(str::trim), Some("lite"));
    let (status, r) = c.get(&format!("{files}?path=notes/missing.txt")).await;
    assert_eq!(status, 404, "{r}");

    // What the adapter does not declare is refused before any call.
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": "1"})).await;
    assert_eq!((status, r["error"]["code"].as_str()), (400, Some("capability_not_supported")), "{r}");
    let (_, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    assert_eq!(g["containers"][0]["version"], "0.2.0", "{g}");
    c.delete_sandbox(&id).await;
}
