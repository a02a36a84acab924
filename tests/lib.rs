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

/// Every test Bay's `gc.instance_id` (written into container and volume
/// labels) starts with this; each server has its own, because a Bay removes
/// containers of its instance that its database does not know.
pub const INSTANCE_PREFIX: &str = "bay-e2e";

/// A Bay listening on 127.0.0.1 for the duration of the test process.
pub struct TestBay {
    pub base: String,
    pub key: String,
    pub data_dir: PathBuf,
    pub instance_id: String,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var_os("BAY_TEST_PLUGINS_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target/plugins"));
    assert!(
        dir.join("ship-adapter/plugin.toml").is_file(),
        "no plugins in {} — build them with `./dev plugins` (or run `./dev test`)",
        dir.display()
    );
    dir
}

/// The database a test Bay keeps its state in, derived from its data dir so
/// a restarted Bay finds its state again: SQLite in `dir`, or — when
/// `BAY_TEST_POSTGRES` is set (`postgres://user@host:port`, as `./dev test`
/// does for its PostgreSQL pass) — a database of its own on that server.
pub fn database_url(dir: &std::path::Path) -> String {
    match std::env::var("BAY_TEST_POSTGRES") {
        Ok(server) if !server.is_empty() => {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            dir.hash(&mut h);
            let name = format!("bay_test_{:016x}", h.finish());
            create_postgres_database(&server, &name);
            format!("{}/{name}", server.trim_end_matches('/'))
        }
        _ => format!("sqlite://{}", dir.join("bay.db").display()),
    }
}

/// True when the tests run against PostgreSQL (`BAY_TEST_POSTGRES`).
pub fn on_postgres() -> bool {
    std::env::var("BAY_TEST_POSTGRES").is_ok_and(|s| !s.is_empty())
}

/// Creates a database on the server unless it exists (psql from Debian's
/// postgresql-client, which `./dev test` installs with the server).
fn create_postgres_database(server: &str, name: &str) {
    let admin = format!("{}/postgres", server.trim_end_matches('/'));
    let out = Command::new("psql")
        .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qtAc"])
        .arg(format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))
        .output()
        .expect("psql (postgresql-client) is needed for BAY_TEST_POSTGRES");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    if String::from_utf8_lossy(&out.stdout).trim() != "1" {
        let out = Command::new("psql").args([admin.as_str(), "-qc"]).arg(format!("CREATE DATABASE {name}")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || err.contains("already exists"), "CREATE DATABASE {name}: {err}");
    }
}

/// Removes containers and volumes a previous (crashed) test run left behind.
pub fn remove_leftovers() {
    let ours = |args: &[&str], format: &str| -> Vec<String> {
        let out = engine::cli().args(args).args(["--filter", "label=bay.instance_id", "--format", format]).output().expect("the engine's CLI");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, instance)| instance.starts_with(INSTANCE_PREFIX))
            .map(|(id, _)| id.to_owned())
            .collect()
    };
    let ids = ours(&["ps", "-a"], "{{.ID}} {{.Label \"bay.instance_id\"}}");
    if !ids.is_empty() {
        let _ = engine::cli().arg("rm").arg("-f").args(&ids).output();
    }
    let vols = ours(&["volume", "ls"], "{{.Name}} {{.Label \"bay.instance_id\"}}");
    if !vols.is_empty() {
        let _ = engine::cli().args(["volume", "rm", "-f"]).args(&vols).output();
    }
    let nets = ours(&["network", "ls"], "{{.Name}} {{.Label \"bay.instance_id\"}}");
    if !nets.is_empty() {
        let _ = engine::cli().args(["network", "rm"]).args(&nets).output();
    }
}

fn start(name: &str, key: &str, anonymous: bool) -> TestBay {
    let instance_id = format!("{INSTANCE_PREFIX}-{name}");
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
database: {{ url: "{db}" }}
{driver}
security: {{ api_key: "{key}", allow_anonymous: {anonymous} }}
gc: {{ instance_id: {instance_id} }}
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
  # Multi-container sessions (schema v2) without a browser: two Ship runtimes,
  # and a pair whose second image does not exist (all-or-nothing start).
  - id: two-ships
    containers:
      - {{ name: ship, image: "ship:latest", capabilities: [python, shell, filesystem], primary_for: [python, shell, filesystem] }}
      - {{ name: worker, image: "ship:latest", capabilities: [python] }}
  # The plugin tutorial's example runtime (profiles/lite.yaml).
  - {{ id: lite, image: "lite:latest", runtime_type: lite, runtime_port: 8200, capabilities: [shell, filesystem] }}
  # The browser profile of profiles/browser-python.yaml (Gull + Ship).
  - id: browser-python
    containers:
      - {{ name: ship, image: "ship:latest", runtime_type: ship, capabilities: [python, shell, filesystem], primary_for: [filesystem, python, shell] }}
      - {{ name: browser, image: "gull:latest", runtime_type: gull, runtime_port: 8115, resources: {{ cpus: 1.0, memory: 2g }}, capabilities: [browser], primary_for: [browser], security: {{ pids_limit: 1024 }} }}
  - id: half-broken
    containers:
      - {{ name: ship, image: "ship:latest", capabilities: [python, shell, filesystem] }}
      - {{ name: broken, image: "bay-e2e-no-such-image:latest", capabilities: [python] }}
"#,
        db = database_url(&dir),
        driver = engine::driver_yaml(),
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
    TestBay { base: format!("http://{addr}"), key: key.to_owned(), data_dir: dir, instance_id }
}

/// Bay with an API key and anonymous access off (production settings).
pub fn strict() -> &'static TestBay {
    static BAY: OnceLock<TestBay> = OnceLock::new();
    BAY.get_or_init(|| start("strict", "sk-e2e-strict-key", false))
}

/// Bay in anonymous mode: no bearer token, the owner comes from `X-Owner`.
pub fn anonymous() -> &'static TestBay {
    static BAY: OnceLock<TestBay> = OnceLock::new();
    BAY.get_or_init(|| start("anonymous", "sk-e2e-anonymous-key", true))
}

/// An HTTP client for one test (clients must not outlive their runtime).
#[derive(Clone)]
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

    /// A JSON request: `(status, body)`. The path is taken by value up front, so
    /// callers may pass `&format!(…)` and keep the future.
    pub fn json<'c>(&'c self, method: reqwest::Method, path: &str, body: Option<Value>) -> impl std::future::Future<Output = (u16, Value)> + use<'c> {
        let path = path.to_owned();
        async move {
            let mut r = self.req(method, &path);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
    }

    pub fn post<'c>(&'c self, path: &str, body: Value) -> impl std::future::Future<Output = (u16, Value)> + use<'c> {
        self.json(reqwest::Method::POST, path, Some(body))
    }

    pub fn get<'c>(&'c self, path: &str) -> impl std::future::Future<Output = (u16, Value)> + use<'c> {
        self.json(reqwest::Method::GET, path, None)
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
        let (status, body) = self.post(&format!("/v1/sandboxes/{id}/python/exec"), serde_json::json!({"code": code, "timeout": timeout})).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn shell(&self, id: &str, command: &str) -> Value {
        let (status, body) = self.post(&format!("/v1/sandboxes/{id}/shell/exec"), serde_json::json!({"command": command})).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The engine the suite runs against, and how Bay reaches it:
///
/// - `BAY_TEST_ENGINE` = `docker` (default) or `podman` (Podman's
///   Docker-compatible API service on the socket `BAY_TEST_PODMAN_SOCKET`,
///   which `tests/podman.sh start` prints);
/// - `BAY_TEST_DRIVER` = `builtin` (default on Docker) or `plugin` (the
///   `docker-api` driver extension from `plugins/docker-api-driver`; always
///   the case on Podman).
///
/// Tests look at the engine only through this module (its CLI speaks to the
/// chosen engine: `docker`, or `podman --url` for Podman), so the same
/// tests run on both.
pub mod engine {
    use std::process::Command;

    /// True when the suite runs on Podman.
    pub fn is_podman() -> bool {
        std::env::var("BAY_TEST_ENGINE").is_ok_and(|e| e == "podman")
    }

    /// True when Bay reaches the engine through the driver-extension plugin.
    pub fn through_plugin() -> bool {
        is_podman() || std::env::var("BAY_TEST_DRIVER").is_ok_and(|d| d == "plugin")
    }

    fn podman_socket() -> String {
        std::env::var("BAY_TEST_PODMAN_SOCKET").expect("BAY_TEST_PODMAN_SOCKET (tests/podman.sh start prints it)")
    }

    /// The engine's command-line client.
    pub fn cli() -> Command {
        if is_podman() {
            let mut c = Command::new("podman");
            c.arg("--url").arg(format!("unix://{}", podman_socket()));
            c
        } else {
            Command::new("docker")
        }
    }

    /// The `driver:` line of a test Bay's config: the built-in Docker
    /// driver, or the `docker-api` plugin on Docker's or Podman's socket
    /// (Podman's session networks come from a pool of their own, so both
    /// engines can run side by side on one host). Single-container sessions
    /// share one bridge on Docker (the built-in driver's default there; the
    /// plugin is told so), a network each on Podman.
    pub fn driver_yaml() -> String {
        driver_yaml_with(if is_podman() { "per_session" } else { "shared" })
    }

    /// As [`driver_yaml`], with `session_network` (`shared`, `per_session`).
    pub fn driver_yaml_with(session_network: &str) -> String {
        if !through_plugin() {
            return format!("driver: {{ docker: {{ connect_mode: host_port, host_address: 127.0.0.1, session_network: {session_network} }} }}");
        }
        let (endpoint, pool) = if is_podman() {
            (format!("unix://{}", podman_socket()), "10.214.0.0/16")
        } else {
            ("unix:///var/run/docker.sock".into(), "10.213.0.0/16")
        };
        format!(
            "driver: {{ type: plugin, plugin: {{ name: docker-api, endpoint: \"{endpoint}\", settings: {{ connect_mode: host_port, host_address: 127.0.0.1, session_subnet_pool: \"{pool}\", session_network: {session_network} }} }} }}"
        )
    }

    fn lines(args: &[&str]) -> Vec<String> {
        let out = cli().args(args).output().expect("the engine's CLI");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }

    /// Containers (running or not) carrying a label `key=value`.
    pub fn containers_with(key: &str, value: &str) -> Vec<String> {
        lines(&["ps", "-aq", "--filter", &format!("label={key}={value}")])
    }

    pub fn volume_exists(name: &str) -> bool {
        cli().args(["volume", "inspect", name]).output().map(|o| o.status.success()).unwrap_or(false)
    }

    pub fn inspect(container: &str, format: &str) -> String {
        lines(&["inspect", "--format", format, container]).join("\n")
    }
}

/// The `bay` binary of this build (`./dev test` builds it before the tests).
pub fn bay_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug/bay");
    assert!(bin.is_file(), "{} not found: run `cargo build` first (./dev test does)", bin.display());
    bin
}

/// A `bay serve` child process, for tests that crash and restart Bay.
pub struct BayProcess {
    pub child: std::process::Child,
    pub base: String,
    pub key: String,
    pub log: PathBuf,
}

impl BayProcess {
    /// Starts Bay with its database and config in `dir` (kept across restarts).
    pub fn start(dir: &std::path::Path, instance_id: &str, port: u16) -> BayProcess {
        Self::start_with(dir, instance_id, port, "")
    }

    /// As [`start`](Self::start), with extra YAML appended to the config.
    pub fn start_with(dir: &std::path::Path, instance_id: &str, port: u16, extra_yaml: &str) -> BayProcess {
        Self::spawn(dir, port, &(Self::base_config(dir, instance_id, port) + extra_yaml))
    }

    /// The config [`start`](Self::start) uses, one top-level key per line
    /// (tests may replace a line: `plugins:`, `driver:`).
    pub fn base_config(dir: &std::path::Path, instance_id: &str, port: u16) -> String {
        let key = "sk-e2e-process-key";
        format!(
            "server: {{host: 127.0.0.1, port: {port}}}\ndatabase: {{url: \"{db}\"}}\nsecurity: {{api_key: {key}, allow_anonymous: false}}\n{driver}\ngc: {{instance_id: {instance_id}, run_on_startup: true}}\nplugins: {{dir: \"{plugins}\", cache_dir: \"{cache}\"}}\n",
            db = database_url(dir),
            driver = engine::driver_yaml(),
            plugins = plugins_dir().display(),
            cache = workspace_root().join("target/e2e-component-cache").display(),
        )
    }

    /// Starts `bay serve` with exactly this config (written to `dir/config.yaml`).
    pub fn spawn(dir: &std::path::Path, port: u16, yaml: &str) -> BayProcess {
        let key = "sk-e2e-process-key".to_owned();
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("bay.log")).unwrap();
        let child = Command::new(bay_binary())
            .args(["serve", "--config"])
            .arg(&config)
            // Relative paths in the config (SQLite URLs) are the data dir's.
            .current_dir(dir)
            .env("BAY_DATA_DIR", dir)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn bay");
        BayProcess { child, base: format!("http://127.0.0.1:{port}"), key, log: dir.join("bay.log") }
    }

    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if http.get(format!("{}/health", self.base)).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("bay did not come up on {}; the end of its log:\n{}", self.base, tail.join("\n"));
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
            base: self.base.clone(),
            auth: Some(("authorization".into(), format!("Bearer {}", self.key))),
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Removes every container and volume of one Bay instance.
pub fn remove_instance(instance_id: &str) {
    let label = format!("label=bay.instance_id={instance_id}");
    let list = |args: &[&str]| -> Vec<String> {
        let out = engine::cli().args(args).args(["--filter", &label]).output().expect("the engine's CLI");
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
    };
    let ids = list(&["ps", "-aq"]);
    if !ids.is_empty() {
        let _ = engine::cli().arg("rm").arg("-f").args(&ids).output();
    }
    let vols = list(&["volume", "ls", "-q"]);
    if !vols.is_empty() {
        let _ = engine::cli().args(["volume", "rm", "-f"]).args(&vols).output();
    }
    let nets = list(&["network", "ls", "-q"]);
    if !nets.is_empty() {
        let _ = engine::cli().args(["network", "rm"]).args(&nets).output();
    }
}
