//! Ship's own HTTP API beyond what Bay calls (Shipyard Neo's contract, docs/compatibility.md): Shipyard Neo's
//! images and ours are interchangeable, so these endpoints must behave alike.
//! Driven directly on the runtime's published port.

use bay_tests::{engine, strict};
use serde_json::{Value, json};

/// The runtime's published port and the session secret it requires.
async fn endpoint(id: &str) -> (String, String) {
    let container = engine::containers_with("bay.sandbox_id", id).remove(0);
    let out = bay_tests::engine::cli().args(["port", &container, "8123/tcp"]).output().unwrap();
    let url = format!("http://{}", String::from_utf8_lossy(&out.stdout).lines().next().unwrap().trim());
    let env = engine::inspect(&container, "{{range .Config.Env}}{{println .}}{{end}}");
    let token = env.lines().find_map(|l| l.strip_prefix("BAY_RUNTIME_TOKEN=")).expect("the session secret").to_owned();
    (url, token)
}

#[tokio::test]
async fn ship_parity_endpoints() {
    let c = strict().client();
    let id = c.create_sandbox().await;
    c.python(&id, "y = 5", 30).await;
    let (ship, token) = endpoint(&id).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-bay-token", token.parse().unwrap());
    // Without the secret, the runtime refuses everything but its health.
    let bare = reqwest::Client::new();
    assert_eq!(bare.get(format!("{ship}/meta")).send().await.unwrap().status(), 401);
    assert_eq!(bare.get(format!("{ship}/health")).send().await.unwrap().status(), 200);
    let http = reqwest::Client::builder().default_headers(headers).build().unwrap();
    let post = |path: &str, body: Value| {
        let (http, url) = (http.clone(), format!("{ship}{path}"));
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{ship}{path}"));
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let meta = get("/meta").await;
    assert_eq!(meta["runtime"]["name"], "ship");
    assert_eq!(meta["workspace"]["mount_path"], "/workspace");
    assert!(meta["capabilities"]["python"].is_object() && meta["capabilities"]["shell"].is_object());
    assert_eq!(meta["built_in_skills"][0]["name"], "python-sandbox");

    // create_file / edit_file.
    let (status, r) = post("/fs/create_file", json!({"path": "e.txt", "content": "alpha beta alpha"})).await;
    assert_eq!((status, &r["success"]), (200, &json!(true)), "{r}");
    let (status, _) = post("/fs/create_file", json!({"path": "e.txt"})).await;
    assert_eq!(status, 400, "create refuses an existing file");
    let (status, r) = post("/fs/edit_file", json!({"path": "e.txt", "old_string": "alpha", "new_string": "gamma"})).await;
    assert_eq!(status, 400, "ambiguous edit: {r}");
    let (status, r) = post("/fs/edit_file", json!({"path": "e.txt", "old_string": "alpha", "new_string": "gamma", "replace_all": true})).await;
    assert_eq!((status, &r["replacements"]), (200, &json!(2)), "{r}");
    let (_, r) = post("/fs/read_file", json!({"path": "e.txt"})).await;
    assert_eq!(r["content"], "gamma beta gamma");

    // Background commands and the process list.
    let (status, r) = post("/shell/exec", json!({"command": "sleep 2", "background": true})).await;
    assert_eq!(status, 200);
    assert_eq!(r["success"], true);
    let pid = r["process_id"].as_str().unwrap().to_owned();
    let procs = get("/shell/processes").await;
    let listed = procs["processes"].as_array().unwrap().iter().find(|p| p["process_id"] == pid.as_str()).cloned().expect("listed");
    assert_eq!(listed["status"], "running");
    assert_eq!(listed["command"], "sleep 2");

    // Kernel status and restart (state is reset).
    assert_eq!(get("/ipython/kernel/status").await["status"], "alive");
    let (status, r) = post("/ipython/kernel/restart", json!({})).await;
    assert_eq!((status, &r["success"]), (200, &json!(true)), "{r}");
    let r = c.python(&id, "print('y' in globals())", 30).await;
    assert_eq!(r["output"], "False");
    c.delete_sandbox(&id).await;
}
