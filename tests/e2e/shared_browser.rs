//! The shared browser service (`browser_service`, host/src/sandbox/shared_browser.rs)
//! with Shipyard Neo's deployed `browser-python` shape: one Ship container
//! listing `browser`, `browser: shared`, and one Gull in `GULL_MODE=shared`
//! (started here, the cargo directory mounted at `/cargos`) serving every
//! sandbox. Two sandboxes share it and cannot see each other's pages,
//! cookies or files; a screenshot lands in each one's own `/workspace`.

use bay_tests::{BayProcess, Client, engine, free_port, remove_instance};
use serde_json::json;

const TOKEN: &str = "e2e-shared-gull-secret";

/// The shared Gull container, removed on drop.
struct SharedGull {
    name: String,
    port: u16,
    /// Its address on the engine's network: an origin both sandboxes'
    /// browsers can load (loopback ones are refused to them).
    ip: String,
}

impl SharedGull {
    fn start(cargos: &std::path::Path) -> SharedGull {
        let name = format!("bay-e2e-shared-gull-{}", free_port());
        let run = engine::cli()
            .args(["run", "-d", "--name", &name, "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--shm-size", "256m"])
            .args(["-e", "GULL_MODE=shared", "-e", &format!("BAY_RUNTIME_TOKEN={TOKEN}"), "-p", "127.0.0.1::8115"])
            .args(["-v", &format!("{}:/cargos", cargos.display()), "gull:latest"])
            .output()
            .unwrap();
        assert!(run.status.success(), "starting the shared Gull: {}", String::from_utf8_lossy(&run.stderr));
        let out = engine::cli().args(["port", &name, "8115/tcp"]).output().unwrap();
        let mapping = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
        let port = mapping.rsplit(':').next().and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("no port for {name}: {mapping:?}"));
        let out = engine::cli().args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", &name]).output().unwrap();
        let ip = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_else(|| panic!("no address for {name}")).to_owned();
        SharedGull { name, port, ip }
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{}/health", self.port)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the shared Gull did not become healthy");
    }
}

impl Drop for SharedGull {
    fn drop(&mut self) {
        let _ = engine::cli().args(["rm", "-f", &self.name]).output();
    }
}

/// A command that succeeds; its output trimmed.
async fn ok(c: &Client, id: &str, cmd: &str) -> String {
    crate::browser::ok(c, id, cmd).await.trim().to_owned()
}

async fn refused(c: &Client, id: &str, cmd: &str) {
    let r = crate::browser::browser(c, id, cmd).await;
    assert!(r["success"] == false && r["exit_code"] != 0, "{cmd} should be refused: {r}");
}

#[tokio::test]
async fn two_sandboxes_share_one_gull_and_see_nothing_of_each_other() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-shared-browser-").tempdir().unwrap();
    let cargos = dir.path().join("cargos");
    std::fs::create_dir_all(&cargos).unwrap();
    let gull = SharedGull::start(&cargos);
    gull.wait_healthy().await;
    let instance = "bay-e2e-shared-browser";
    let yaml = format!(
        "cargo: {{root_path: \"{r}\", host_root_path: \"{r}\"}}\n\
         browser_service: {{enabled: true, endpoint: \"http://127.0.0.1:{port}\", token: {TOKEN}}}\n\
         profiles:\n  - {{id: browser-python, image: \"ship:latest\", runtime_type: ship, runtime_port: 8123, \
         capabilities: [filesystem, shell, python, browser], browser: shared}}\n",
        r = cargos.display(),
        port = gull.port,
    );
    let bay = BayProcess::start_with(dir.path(), instance, free_port(), &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    let mut sandboxes = Vec::new();
    for _ in 0..2 {
        let (status, s) = c.post("/v1/sandboxes", json!({"profile": "browser-python"})).await;
        assert_eq!(status, 201, "{s}");
        sandboxes.push((s["id"].as_str().unwrap().to_owned(), s["cargo_id"].as_str().unwrap().to_owned()));
    }
    let [(a, a_cargo), (b, _)] = &sandboxes[..] else { unreachable!() };

    // Pages: each has its own.
    ok(&c, a, "open 'data:text/html,<title>alpha-page</title><p>a</p>'").await;
    ok(&c, b, "open 'data:text/html,<title>bravo-page</title><p>b</p>'").await;
    assert_eq!(ok(&c, a, "get title").await, "alpha-page");
    assert_eq!(ok(&c, b, "get title").await, "bravo-page");
    let tabs = ok(&c, b, "tab list").await;
    assert!(!tabs.contains("alpha-page"), "B sees A's tab: {tabs}");

    // Cookies: set by A on an origin both visit (Gull's own server), not
    // seen by B.
    let origin = format!("http://{}:8115/health", gull.ip);
    ok(&c, a, &format!("open {origin}")).await;
    ok(&c, a, "cookies set secret_a a-only").await;
    assert!(ok(&c, a, "cookies").await.contains("secret_a"));
    ok(&c, b, &format!("open {origin}")).await;
    let b_cookies = ok(&c, b, "cookies").await;
    assert!(!b_cookies.contains("secret_a"), "B sees A's cookie: {b_cookies}");

    // Files: a screenshot lands in the sandbox's own /workspace.
    ok(&c, a, "screenshot /workspace/a.png").await;
    let png = c.req(reqwest::Method::GET, &format!("/v1/sandboxes/{a}/filesystem/download?path=a.png")).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let (status, _) = c.get(&format!("/v1/sandboxes/{b}/filesystem/files?path=a.png")).await;
    assert_eq!(status, 404, "B's workspace has A's screenshot");
    // ...and B cannot reach A's cargo through the browser, nor A's browser.
    let a_dir = cargos.join(format!("bay-cargo-{a_cargo}"));
    refused(&c, b, &format!("screenshot /workspace/../bay-cargo-{a_cargo}/stolen.png")).await;
    refused(&c, b, &format!("screenshot /cargos/bay-cargo-{a_cargo}/stolen.png")).await;
    assert!(!a_dir.join("stolen.png").exists());
    refused(&c, b, &format!("open file:///cargos/bay-cargo-{a_cargo}/a.png")).await;
    refused(&c, b, &format!("--session {a} get title")).await;
    // Loopback is where each browser's DevTools listens: refused as an
    // argument, and Chromium itself will not open it when a page navigates
    // there (the image's managed policy).
    refused(&c, b, "open http://127.0.0.1:8115/health").await;
    crate::browser::browser(&c, b, "eval \"location.href = 'http://127.0.0.1:8115/health'\"").await;
    crate::browser::browser(&c, b, "wait 1000").await;
    let shown = crate::browser::browser(&c, b, "get text body").await;
    assert!(!shown["output"].as_str().unwrap_or_default().contains("healthy"), "a page reached loopback: {shown}");

    // A batch goes to the service too.
    let (status, r) = c.post(&format!("/v1/sandboxes/{b}/browser/exec_batch"), json!({"commands": ["get title", "get url"], "timeout": 60})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["completed_steps"], 2, "{r}");

    // Deleting A ends its browser; B's goes on.
    c.delete_sandbox(a).await;
    assert!(!a_dir.exists());
    ok(&c, b, &format!("open {origin}")).await;
    assert!(ok(&c, b, "get url").await.contains(&gull.ip));
    c.delete_sandbox(b).await;
    drop(bay);
    remove_instance(instance);
}
