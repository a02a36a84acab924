//! Shared harness of Bay's end-to-end tests: starts Bay in-process on a
//! loopback port, wired to the real Docker engine, a real SQLite database
//! and the real plugins built from `plugins/` (`./dev plugins`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bay::config::Config;
use bay::server::Bay;
use serde_json::Value;

/// Labels every container and volume of a test run carries (`bay.instance_id`).
pub const INSTANCE_ID: &str = "bay-e2e";

/// A Bay listening on 127.0.0.1 for the duration of the test process.
pub struct TestBay {
    pub base: String,
    pub key: String,
    pub data_dir: PathBuf,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("BAY_TEST_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/plugins"));
    assert!(
        dir.join("ship-adapter/plugin.toml").is_file(),
        "no plugins in {} — build them with `./dev plugins` (or run `./dev test`)",
        dir.display()
    );
    dir
}

/// Removes containers and volumes a previous (crashed) test run left behind.
fn remove_leftovers() {
    let label = format!("label=bay.instance_id={INSTANCE_ID}");
    let out = Command::new("docker").args(["ps", "-aq", "--filter", &label]).output().expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    if !ids.is_empty() {
        let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
    }
    let out = Command::new("docker").args(["volume", "ls", "-q", "--filter", &label]).output().expect("docker volume ls");
    let vols: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    if !vols.is_empty() {
        let _ = Command::new("docker").args(["volume", "rm", "-f"]).args(&vols).output();
    }
}

fn start(key: &str, anonymous: bool) -> TestBay {
    static CLEANED: Mutex<bool> = Mutex::new(false);
    {
        let mut cleaned = CLEANED.lock().unwrap();
        if !*cleaned {
            remove_leftovers();
            *cleaned = true;
        }
    }
    let dir = tempfile::Builder::new().prefix("bay-e2e-").tempdir().expect("tempdir").keep();
    let yaml = format!(
        r#"
server: {{ host: 127.0.0.1, port: 0 }}
database: {{ url: "sqlite://{db}" }}
driver: {{ docker: {{ connect_mode: host_port, host_address: 127.0.0.1 }} }}
security: {{ api_key: "{key}", allow_anonymous: {anonymous} }}
gc: {{ instance_id: {INSTANCE_ID} }}
plugins: {{ dir: "{plugins}", cache_dir: "{cache}" }}
sessions: {{ warmup_on_create: true }}
profiles:
  - {{ id: python-default, image: "ship:latest", capabilities: [filesystem, shell, python], env: {{ BAY_E2E_GREETING: "hello from the profile" }} }}
  # Error paths: a profile without the shell capability, one whose image does
  # not exist, one whose runtime never answers on its port, and one that idles
  # out after 2 s.
  - {{ id: python-only, image: "ship:latest", capabilities: [python, filesystem] }}
  - {{ id: missing-image, image: "bay-e2e-no-such-image:latest" }}
  - {{ id: never-ready, image: "ship:latest", runtime_port: 9, startup: {{ ready_timeout_seconds: 2 }} }}
  - {{ id: quick-idle, image: "ship:latest", idle_timeout: 2 }}
"#,
        db = dir.join("bay.db").display(),
        plugins = plugins_dir().display(),
        cache = workspace_root().join("target/e2e-component-cache").display(),
    );
    let (config, _) = Config::from_yaml_and_env(&yaml, &[]).expect("test config");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("bay-{key}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let bay = Bay::build(config).await.expect("Bay starts");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                bay.serve(listener, std::future::pending()).await.unwrap();
            });
        })
        .unwrap();
    let addr = rx.recv_timeout(Duration::from_secs(120)).expect("Bay did not start");
    TestBay { base: format!("http://{addr}"), key: key.to_owned(), data_dir: dir }
}

/// Bay with an API key and anonymous access off (production settings).
pub fn strict() -> &'static TestBay {
    static BAY: OnceLock<TestBay> = OnceLock::new();
    BAY.get_or_init(|| start("sk-e2e-strict-key", false))
}

/// Bay in anonymous mode: no bearer token, the owner comes from `X-Owner`.
pub fn anonymous() -> &'static TestBay {
    static BAY: OnceLock<TestBay> = OnceLock::new();
    BAY.get_or_init(|| start("sk-e2e-anonymous-key", true))
}

/// An HTTP client for one test (clients must not outlive their runtime).
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Option<(String, String)>,
}

impl TestBay {
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap(),
            base: self.base.clone(),
            auth: Some(("authorization".into(), format!("Bearer {}", self.key))),
        }
    }

    /// A client acting as an anonymous owner (no bearer token).
    pub fn owner(&self, owner: &str) -> Client {
        Client { auth: Some(("x-owner".into(), owner.into())), ..self.client() }
    }
}

impl Client {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some((k, v)) = &self.auth {
            r = r.header(k, v);
        }
        r
    }

    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// Creates a sandbox and returns its id.
    pub async fn create_sandbox(&self) -> String {
        let (status, body) = self.post("/v1/sandboxes", serde_json::json!({})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn delete_sandbox(&self, id: &str) {
        let (status, body) = self.json(reqwest::Method::DELETE, &format!("/v1/sandboxes/{id}"), None).await;
        assert_eq!(status, 204, "{body}");
    }

    pub async fn python(&self, id: &str, code: &str, timeout: u64) -> Value {
        let (status, body) =
            self.post(&format!("/v1/sandboxes/{id}/python/exec"), serde_json::json!({"code": code, "timeout": timeout})).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn shell(&self, id: &str, command: &str) -> Value {
        let (status, body) = self.post(&format!("/v1/sandboxes/{id}/shell/exec"), serde_json::json!({"command": command})).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// `docker` CLI helpers, to check what exists on the engine.
pub mod docker {
    use std::process::Command;

    fn lines(args: &[&str]) -> Vec<String> {
        let out = Command::new("docker").args(args).output().expect("docker");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }

    /// Containers (running or not) carrying a label `key=value`.
    pub fn containers_with(key: &str, value: &str) -> Vec<String> {
        lines(&["ps", "-aq", "--filter", &format!("label={key}={value}")])
    }

    pub fn volume_exists(name: &str) -> bool {
        Command::new("docker").args(["volume", "inspect", name]).output().map(|o| o.status.success()).unwrap_or(false)
    }

    pub fn inspect(container: &str, format: &str) -> String {
        lines(&["inspect", "--format", format, container]).join("\n")
    }
}
