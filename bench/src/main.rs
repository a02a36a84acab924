//! `bay-bench`: measures Bay on this machine and prints one table.
//!
//! - cold: create a sandbox → first python exec answered (user-visible);
//! - hot: `1+1` in python and `true` in shell, through Bay vs. straight to the
//!   runtime's published port (the difference is Bay's overhead);
//! - plugin: one runtime-adapter call with no I/O (fresh store + instantiate +
//!   call), and a health check through the plugin vs. native reqwest;
//! - live: time to the first streamed byte, stream throughput via Bay vs
//!   straight from Ship, many open streams, resuming a process's output;
//! - memory: the `bay` process's RSS when idle and after the load.
//!
//! Run with `./dev bench` (release build, real Docker engine, real plugins;
//! Podman beside Docker when `BAY_BENCH_PODMAN_SOCKET` is set, as `./dev
//! bench` does). `--quick` takes fewer samples; `--engines-only` stops after
//! the cold rows (built-in driver, driver plugin, Podman); `--live-only`
//! runs the cold rows and then only the live-exec rows (`live.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod live;
mod phases;
use bay::adapter::CapabilityCall;
use bay::config::PluginsConfig;
use bay::plugins::PluginHost;
use serde_json::{Value, json};

const KEY: &str = "sk-bench-key";
const WARM_POOL: usize = 2;

struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { samples }
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[i]
    }
    fn p50(&self) -> Duration {
        self.pct(0.5)
    }
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

struct Row {
    name: String,
    n: usize,
    p50: String,
    p90: String,
    p99: String,
    note: String,
}

fn row(name: &str, s: &Stats, note: String) -> Row {
    Row { name: name.into(), n: s.samples.len(), p50: fmt(s.p50()), p90: fmt(s.pct(0.9)), p99: fmt(s.pct(0.99)), note }
}

struct BayProcess {
    child: Child,
    base: String,
}

impl Drop for BayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn plugins_dir() -> PathBuf {
    std::env::var_os("BAY_TEST_PLUGINS_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target/plugins"))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Starts `bay serve` with its data (database, component cache) in `dir`.
async fn start_bay(dir: &std::path::Path) -> anyhow::Result<BayProcess> {
    start_bay_with(dir, "bay-bench", "{docker: {connect_mode: host_port}}").await
}

/// Starts Bay with this `driver:` section (the built-in Docker driver, or a
/// driver extension).
async fn start_bay_with(dir: &std::path::Path, instance: &str, driver: &str) -> anyhow::Result<BayProcess> {
    let exe = std::env::current_exe()?.with_file_name("bay");
    if !exe.is_file() {
        bail!("{} not found: build the workspace first", exe.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{host: 127.0.0.1, port: {port}}}\ndatabase: {{url: \"sqlite://{db}\"}}\nsecurity: {{api_key: {KEY}, allow_anonymous: false}}\ndriver: {driver}\ngc: {{instance_id: {instance}}}\nplugins: {{dir: \"{plugins}\", cache_dir: \"{cache}\"}}\nprofiles:\n  - {{id: python-default, image: \"ship:latest\"}}\n  - {{id: python-warm, image: \"ship:latest\", warm_pool_size: {WARM_POOL}}}\n{BROWSER_PROFILE}",
            db = dir.join("bay.db").display(),
            plugins = plugins_dir().display(),
            cache = dir.join("cache").display(),
        ),
    )?;
    let child = Command::new(&exe)
        .args(["serve", "--config"])
        .arg(&config)
        .env("BAY_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting bay")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            return Ok(BayProcess { child, base });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("bay did not come up on {base}")
}

/// profiles/browser-python.yaml, inline.
const BROWSER_PROFILE: &str = r#"  - id: browser-python
    containers:
      - { name: ship, image: "ship:latest", runtime_type: ship, capabilities: [python, shell, filesystem], primary_for: [python, shell, filesystem] }
      - { name: browser, image: "gull:latest", runtime_type: gull, runtime_port: 8115, resources: { cpus: 1.0, memory: 2g }, capabilities: [browser], primary_for: [browser], security: { pids_limit: 1024 } }
"#;

/// A page with a field and a button, as a data URL (no server needed).
const PAGE: &str = "data:text/html,<title>bench</title><input aria-label=Name><button>Go</button><p>hello</p>";

/// `n` creates, each followed by a python exec, all at once: the wall time
/// and "ok/n succeeded", with the first failure's reason.
async fn concurrent(api: &Api, n: usize) -> (Duration, String) {
    concurrent_with(api, n, false).await
}

/// As [`concurrent`], with a shell `echo 2` instead of python when `shell`.
async fn concurrent_with(api: &Api, n: usize, shell: bool) -> (Duration, String) {
    let t = Instant::now();
    let tasks = (0..n).map(|_| async move {
        let id = match api.create().await {
            Ok(id) => id,
            Err(e) => return (None, Err(format!("create: {e}"))),
        };
        let answer = if shell { api.shell(&id, "echo 2").await } else { api.python(&id, "1+1").await };
        let r = match answer {
            Ok(r) if r["output"] == "2" => Ok(()),
            Ok(r) => Err(format!("exec answered {r}")),
            Err(e) => Err(format!("exec: {e}")),
        };
        (Some(id), r)
    });
    let results = futures::future::join_all(tasks).await;
    let wall = t.elapsed();
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    futures::future::join_all(results.iter().filter_map(|(id, _)| id.as_ref().map(|id| api.delete(id)))).await;
    let mut note = format!("{ok}/{n} succeeded ({:.0} %)", ok as f64 * 100.0 / n as f64);
    if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
        note.push_str(&format!("; first failure: {}", e.chars().take(300).collect::<String>()));
    }
    (wall, note)
}

/// Pause latency (`POST …/pause` answered: the session frozen) and resume
/// latency (the next python call answered, Python state intact), `n` times.
async fn pause_rows(api: &Api, id: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    api.python(id, "bench_state = 41").await?;
    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let v = api.call(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/pause"), None).await?;
        pauses.push(t.elapsed());
        anyhow::ensure!(v["status"] == "paused", "pause answered {v}");
        let t = Instant::now();
        let r = api.python(id, "bench_state + 1").await?;
        resumes.push(t.elapsed());
        anyhow::ensure!(r["output"] == "42", "state lost across a pause: {r}");
    }
    Ok(vec![
        row("pause (running → paused, memory kept)", &Stats::new(pauses), "Docker's pause of the session".into()),
        row("resume: next python call after a pause", &Stats::new(resumes), "thaw + adopt + the call; state kept".into()),
    ])
}

/// A port preview's overhead (host/src/api/ports/mod.rs): `GET /` of
/// `python -m http.server` in the sandbox through `…/ports/8000/` against
/// the same request sent straight to the container's address (the engine's
/// bridge is routable from its host).
async fn preview_rows(api: &Api, id: &str, n: usize) -> anyhow::Result<Vec<Row>> {
    api.call(
        reqwest::Method::POST,
        &format!("/v1/sandboxes/{id}/processes"),
        Some(json!({"command": "exec python3 -m http.server 8000 --bind 0.0.0.0"})),
    )
    .await?;
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=bay.sandbox_id={id}"), "--filter", "label=bay.container_name=primary"])
        .output()?;
    let container = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = Command::new("docker").args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", &container]).output()?;
    let ip = String::from_utf8_lossy(&out.stdout).split_whitespace().next().context("the container's address")?.to_owned();
    let (via, direct) = (format!("/v1/sandboxes/{id}/ports/8000/"), format!("http://{ip}:8000/"));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut up = false;
    for _ in 0..100 {
        if http.get(&direct).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(up, "the preview server did not start");
    let (bay, straight, overhead) = time_pair(
        n,
        20,
        || async {
            api.http.get(format!("{}{via}", api.base)).bearer_auth(KEY).send().await?.error_for_status()?.bytes().await?;
            Ok(())
        },
        || async {
            http.get(&direct).send().await?.error_for_status()?.bytes().await?;
            Ok(())
        },
    )
    .await?;
    Ok(vec![
        row("port preview `GET /` via Bay (http.server)", &bay, overhead.note(" — tunnel through Ship + one HTTP/1.1 exchange")),
        row("the same `GET /` direct to the container", &straight, String::new()),
    ])
}

/// `n` times: create a sandbox, time until its first python exec answers, delete it.
async fn cold_runs(api: &Api, n: usize) -> anyhow::Result<Stats> {
    let mut samples = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let id = api.create().await?;
        let r = api.python(&id, "1+1").await?;
        samples.push(t.elapsed());
        anyhow::ensure!(r["output"] == "2", "unexpected output {r}");
        api.delete(&id).await?;
    }
    Ok(Stats::new(samples))
}

/// The table's header and its timed rows.
fn print_rows(quick: bool, rows: &[Row]) {
    println!();
    println!(
        "Bay benchmark ({} mode, {} CPUs)",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("{:<46} {:>5} {:>10} {:>10} {:>10}  notes", "measurement", "n", "p50", "p90", "p99");
    println!("{}", "-".repeat(110));
    for r in rows {
        println!("{:<46} {:>5} {:>10} {:>10} {:>10}  {}", r.name, r.n, r.p50, r.p90, r.p99, r.note);
    }
}

/// Removes what a Bay instance left (its warm pool) after it was stopped.
fn remove_instance(instance: &str) {
    remove_instance_on(&["docker"], instance)
}

/// As [`remove_instance`], on the engine this CLI speaks to.
fn remove_instance_on(cli: &[&str], instance: &str) {
    let label = format!("label=bay.instance_id={instance}");
    for (list, rm) in [
        (&["ps", "-aq"][..], &["rm", "-f"][..]),
        (&["volume", "ls", "-q"][..], &["volume", "rm", "-f"][..]),
        (&["network", "ls", "-q"][..], &["network", "rm"][..]),
    ] {
        let ids = Command::new(cli[0])
            .args(&cli[1..])
            .args(list)
            .args(["--filter", &label])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect::<Vec<_>>())
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new(cli[0]).args(&cli[1..]).args(rm).args(&ids).output();
        }
    }
}

/// Memory in use by a sandbox's container named `name` (`docker stats`).
fn container_memory(sandbox_id: &str, name: &str) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=bay.sandbox_id={sandbox_id}"), "--filter", &format!("label=bay.container_name={name}")])
        .output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    anyhow::ensure!(!id.is_empty(), "no {name} container for {sandbox_id}");
    let out = Command::new("docker").args(["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).split('/').next().unwrap_or_default().trim().to_owned())
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
    async fn create(&self) -> anyhow::Result<String> {
        let v = self.call(reqwest::Method::POST, "/v1/sandboxes", Some(json!({}))).await?;
        Ok(v["id"].as_str().context("id")?.to_owned())
    }
    async fn python(&self, id: &str, code: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/python/exec"), Some(json!({"code": code}))).await
    }
    async fn shell(&self, id: &str, cmd: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/shell/exec"), Some(json!({"command": cmd}))).await
    }
    async fn browser(&self, id: &str, cmd: &str) -> anyhow::Result<Value> {
        let r = self.call(reqwest::Method::POST, &format!("/v1/sandboxes/{id}/browser/exec"), Some(json!({"cmd": cmd, "timeout": 60}))).await?;
        anyhow::ensure!(r["success"] == true, "browser {cmd}: {r}");
        Ok(r)
    }
    async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, &format!("/v1/sandboxes/{id}"), None).await.map(|_| ())
    }
}

/// Waits until `n` warm sandboxes of `python-warm` are running and unclaimed.
async fn wait_warm(n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                "label=bay.instance_id=bay-bench",
                "--filter",
                "label=bay.profile_id=python-warm",
                "--filter",
                "label=bay.owner=warm-pool",
            ])
            .output()?;
        // Claimed ones were deleted by the loop, so what is left is the pool;
        // a warm sandbox is available once its kernel has started.
        let ready = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|c| {
                Command::new("docker")
                    // The runtime answers only with its session secret (in the container's environment).
                    .args(["exec", c, "sh", "-c", r#"curl -s -H "X-Bay-Token: $BAY_RUNTIME_TOKEN" http://127.0.0.1:8123/ipython/kernel/status"#])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("alive"))
                    .unwrap_or(false)
            })
            .count();
        if ready >= n {
            // A moment for the worker to mark the last one available.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the warm pool did not fill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The runtime's published endpoint, read from the engine, and a client
/// that sends the session's secret (from the container's environment) as
/// Bay does.
fn runtime_endpoint(sandbox_id: &str) -> anyhow::Result<(String, reqwest::Client)> {
    let out = Command::new("docker").args(["ps", "-q", "--filter", &format!("label=bay.sandbox_id={sandbox_id}")]).output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = Command::new("docker").args(["port", &id, "8123/tcp"]).output()?;
    let addr = String::from_utf8_lossy(&out.stdout).lines().next().context("no published port")?.trim().to_owned();
    let out = Command::new("docker").args(["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &id]).output()?;
    let env = String::from_utf8_lossy(&out.stdout);
    let token = env.lines().find_map(|l| l.strip_prefix("BAY_RUNTIME_TOKEN=")).context("no runtime secret")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-bay-token", token.parse()?);
    Ok((format!("http://{addr}"), reqwest::Client::builder().default_headers(headers).build()?))
}

async fn time_n<F, Fut>(n: usize, warmup: usize, mut f: F) -> anyhow::Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..warmup {
        f().await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        samples.push(t.elapsed());
    }
    Ok(Stats::new(samples))
}

/// Times two operations alternately, so both see the same machine load.
async fn time_pair<A, FA, B, FB>(n: usize, warmup: usize, mut a: A, mut b: B) -> anyhow::Result<(Stats, Stats, Overhead)>
where
    A: FnMut() -> FA,
    FA: std::future::Future<Output = anyhow::Result<()>>,
    B: FnMut() -> FB,
    FB: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..warmup {
        a().await?;
        b().await?;
    }
    let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        a().await?;
        sa.push(t.elapsed());
        let t = Instant::now();
        b().await?;
        sb.push(t.elapsed());
    }
    let overhead = Overhead::of(&sa, &sb);
    Ok((Stats::new(sa), Stats::new(sb), overhead))
}

/// What `a` costs over `b`, from samples taken in back-to-back pairs. The
/// median of the pairs' differences is the estimate (each pair ran under
/// the same conditions, so a slow moment of the machine cancels out); the
/// difference of the two medians is shown beside it. For a call whose own
/// time varies by milliseconds (a shell spawning `bash`), the latter moves
/// by a few tenths of a millisecond from run to run.
struct Overhead {
    paired_ms: f64,
    of_medians_ms: f64,
}

impl Overhead {
    fn of(a: &[Duration], b: &[Duration]) -> Overhead {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let paired_ms = median(a.iter().zip(b).map(|(a, b)| ms(a) - ms(b)).collect());
        let of_medians_ms = median(a.iter().map(ms).collect()) - median(b.iter().map(ms).collect());
        Overhead { paired_ms, of_medians_ms }
    }

    fn note(&self, target: &str) -> String {
        format!("overhead p50 {:.2} ms paired ({:.2} ms between the p50s){target}", self.paired_ms, self.of_medians_ms)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--plugins-only") {
        return plugins_only().await;
    }
    if let Some(n) = args.iter().position(|a| a == "--concurrent-only").and_then(|i| args.get(i + 1)?.parse().ok()) {
        let data = tempfile::tempdir()?;
        let bay = start_bay(data.path()).await?;
        let api = Api { http: reqwest::Client::new(), base: bay.base.clone() };
        let (wall, note) = concurrent(&api, n).await;
        println!("{n} concurrent create + exec: wall {}, {note}", fmt(wall));
        drop(bay);
        remove_instance("bay-bench");
        return Ok(());
    }
    let (cold_n, hot_n, plugin_n) = if quick { (2, 50, 500) } else { (5, 300, 3000) };
    let mut rows = Vec::new();

    // First boot compiles the plugins; a restart loads them from the cache.
    let data = tempfile::tempdir()?;
    let first = start_bay(data.path()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first_boot_rss = rss_kib(first.child.id());
    drop(first);
    let bay = start_bay(data.path()).await?;
    let pid = bay.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid);
    let api = Api { http: reqwest::Client::new(), base: bay.base.clone() };

    // Cold: create → first exec answered.
    let cold = cold_runs(&api, cold_n).await?;
    rows.push(row("cold: create → first python exec", &cold, "target p50 ≤ 800 ms (container + kernel start)".into()));
    rows.extend(phases::rows(&api, cold_n).await?);

    // The same through the docker-api driver extension (a WASM plugin
    // speaking the engine's REST API), side by side with the built-in driver.
    {
        let dir = tempfile::tempdir()?;
        let via_plugin = start_bay_with(
            dir.path(),
            "bay-bench-driver-plugin",
            "{type: plugin, plugin: {name: docker-api, endpoint: \"unix:///var/run/docker.sock\"}}",
        )
        .await?;
        let api = Api { http: reqwest::Client::new(), base: via_plugin.base.clone() };
        let cold_plugin = cold_runs(&api, cold_n).await?;
        let ratio = cold_plugin.p50().as_secs_f64() / cold.p50().as_secs_f64();
        rows.push(row("cold: … via the docker-api driver plugin", &cold_plugin, format!("{ratio:.2}× the built-in driver")));
        drop(via_plugin);
        remove_instance("bay-bench-driver-plugin");

        // The same plugin on Podman's Docker-compatible API (`./dev bench`
        // starts it: tests/podman.sh), its networks from a pool of their own.
        if let Ok(socket) = std::env::var("BAY_BENCH_PODMAN_SOCKET") {
            let dir = tempfile::tempdir()?;
            let driver = format!(
                "{{type: plugin, plugin: {{name: docker-api, endpoint: \"unix://{socket}\", settings: {{session_subnet_pool: \"10.214.0.0/16\"}}}}}}"
            );
            let on_podman = start_bay_with(dir.path(), "bay-bench-podman", &driver).await?;
            let api = Api { http: reqwest::Client::new(), base: on_podman.base.clone() };
            let cold_podman = cold_runs(&api, cold_n).await?;
            let ratio = cold_podman.p50().as_secs_f64() / cold_plugin.p50().as_secs_f64();
            rows.push(row("cold: … on Podman via the same plugin", &cold_podman, format!("{ratio:.2}× the plugin on Docker")));
            drop(on_podman);
            remove_instance_on(&["podman", "--url", &format!("unix://{socket}")], "bay-bench-podman");
        }
    }

    if args.iter().any(|a| a == "--live-only") {
        rows.extend(live::rows(&api, bay.child.id(), quick).await?);
        drop(bay);
        remove_instance("bay-bench");
        print_rows(quick, &rows);
        return Ok(());
    }
    if args.iter().any(|a| a == "--engines-only") {
        drop(bay);
        remove_instance("bay-bench");
        print_rows(quick, &rows);
        return Ok(());
    }

    // Browser (Gull + Ship): cold create → first `open`; then hot commands.
    let mut cold_browser = Vec::new();
    let mut browser_idle = String::new();
    for i in 0..cold_n.min(3) {
        let t = Instant::now();
        let v = api.call(reqwest::Method::POST, "/v1/sandboxes", Some(json!({"profile": "browser-python"}))).await?;
        let id = v["id"].as_str().context("id")?.to_owned();
        if i == 0 {
            // Containers up, Chromium not started yet (it starts on the first command).
            api.python(&id, "1").await?;
            browser_idle = container_memory(&id, "browser")?;
            let t = Instant::now();
            api.browser(&id, &format!("open \"{PAGE}\"")).await?;
            cold_browser.push(t.elapsed());
        } else {
            api.browser(&id, &format!("open \"{PAGE}\"")).await?;
            cold_browser.push(t.elapsed());
        }
        api.delete(&id).await?;
    }
    // The first sample timed only the browser launch (containers were up).
    let first_open = cold_browser.remove(0);
    let cold_browser = Stats::new(cold_browser);
    rows.push(row("browser: create → first `open` (cold)", &cold_browser, "2 containers + Chromium launch".into()));
    let browser_id = {
        let v = api.call(reqwest::Method::POST, "/v1/sandboxes", Some(json!({"profile": "browser-python"}))).await?;
        v["id"].as_str().context("id")?.to_owned()
    };
    api.browser(&browser_id, &format!("open \"{PAGE}\"")).await?;
    let browser_n = if quick { 5 } else { 20 };
    let snapshot = time_n(browser_n, 2, || async { api.browser(&browser_id, "snapshot -i").await.map(|_| ()) }).await?;
    let screenshot = time_n(browser_n / 2, 1, || async { api.browser(&browser_id, "screenshot /workspace/shot.png").await.map(|_| ()) }).await?;
    let get_title = time_n(browser_n, 2, || async { api.browser(&browser_id, "get title").await.map(|_| ()) }).await?;
    let browser_active = container_memory(&browser_id, "browser")?;
    rows.push(row("browser `snapshot -i` (hot)", &snapshot, String::new()));
    rows.push(row("browser `screenshot` (hot)", &screenshot, String::new()));
    rows.push(row("browser `get title` (hot)", &get_title, "agent-browser CLI floor".into()));
    api.delete(&browser_id).await?;

    // Warm pool: create (claims a running sandbox) → first exec answered.
    let mut warm = Vec::new();
    for _ in 0..cold_n {
        wait_warm(WARM_POOL).await?;
        let t = Instant::now();
        let v = api.call(reqwest::Method::POST, "/v1/sandboxes", Some(json!({"profile": "python-warm"}))).await?;
        let id = v["id"].as_str().context("id")?.to_owned();
        let r = api.python(&id, "1+1").await?;
        warm.push(t.elapsed());
        anyhow::ensure!(r["output"] == "2", "unexpected output {r}");
        api.delete(&id).await?;
    }
    let warm = Stats::new(warm);
    rows.push(row("warm pool: create → first python exec", &warm, "target p50 ≤ 50 ms".into()));

    // Many at once: N creates, each followed by an exec, all in parallel.
    let n = if quick { 20 } else { 100 };
    let (wall, concurrent_note) = concurrent(&api, n).await;
    let (wall_shell, concurrent_shell_note) = concurrent_with(&api, n, true).await;

    // Hot paths through Bay vs. straight to the runtime.
    let id = api.create().await?;
    api.python(&id, "1+1").await?;
    let (endpoint, direct) = runtime_endpoint(&id)?;
    let (host_py, direct_py, py_overhead) = time_pair(
        hot_n,
        20,
        || async { api.python(&id, "1+1").await.map(|_| ()) },
        || async {
            direct
                .post(format!("{endpoint}/ipython/exec"))
                .json(&json!({"code": "1+1", "timeout": 30}))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            Ok(())
        },
    )
    .await?;
    let (host_sh, direct_sh, sh_overhead) = time_pair(
        hot_n,
        20,
        || async { api.shell(&id, "true").await.map(|_| ()) },
        || async {
            direct
                .post(format!("{endpoint}/shell/exec"))
                .json(&json!({"command": "true", "timeout": 30}))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            Ok(())
        },
    )
    .await?;
    rows.push(row("hot python `1+1` via Bay", &host_py, py_overhead.note(" — target ≤ 0.5 ms")));
    rows.push(row("hot python `1+1` direct to Ship", &direct_py, String::new()));
    rows.push(row("hot shell `true` via Bay", &host_sh, sh_overhead.note(" — target ≤ 0.5 ms")));
    // Footprints: this sandbox has a started kernel; a fresh one has none yet.
    let kernel_footprint = container_memory(&id, "primary")?;
    let fresh = api.create().await?;
    api.shell(&fresh, "true").await?;
    let idle_footprint = container_memory(&fresh, "primary")?;
    api.delete(&fresh).await?;
    rows.push(row("hot shell `true` direct to Ship", &direct_sh, String::new()));
    rows.extend(pause_rows(&api, &id, cold_n).await?);
    rows.extend(preview_rows(&api, &id, hot_n).await?);
    // "Returns within 10 MB of idle": read once Bay has been idle for longer
    // than its trimmer's period (5 s, host/src/memory.rs).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let loaded_rss = rss_kib(pid);
    rows.extend(live::rows(&api, pid, quick).await?);

    // Plugin overhead, in-process.
    let cache = tempfile::tempdir()?;
    let plugins = PluginHost::new(&PluginsConfig::default(), cache.path().to_path_buf())?;
    let t = Instant::now();
    plugins.scan(&plugins_dir()).await;
    let cold_load = t.elapsed();
    let plugins2 = PluginHost::new(&PluginsConfig::default(), cache.path().to_path_buf())?;
    let t = Instant::now();
    plugins2.scan(&plugins_dir()).await;
    let cached_load = t.elapsed();
    let adapter = plugins.adapter("ship").context("ship adapter")?;
    let no_io = time_n(plugin_n, 100, || async {
        let r = adapter
            .invoke(
                &bay::adapter::RuntimeLink::new(endpoint.clone(), None),
                CapabilityCall::Custom { capability: "bench".into(), operation: "noop".into(), payload: "{}".into() },
            )
            .await;
        anyhow::ensure!(r.is_err(), "the noop call is expected to be unsupported");
        Ok(())
    })
    .await?;
    let native = reqwest::Client::new();
    let (via_plugin, native_health, plugin_overhead) = time_pair(
        plugin_n / 3,
        50,
        || async { adapter.health(&bay::adapter::RuntimeLink::new(endpoint.clone(), None)).await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")) },
        || async {
            native.get(format!("{endpoint}/health")).send().await?.error_for_status()?.bytes().await?;
            Ok(())
        },
    )
    .await?;
    rows.push(row("plugin call, no I/O (store+instantiate+call)", &no_io, "target ≤ 25 µs".into()));
    rows.push(row("health via plugin", &via_plugin, plugin_overhead.note("")));
    rows.push(row("health native reqwest", &native_health, String::new()));
    api.delete(&id).await?;

    drop(bay);
    remove_instance("bay-bench");

    print_rows(quick, &rows);
    println!("{:<46} {:>5} {:>10}  {concurrent_note}; target (n=100) ≤ 30 s", format!("{n} concurrent create + python (wall)"), n, fmt(wall));
    println!(
        "{:<46} {:>5} {:>10}  {concurrent_shell_note}; target (n=100) ≤ 15 s",
        format!("{n} concurrent create + shell (wall)"),
        n,
        fmt(wall_shell)
    );
    println!("{:<46} {:>5} {:>10}  containers already up", "browser: first `open` (Chromium launch)", 1, fmt(first_open));
    println!("{:<46} {:>5} {:>10}  before the first command", "gull container memory, idle", 1, browser_idle);
    println!("{:<46} {:>5} {:>10}  one tab open", "gull container memory, active", 1, browser_active);
    println!("{:<46} {:>5} {:>10}", "plugin load: compile (cold)", 1, fmt(cold_load));
    println!("{:<46} {:>5} {:>10}", "plugin load: from the component cache", 1, fmt(cached_load));
    println!("{:<46} {:>5} {:>10}", "bay RSS idle, first boot (plugins compiled)", 1, format!("{:.1} MB", first_boot_rss as f64 / 1024.0));
    println!("{:<46} {:>5} {:>10}  target ≤ 20 MB", "bay RSS idle (restart, cached plugins)", 1, format!("{:.1} MB", idle_rss as f64 / 1024.0));
    println!("{:<46} {:>5} {:>10}  target ≤ 20 MiB", "ship sandbox memory, before any python call", 1, idle_footprint);
    println!("{:<46} {:>5} {:>10}", "ship sandbox memory, kernel started", 1, kernel_footprint);
    println!(
        "{:<46} {:>5} {:>10}  target: within 10 MB of idle",
        "bay RSS after bursts and hot loops, 6 s idle",
        1,
        format!("{:.1} MB", loaded_rss as f64 / 1024.0)
    );
    Ok(())
}

/// Only the in-process plugin-call measurement (no Docker): a quick loop for
/// working on the plugin host.
async fn plugins_only() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let plugins = PluginHost::new(&PluginsConfig::default(), cache.path().to_path_buf())?;
    plugins.scan(&plugins_dir()).await;
    let adapter = plugins.adapter("ship").context("ship adapter")?;
    let no_io = time_n(20000, 1000, || async {
        let r = adapter
            .invoke(
                &bay::adapter::RuntimeLink::new("http://127.0.0.1:9", None),
                CapabilityCall::Custom { capability: "bench".into(), operation: "noop".into(), payload: "{}".into() },
            )
            .await;
        anyhow::ensure!(r.is_err());
        Ok(())
    })
    .await?;
    println!("plugin call, no I/O: p50 {} p90 {} p99 {}", fmt(no_io.p50()), fmt(no_io.pct(0.9)), fmt(no_io.pct(0.99)));
    Ok(())
}
