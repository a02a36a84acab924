//! `bay plugin new | check | list`: the plugin author's tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{Config, PluginsConfig};
use crate::plugins::{Checked, PluginHost};

/// `bay plugin check <file.wasm | plugin dir>`: validates a component — a
/// runtime adapter or a driver extension, of any WIT version this host
/// implements — and prints what it says about itself, or exactly what does
/// not fit.
pub async fn check(path: &Path) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let host = PluginHost::new(&PluginsConfig::default(), cache.path().to_path_buf())?;
    if path.is_dir() {
        let (record, loaded) = host.load_plugin(path).await;
        if let Some(e) = record.error {
            bail!("{}: {e}", path.display());
        }
        match loaded.expect("loaded") {
            crate::plugins::Loaded::Adapter(adapter) => {
                let info = adapter.info().clone();
                println!(
                    "ok: {} {} ({}), runtime type {:?}, loaded in {} ms",
                    record.name, record.version, record.wit, info.runtime_type, record.load_ms
                );
                print_capabilities(&info);
            }
            crate::plugins::Loaded::Driver(name, _) => {
                println!("ok: {} {} ({}), driver {name:?}, loaded in {} ms", record.name, record.version, record.wit, record.load_ms);
            }
        }
        return Ok(());
    }
    match host.check_component(path).await.with_context(|| format!("{} is not a valid Bay plugin", path.display()))? {
        Checked::Adapter { wit, info } => {
            println!("ok: {} implements {wit} runtime-adapter; runtime type {:?}, version {}", path.display(), info.runtime_type, info.version);
            print_capabilities(&info);
        }
        Checked::Driver { wit, name } => println!("ok: {} implements {wit} driver-extension; driver {name:?}", path.display()),
    }
    Ok(())
}

fn print_capabilities(info: &crate::adapter::AdapterInfo) {
    for c in &info.capabilities {
        println!("  {}: {}", c.name, c.operations.join(", "));
    }
}

/// `bay plugin list`: asks a running Bay (`--url`, key from `--key`,
/// `BAY_API_KEY` or `$BAY_DATA_DIR/credentials.json`); with `--local`, loads
/// the configured plugins directory in-process instead.
pub async fn list(config: Option<&Path>, url: Option<String>, key: Option<String>, local: bool) -> anyhow::Result<()> {
    let (config, _) = Config::load(config)?;
    let items: Vec<serde_json::Value> = if local {
        let cache = tempfile::tempdir()?;
        let host = PluginHost::new(&config.plugins, cache.path().to_path_buf())?;
        host.load_builtins().await;
        let records = match &config.plugins.dir {
            Some(dir) => host.scan(dir).await,
            None => host.records(),
        };
        records.into_iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect()
    } else {
        let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}", config.server.port));
        let key = key
            .or_else(|| std::env::var("BAY_API_KEY").ok())
            .or_else(|| {
                let creds = std::fs::read_to_string(Config::data_dir().join("credentials.json")).ok()?;
                serde_json::from_str::<serde_json::Value>(&creds).ok()?["api_key"].as_str().map(str::to_owned)
            })
            .or_else(|| config.security.api_key.clone());
        let mut req = reqwest::Client::new().get(format!("{url}/v1/admin/plugins"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach Bay at {url} (use --local to inspect the plugins directory)"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            bail!("Bay answered {status}: {body}");
        }
        body["items"].as_array().cloned().unwrap_or_default()
    };
    println!("{:<22} {:<9} {:<17} {:<12} {:<8} dir", "plugin", "version", "wit", "runtime", "state");
    for p in &items {
        let s = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
        let serves =
            p["runtime_type"].as_str().map(String::from).or_else(|| p["driver"].as_str().map(|d| format!("driver:{d}"))).unwrap_or("-".into());
        println!("{:<22} {:<9} {:<17} {:<12} {:<8} {}", s("name"), s("version"), s("wit"), serves, s("state"), s("dir"));
        if let Some(e) = p["error"].as_str() {
            println!("    error: {e}");
        }
    }
    Ok(())
}

/// `bay plugin new <name> --kind runtime-adapter|driver-extension`: a plugin
/// crate on the SDK (`bay:plugin@0.2`). `serves` is the runtime type an
/// adapter serves (default: the name without `-adapter`) or the name a
/// driver registers as (default: the name without `-driver`).
pub fn new(name: &str, kind: &str, serves: Option<&str>, dir: &Path, sdk: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    // The manifest's kind, its section and key naming what the plugin
    // serves, the usual suffix of the name, and the kind's own files.
    let (manifest_kind, section, key, suffix, lib_rs, readme) = match kind {
        "runtime-adapter" => ("runtime-adapter", "runtime", "type", "-adapter", LIB_RS, README),
        "driver-extension" | "driver" => ("driver", "driver", "name", "-driver", DRIVER_LIB_RS, DRIVER_README),
        other => bail!("--kind {other:?}: expected runtime-adapter or driver-extension"),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        bail!("the name must be lowercase letters, digits and dashes");
    }
    let serves = serves.map(str::to_owned).unwrap_or_else(|| name.trim_end_matches(suffix).to_owned());
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let sdk = sdk
        .or_else(|| std::env::var_os("BAY_PLUGIN_SDK").map(PathBuf::from))
        .or_else(|| {
            let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
            built.is_dir().then_some(built)
        })
        .context("cannot find the plugin SDK: pass --sdk <path to plugins/sdk>")?;
    let sdk = std::fs::canonicalize(&sdk).with_context(|| format!("{}", sdk.display()))?;
    let crate_name = name.replace('-', "_");
    let type_name: String = serves
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(root.join("src"))?;
    for (file, template) in [("Cargo.toml", CARGO_TOML), ("plugin.toml", PLUGIN_TOML), ("src/lib.rs", lib_rs), ("README.md", readme)] {
        let text = template
            .replace("{{kind}}", manifest_kind)
            .replace("{{section}}", section)
            .replace("{{key}}", key)
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{serves}}", &serves)
            .replace("{{Type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string());
        std::fs::write(root.join(file), text)?;
    }
    Ok(root)
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
bay-plugin-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A standalone crate, not a member of an enclosing workspace.
[workspace]
"#;

/// The manifest of either kind: `{{kind}}`, then the section naming what
/// it serves (`[runtime] type` or `[driver] name`).
const PLUGIN_TOML: &str = r#"name = "{{name}}"
version = "0.1.0"
kind = "{{kind}}"
wit = "bay:plugin@0.2.0"
component = "{{crate}}.wasm"

[{{section}}]
{{key}} = "{{serves}}"

[limits]
memory_mb = 64
guest_time_ms = 1000
"#;

const LIB_RS: &str = r#"//! Bay runtime adapter for `{{serves}}` runtimes.
//!
//! Every operation not implemented here answers `unsupported`; `health` and
//! `meta` default to `GET /health` and `GET /meta` on the runtime.

use bay_plugin_sdk::prelude::*;

/// Requests go to the runtime container the current call serves.
const RUNTIME: Runtime = Runtime::new("{{Type}}");

struct {{Type}};

impl RuntimeAdapter for {{Type}} {
    fn describe() -> AdapterInfo {
        AdapterInfo::new("{{serves}}", env!("CARGO_PKG_VERSION")).capability("shell", &["exec"])
    }

    fn shell_exec(req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
        // Adapt this to your runtime's API.
        let out: Value = RUNTIME.post_json("/exec", &json!({ "command": req.command, "timeout": req.timeout_s }), req.timeout_s + 5)?;
        Ok(ShellExecResult {
            success: out["exit_code"] == 0,
            exit_code: out["exit_code"].as_i64().map(|c| c as i32),
            stdout: out["stdout"].as_str().unwrap_or_default().to_owned(),
            stderr: out["stderr"].as_str().unwrap_or_default().to_owned(),
            error: None,
        })
    }
}

bay_plugin_sdk::register_adapter!({{Type}});
"#;

const README: &str = r#"# {{name}}

A Bay runtime adapter for `{{serves}}` runtimes.

    cargo build --target wasm32-wasip2 --release
    mkdir -p <bay plugins dir>/{{name}}
    cp plugin.toml target/wasm32-wasip2/release/{{crate}}.wasm <bay plugins dir>/{{name}}/
    bay plugin check <bay plugins dir>/{{name}}

Bay picks it up without a restart; a profile with `runtime_type: {{serves}}`
uses it.
"#;

const DRIVER_LIB_RS: &str = r#"//! Bay driver extension `{{serves}}`.
//!
//! Bay calls it to launch, inspect, list and destroy sessions (one or more
//! runtime containers sharing a cargo volume) and to manage cargo volumes;
//! see the `DriverExtension` trait of `bay-plugin-sdk` for the contract and
//! Bay's `plugins/docker-api-driver` for a complete driver. Reach the engine
//! with `bay_plugin_sdk::http::send`: paths resolve against the endpoint the
//! operator configured (`driver.plugin.endpoint`). Read the operator's
//! `driver.plugin.settings` with `setting("key")`.
//!
//! Logs, pausing and resuming default to `unsupported`.

use bay_plugin_sdk::prelude::*;

struct {{Type}};

/// What this skeleton does not do yet.
fn not_yet(operation: &str) -> DriverError {
    DriverError::Unsupported(format!("{operation} is not implemented yet"))
}

impl DriverExtension for {{Type}} {
    fn describe() -> DriverInfo {
        DriverInfo::new("{{serves}}", env!("CARGO_PKG_VERSION"))
    }

    fn launch_session(_spec: SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        Err(not_yet("launch-session"))
    }

    fn destroy_session(_session_id: String) -> Result<(), DriverError> {
        Err(not_yet("destroy-session"))
    }

    fn session_status(_session_id: String) -> Result<Vec<ContainerInfo>, DriverError> {
        Err(not_yet("session-status"))
    }

    fn list_sessions(_labels: Labels) -> Result<Vec<SessionInfo>, DriverError> {
        Err(not_yet("list-sessions"))
    }

    fn create_volume(_name: String, _labels: Labels) -> Result<String, DriverError> {
        Err(not_yet("create-volume"))
    }

    fn delete_volume(_driver_ref: String) -> Result<(), DriverError> {
        Err(not_yet("delete-volume"))
    }

    fn volume_exists(_driver_ref: String) -> Result<bool, DriverError> {
        Err(not_yet("volume-exists"))
    }

    fn list_volumes(_labels: Labels) -> Result<Vec<Named>, DriverError> {
        Err(not_yet("list-volumes"))
    }
}

bay_plugin_sdk::register_driver!({{Type}});
"#;

const DRIVER_README: &str = r#"# {{name}}

A Bay driver extension (`{{serves}}`).

    cargo build --target wasm32-wasip2 --release
    mkdir -p <bay plugins dir>/{{name}}
    cp plugin.toml target/wasm32-wasip2/release/{{crate}}.wasm <bay plugins dir>/{{name}}/
    bay plugin check <bay plugins dir>/{{name}}

Select it in Bay's configuration:

    driver:
      type: plugin
      plugin: { name: {{serves}}, endpoint: "http://engine:port", settings: {} }
"#;
