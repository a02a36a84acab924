//! The plugin platform on a running Bay: plugins hot-added and hot-replaced
//! in its plugins directory, misbehaving plugins (the `fault-injection` test
//! plugin, built from `plugins/fault-injection` against `bay:plugin@0.1`), WIT
//! version checks, sandboxes whose containers come from a driver extension
//! talking to the local engine's API socket (`plugins/docker-api-driver` on
//! `bay:plugin@0.2`, and the frozen 0.1 driver
//! `plugins/legacy-docker-api-driver-0.1` through the host's shim), and the
//! plugin crates `bay plugin new` scaffolds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bay_tests::{BayProcess, Client, engine, free_port, workspace_root};
use serde_json::{Value, json};

fn copy_plugin(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Installs a plugin directory atomically (copy beside, then rename), as the
/// docs tell operators to.
fn install(from: &Path, plugins: &Path, name: &str) {
    let staging = plugins.parent().unwrap().join(format!(".staging-{name}"));
    let _ = std::fs::remove_dir_all(&staging);
    copy_plugin(from, &staging);
    std::fs::rename(&staging, plugins.join(name)).unwrap();
}

fn test_plugin(name: &str) -> PathBuf {
    workspace_root().join("target/test-plugins").join(name)
}

fn shipped_plugin(name: &str) -> PathBuf {
    workspace_root().join("target/plugins").join(name)
}

/// The first record of GET /v1/admin/plugins that `select` picks.
async fn find_record(c: &Client, select: impl Fn(&Value) -> bool) -> Option<Value> {
    let (_, r) = c.get("/v1/admin/plugins").await;
    r["items"].as_array().unwrap().iter().find(|p| select(p)).cloned()
}

async fn plugin_record(c: &Client, name: &str) -> Option<Value> {
    find_record(c, |p| p["name"] == name).await
}

/// Waits until the plugin record `select` picks shows `pred`.
async fn wait_for_record(c: &Client, select: impl Fn(&Value) -> bool, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        if let Some(p) = find_record(c, &select).await
            && pred(&p)
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the plugin never reached the expected state: {:?}", find_record(c, &select).await);
}

/// Waits until the plugin `name` shows `pred` in GET /v1/admin/plugins.
async fn wait_for(c: &Client, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for_record(c, |p| p["name"] == name, pred).await
}

fn set_manifest_key(dir: &Path, key: &str, value: &str) {
    let path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: Vec<String> =
        text.lines().map(|l| if l.starts_with(&format!("{key} =")) { format!("{key} = \"{value}\"") } else { l.to_owned() }).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
}

const PLUGINS_INSTANCE: &str = "bay-e2e-plugins";

#[tokio::test]
async fn plugins_hot_load_replace_and_fail_alone() {
    bay_tests::remove_instance(PLUGINS_INSTANCE);
    let dir = tempfile::Builder::new().prefix("bay-e2e-plugins-").tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_plugin(&shipped_plugin("ship-adapter"), &plugins.join("ship-adapter"));
    if engine::through_plugin() {
        // The driver this suite runs on lives in the plugins dir too.
        copy_plugin(&shipped_plugin("docker-api-driver"), &plugins.join("docker-api-driver"));
    }
    let port = free_port();
    let yaml = BayProcess::base_config(dir.path(), PLUGINS_INSTANCE, port)
        .lines()
        .map(|l| {
            if l.starts_with("plugins:") {
                format!("plugins: {{dir: \"{}\", cache_dir: \"{}\", watch_interval_ms: 200}}", plugins.display(), dir.path().join("cache").display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + r#"
profiles:
  - { id: python-default, image: "ship:latest", capabilities: [python, shell, filesystem] }
  - { id: faulty, image: "ship:latest", runtime_type: faulty, capabilities: [python] }
"#;
    let bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    assert!(plugin_record(&c, "fault-injection").await.is_none());

    // Hot-add: a new runtime type becomes usable without a restart.
    install(&test_plugin("fault-injection"), &plugins, "fault-injection");
    let record = wait_for(&c, "fault-injection", |p| p["state"] == "active").await;
    assert_eq!((record["runtime_type"].as_str(), record["kind"].as_str()), (Some("faulty"), Some("runtime-adapter")), "{record}");
    let (status, s) = c.post("/v1/sandboxes", json!({"profile": "faulty"})).await;
    assert_eq!(status, 201, "{s}");
    let faulty = s["id"].as_str().unwrap().to_owned();
    let exec = |code: &'static str| {
        let (c, id) = (c.clone(), faulty.clone());
        async move { c.post(&format!("/v1/sandboxes/{id}/python/exec"), json!({"code": code})).await }
    };
    let (status, r) = exec("1+1").await;
    assert_eq!((status, r["output"].as_str()), (200, Some("ok")), "{r}");
    let (_, healthy) = c.post("/v1/sandboxes", json!({"profile": "python-default"})).await;
    let healthy = healthy["id"].as_str().unwrap().to_owned();

    // Each fault fails its own call with a clear error; the next call, and
    // other plugins, are unaffected.
    for (code, expect) in [
        ("trap", "trapped"),
        ("loop", "exceeded its CPU budget of 200 ms"),
        ("memory", "exceeded its memory limit of 32 MiB"),
        ("garbage", "answered a python call with FileList"),
    ] {
        let (status, r) = exec(code).await;
        assert!(status >= 500, "{code}: {status} {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("fault-injection") || message.contains(expect), "{code}: {r}");
        assert!(message.to_lowercase().contains(&expect.to_lowercase()), "{code}: {r}");
        let (status, r) = exec("1+1").await;
        assert_eq!(status, 200, "after {code}: {r}");
        assert_eq!(c.python(&healthy, "print(6*7)", 30).await["output"].as_str().map(str::trim), Some("42"));
    }

    // Hot-replace with a broken build: rejected, the old version keeps serving.
    let installed = plugins.join("fault-injection");
    std::fs::write(installed.join("fault_injection.wasm.new"), b"\0asm this is not a component").unwrap();
    std::fs::rename(installed.join("fault_injection.wasm.new"), installed.join("fault_injection.wasm")).unwrap();
    let record = wait_for(&c, "fault-injection", |p| p["error"].is_string()).await;
    assert_eq!(record["state"], "failed; previous version still serving", "{record}");
    assert_eq!(exec("1+1").await.0, 200);

    // A WIT version this host does not implement is refused with the reason;
    // so is a manifest naming a version the component was not built for. A
    // newer patch of an implemented minor version loads: 0.1.x for this 0.1
    // adapter, 0.2.x for the 0.2 ship-adapter.
    std::fs::copy(test_plugin("fault-injection").join("fault_injection.wasm"), installed.join("fault_injection.wasm")).unwrap();
    set_manifest_key(&installed, "wit", "bay:plugin@0.3.0");
    let record = wait_for(&c, "fault-injection", |p| p["wit"] == "bay:plugin@0.3.0" && p["error"].is_string()).await;
    let error = record["error"].as_str().unwrap_or_default();
    assert!(error.contains("bay:plugin@0.3.0 is not supported") && error.contains("bay:plugin@0.1") && error.contains("bay:plugin@0.2"), "{record}");
    assert_eq!(record["state"], "failed; previous version still serving", "{record}");
    set_manifest_key(&installed, "wit", "bay:plugin@0.2.0");
    let record = wait_for(&c, "fault-injection", |p| p["wit"] == "bay:plugin@0.2.0" && p["error"].is_string()).await;
    assert!(record["error"].as_str().unwrap_or_default().contains("does not export the runtime-adapter world of bay:plugin@0.2"), "{record}");
    assert_eq!(exec("1+1").await.0, 200);
    set_manifest_key(&installed, "wit", "bay:plugin@0.1.9");
    let record = wait_for(&c, "fault-injection", |p| p["wit"] == "bay:plugin@0.1.9").await;
    assert_eq!(record["state"], "active", "{record}");
    assert_eq!(exec("1+1").await.0, 200);
    let ship = plugins.join("ship-adapter");
    set_manifest_key(&ship, "wit", "bay:plugin@0.2.7");
    // (The built-in ship-adapter has the same name: pick the directory's.)
    let record = wait_for_record(&c, |p| p["dir"].as_str() == ship.to_str(), |p| p["wit"] == "bay:plugin@0.2.7").await;
    assert_eq!(record["state"], "active", "{record}");
    assert_eq!(c.python(&healthy, "print(6*7)", 30).await["output"].as_str().map(str::trim), Some("42"));

    // A plugin that is not a component at all says so.
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("plugin.toml"), "name = \"junk\"\nversion = \"0.1.0\"\nkind = \"runtime-adapter\"\nwit = \"bay:plugin@0.1.0\"\ncomponent = \"junk.wasm\"\n[runtime]\ntype = \"junk\"\n").unwrap();
    std::fs::write(junk.join("junk.wasm"), b"not wasm").unwrap();
    install(&junk, &plugins, "junk");
    let record = wait_for(&c, "junk", |p| p["state"] == "failed").await;
    assert!(record["error"].as_str().is_some_and(|e| !e.is_empty()), "{record}");

    // Removing a plugin unloads it.
    std::fs::remove_dir_all(&installed).unwrap();
    for _ in 0..100 {
        if plugin_record(&c, "fault-injection").await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(plugin_record(&c, "fault-injection").await.is_none());
    c.delete_sandbox(&faulty).await;
    c.delete_sandbox(&healthy).await;
    drop(bay);
    bay_tests::remove_instance(PLUGINS_INSTANCE);
}

/// What a driver plugin under test is.
struct DriverPlugin<'a> {
    /// Its plugins directory (default: the shipped plugins).
    plugins: Option<&'a Path>,
    /// The manifest's name and `[driver] name`, and the WIT version.
    plugin: &'a str,
    driver: &'a str,
    wit: &'a str,
    /// The start of every session container's address, when its driver
    /// gives session networks subnets from Bay's pool.
    pool: Option<&'a str>,
}

/// Runs sandboxes on the local engine through a driver plugin: a
/// one-container session with a file kept across stop and restart, and a
/// two-container session on a network of its own whose containers reach each
/// other by name; then checks that deleting removes everything from the
/// engine.
async fn sandboxes_through_a_driver_plugin(instance: &str, d: DriverPlugin<'_>) {
    let DriverPlugin { plugins, plugin, driver, wit, pool } = d;
    bay_tests::remove_instance(instance);
    let dir = tempfile::Builder::new().prefix("bay-e2e-driver-").tempdir().unwrap();
    let port = free_port();
    let yaml = BayProcess::base_config(dir.path(), instance, port)
        .lines()
        .map(|l| match plugins {
            _ if l.starts_with("driver:") => format!(
                "driver: {{type: plugin, plugin: {{name: {driver}, endpoint: \"unix:///var/run/docker.sock\", settings: {{host_address: 127.0.0.1}}}}}}"
            ),
            Some(p) if l.starts_with("plugins:") => {
                format!("plugins: {{dir: \"{}\", cache_dir: \"{}\"}}", p.display(), dir.path().join("cache").display())
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\nprofiles:\n  - { id: python-default, image: \"ship:latest\", capabilities: [python, shell, filesystem], env: { VIA: driver-extension } }\n  - id: two-ships\n    containers:\n      - { name: ship, image: \"ship:latest\", capabilities: [python, shell, filesystem], primary_for: [python, shell, filesystem] }\n      - { name: worker, image: \"ship:latest\", capabilities: [python] }\n";
    let bay = BayProcess::spawn(dir.path(), port, &yaml);
    bay.wait_ready().await;
    let c = bay.client();
    let record = plugin_record(&c, plugin).await.expect("the driver plugin is listed");
    assert_eq!(
        (record["kind"].as_str(), record["driver"].as_str(), record["state"].as_str(), record["wit"].as_str()),
        (Some("driver"), Some(driver), Some("active"), Some(wit)),
        "{record}"
    );

    let id = c.create_sandbox().await;
    let r = c.python(&id, "import os\nprint(os.environ['VIA'], 40 + 2)", 30).await;
    assert_eq!(r["output"].as_str().map(str::trim), Some("driver-extension 42"), "{r}");
    c.shell(&id, "echo kept > note.txt").await;
    let containers = engine::containers_with("bay.sandbox_id", &id);
    assert_eq!(containers.len(), 1);
    assert_eq!(engine::inspect(&containers[0], "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.PidsLimit}}"), "true 256");
    let cargo = c.get(&format!("/v1/sandboxes/{id}")).await.1["cargo_id"].as_str().unwrap().to_owned();
    assert!(engine::volume_exists(&format!("bay-cargo-{cargo}")));

    // Stop and restart keep the files; a multi-container session gets its
    // network and sibling DNS through the plugin too.
    c.post(&format!("/v1/sandboxes/{id}/stop"), json!(null)).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    assert_eq!(c.shell(&id, "cat note.txt").await["output"].as_str().map(str::trim), Some("kept"));
    let (_, s) = c.post("/v1/sandboxes", json!({"profile": "two-ships"})).await;
    let pair = s["id"].as_str().unwrap().to_owned();
    let r = c.shell(&pair, "curl -s http://worker:8123/health").await;
    assert!(r["output"].as_str().unwrap().contains("healthy"), "{r}");
    for container in engine::containers_with("bay.sandbox_id", &pair) {
        let nets = engine::inspect(&container, "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}");
        assert!(nets.trim().starts_with("bay_net_") && !nets.trim().contains(' '), "only the session network: {nets}");
        assert!(pool.is_none_or(|p| nets.contains(&format!("={p}"))), "an address from the pool {pool:?}: {nets}");
    }

    // Delete removes containers, networks and the managed volume.
    c.delete_sandbox(&id).await;
    c.delete_sandbox(&pair).await;
    assert!(engine::containers_with("bay.sandbox_id", &id).is_empty());
    assert!(engine::containers_with("bay.sandbox_id", &pair).is_empty());
    assert!(!engine::volume_exists(&format!("bay-cargo-{cargo}")));
    drop(bay);
    bay_tests::remove_instance(instance);
}

#[tokio::test]
async fn a_driver_extension_runs_sandboxes_on_the_engine_api() {
    let plugin = DriverPlugin { plugins: None, plugin: "docker-api-driver", driver: "docker-api", wit: "bay:plugin@0.2.0", pool: Some("10.213.") };
    sandboxes_through_a_driver_plugin("bay-e2e-driver-plugin", plugin).await;
}

/// A driver built against `bay:plugin@0.1` (container-shaped) still loads and
/// serves sessions, through the shim in `host/src/plugins/v0_1/driver.rs`.
#[tokio::test]
async fn a_0_1_driver_extension_serves_sandboxes_through_the_shim() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-legacy-driver-").tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    copy_plugin(&test_plugin("legacy-docker-api-driver-0.1"), &plugins.join("legacy-docker-api-driver-0.1"));
    // (0.1 drivers cannot choose subnets: the engine's default pools.)
    let plugin = DriverPlugin {
        plugins: Some(&plugins),
        plugin: "legacy-docker-api-driver-0_1",
        driver: "docker-api-0.1",
        wit: "bay:plugin@0.1.0",
        pool: None,
    };
    sandboxes_through_a_driver_plugin("bay-e2e-legacy-driver-plugin", plugin).await;
}

/// `bay plugin new` scaffolds crates (a runtime adapter, a driver extension)
/// that build for wasm32-wasip2 as they are and pass `bay plugin check`, as a
/// bare component and as a plugin directory.
#[tokio::test]
async fn scaffolded_plugins_build_and_pass_the_check() {
    let dir = tempfile::Builder::new().prefix("bay-e2e-scaffold-").tempdir().unwrap();
    // Kept between runs: the second and later builds take seconds.
    let target = workspace_root().join("target/scaffold-check");
    for (name, kind) in [("echo-adapter", "runtime-adapter"), ("toy-driver", "driver-extension")] {
        let root = bay::cli::plugin::new(name, kind, None, dir.path(), Some(workspace_root().join("plugins/sdk"))).unwrap();
        // The workspace's lock file pins versions the registry cache holds,
        // so the build needs no network.
        std::fs::copy(workspace_root().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--offline", "--target", "wasm32-wasip2", "--release"])
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(out.status.success(), "building the scaffolded {kind}:\n{}", String::from_utf8_lossy(&out.stderr));
        let component = format!("{}.wasm", name.replace('-', "_"));
        let wasm = target.join("wasm32-wasip2/release").join(&component);
        bay::cli::plugin::check(&wasm).await.unwrap_or_else(|e| panic!("bay plugin check {}: {e:#}", wasm.display()));
        std::fs::copy(&wasm, root.join(&component)).unwrap();
        bay::cli::plugin::check(&root).await.unwrap_or_else(|e| panic!("bay plugin check {}: {e:#}", root.display()));
    }
}
