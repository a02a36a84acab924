//! The browser runtime (Gull: agent-browser over Debian Chromium) next to Ship
//! in one `browser-python` sandbox: a page Ship serves, driven by refs from a
//! snapshot, a screenshot read back through the filesystem API and Python,
//! the batch contract, traces, history, and browser state kept on the cargo.

use bay_tests::{Client, engine, strict};
use serde_json::{Value, json};

const PAGE: &str = r#"<!doctype html>
<html><head><title>Bay test page</title></head><body>
<label for="name">Name</label> <input id="name" aria-label="Name">
<button onclick="var v = document.getElementById('name').value; document.title = 'Hello ' + v; localStorage.setItem('greeted', v)">Greet</button>
</body></html>
"#;

pub(crate) async fn browser(c: &Client, id: &str, cmd: &str) -> Value {
    let (status, r) = c.post(&format!("/v1/sandboxes/{id}/browser/exec"), json!({"cmd": cmd, "timeout": 60})).await;
    assert_eq!(status, 200, "{cmd}: {r}");
    r
}

pub(crate) async fn ok(c: &Client, id: &str, cmd: &str) -> String {
    let r = browser(c, id, cmd).await;
    assert!(r["success"] == true && r["exit_code"] == 0, "{cmd}: {r}");
    r["output"].as_str().unwrap_or_default().to_owned()
}

/// `- textbox "Name" [ref=e1]` → `@e1` for the first line with `role`.
fn ref_of(snapshot: &str, role: &str) -> String {
    let line = snapshot.lines().find(|l| l.contains(role)).unwrap_or_else(|| panic!("no {role} in snapshot:\n{snapshot}"));
    let start = line.find("ref=").expect("a ref") + 4;
    let end = line[start..].find(']').map(|e| start + e).unwrap_or(line.len());
    format!("@{}", &line[start..end])
}

/// Serves `page.html` from /workspace in Ship on port 8000 (reached as
/// `http://ship:8000` from the browser container).
async fn serve_page(c: &Client, id: &str) {
    let r = c.shell(id, "nohup python3 -m http.server 8000 --directory /workspace >/dev/null 2>&1 & for i in $(seq 50); do curl -sf http://127.0.0.1:8000/page.html >/dev/null && break; sleep 0.1; done; echo up").await;
    assert_eq!(r["exit_code"], 0, "{r}");
}

#[tokio::test]
async fn drives_a_page_served_by_ship_and_keeps_state_on_the_cargo() {
    let c = strict().client();
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "browser-python"})).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["capabilities"], json!(["browser", "filesystem", "python", "shell"]));
    let (status, _) = c
        .req(reqwest::Method::PUT, &format!("/v1/sandboxes/{id}/filesystem/files"))
        .json(&json!({"path": "page.html", "content": PAGE}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 200);
    serve_page(&c, &id).await;

    ok(&c, &id, "open http://ship:8000/page.html").await;
    assert_eq!(ok(&c, &id, "get title").await.trim(), "Bay test page");
    let snapshot = ok(&c, &id, "snapshot -i").await;
    let (textbox, button) = (ref_of(&snapshot, "textbox"), ref_of(&snapshot, "button"));
    ok(&c, &id, &format!("fill {textbox} \"Ada Lovelace\"")).await;
    ok(&c, &id, &format!("click {button}")).await;
    assert_eq!(ok(&c, &id, "get title").await.trim(), "Hello Ada Lovelace");

    // A screenshot lands in the shared workspace: download it through the
    // filesystem API, and read its size in Python.
    ok(&c, &id, "screenshot /workspace/shot.png").await;
    let png = c.req(reqwest::Method::GET, &format!("/v1/sandboxes/{id}/filesystem/download?path=shot.png")).send().await.unwrap();
    assert_eq!(png.status(), 200);
    let png = png.bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {} bytes", png.len());
    let r = c.python(&id, "import struct\nw, h = struct.unpack('>II', open('shot.png','rb').read()[16:24])\nprint(w, h)", 30).await;
    let size: Vec<u32> = r["output"].as_str().unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(size[0] >= 320 && size[1] >= 200, "{r}");

    // A trace is stored on request and readable by its ref.
    let (_, r) = c.post(&format!("/v1/sandboxes/{id}/browser/exec"), json!({"cmd": "get title", "include_trace": true})).await;
    let trace_ref = r["trace_ref"].as_str().expect("trace_ref").to_owned();
    let (status, t) = c.get(&format!("/v1/sandboxes/{id}/browser/traces/{trace_ref}")).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["trace"]["steps"][0]["cmd"], "get title", "{t}");
    let (_, h) = c.get(&format!("/v1/sandboxes/{id}/history?exec_type=browser&limit=100")).await;
    assert!(h["total"].as_u64().unwrap() >= 7, "{h}");

    // GET lists both containers, healthy, with versions.
    let (_, g) = c.get(&format!("/v1/sandboxes/{id}")).await;
    let containers = g["containers"].as_array().unwrap();
    let names: Vec<&str> = containers.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ship", "browser"], "{g}");
    assert!(containers.iter().all(|c| c["healthy"] == true && c["version"].is_string()), "{g}");
    assert_eq!(containers[1]["runtime_type"], "gull", "{g}");

    // Stop removes both containers; the profile lives on the cargo, so the
    // localStorage value is still there in a new browser.
    c.post(&format!("/v1/sandboxes/{id}/stop"), json!(null)).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    serve_page(&c, &id).await;
    ok(&c, &id, "open http://ship:8000/page.html").await;
    let kept = ok(&c, &id, "eval \"localStorage.getItem('greeted')\"").await;
    assert!(kept.contains("Ada Lovelace"), "{kept}");
    c.delete_sandbox(&id).await;
}

#[tokio::test]
async fn a_batch_stops_at_the_first_failure_and_reports_it() {
    let c = strict().client();
    let id = {
        let (_, s) = c.post("/v1/sandboxes", json!({"profile": "browser-python"})).await;
        s["id"].as_str().unwrap().to_owned()
    };
    let path = format!("/v1/sandboxes/{id}/browser/exec_batch");
    let (status, r) = c.post(&path, json!({"commands": ["open about:blank", "no-such-subcommand", "get title"], "timeout": 120})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!((r["total_steps"].as_u64(), r["completed_steps"].as_u64(), r["success"].as_bool()), (Some(3), Some(2), Some(false)), "{r}");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["exit_code"], 0, "{r}");
    assert_eq!(results[1]["cmd"], "no-such-subcommand");
    assert_ne!(results[1]["exit_code"], 0);
    let (_, e) = c.get(&format!("/v1/sandboxes/{id}/history/{}", r["execution_id"].as_str().unwrap())).await;
    assert_eq!(e["exec_type"], "browser_batch", "{e}");
    assert_eq!(e["success"], false, "{e}");

    // Without stop_on_error every step runs.
    let (_, r) = c.post(&path, json!({"commands": ["no-such-subcommand", "get title"], "stop_on_error": false})).await;
    assert_eq!((r["total_steps"].as_u64(), r["completed_steps"].as_u64()), (Some(2), Some(2)), "{r}");
    c.delete_sandbox(&id).await;
}
