//! Configuration: a YAML file whose keys follow Shipyard Neo's `config.yaml`
//! (Shipyard Neo's contract, docs/compatibility.md), with `BAY_<SECTION>__<KEY>` environment overrides.
//!
//! Lookup: `--config FILE`, else `$BAY_CONFIG_FILE`, else `./config.yaml`,
//! else `/etc/bay/config.yaml`, else built-in defaults.
//!
//! As in Shipyard Neo, a key the file sets beats its environment variable;
//! the environment fills keys the file leaves out (a key set to `null` counts
//! as left out). An environment variable the file overrides is named in a
//! startup warning. Keys Bay does not know, and keys it reads but does not act
//! on, are accepted and logged once at startup, never silently misread.

mod database;
mod limits;
mod profiles;

pub use database::DatabaseUrl;
pub use limits::{LimitsConfig, QuotasConfig};
pub use profiles::SecurityConfig as ContainerSecurity;
pub use profiles::{ContainerSpec, IdleAction, ProfileConfig, Resources, default_profiles, parse_memory};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use yaml_serde::Value;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub driver: DriverConfig,
    pub cargo: CargoConfig,
    pub security: SecurityConfig,
    pub idempotency: IdempotencyConfig,
    pub gc: GcConfig,
    pub warm_pool: WarmPoolConfig,
    pub browser_learning: BrowserLearningConfig,
    pub browser_auto_release_enabled: Option<bool>,
    pub browser_service: BrowserServiceConfig,
    pub proxy: ProxyConfig,
    pub profiles: Option<Vec<ProfileConfig>>,
    /// Bay extension: a directory of profile files (`*.yaml`, one profile each),
    /// added to `profiles`.
    pub profiles_dir: Option<PathBuf>,
    /// Bay extension: the WebAssembly plugin host.
    pub plugins: PluginsConfig,
    /// Bay extension: session start behaviour.
    pub sessions: SessionsConfig,
    /// Bay extension: how much of one request Bay holds at once (docs/security.md).
    pub limits: LimitsConfig,
    /// Bay extension: per-owner quotas (docs/security.md).
    pub quotas: QuotasConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Bay extension: on SIGTERM or Ctrl-C, how long calls in flight (and
    /// open streams) get to finish before Bay exits anyway, in seconds.
    pub shutdown_grace_s: u64,
}
impl Default for ServerConfig {
    fn default() -> Self {
        // Loopback unless the operator says otherwise (Shipyard Neo: 0.0.0.0).
        ServerConfig { host: "127.0.0.1".into(), port: 8114, shutdown_grace_s: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    pub echo: bool,
    /// Bay extension: connection pool size.
    pub max_connections: u32,
}
impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: "sqlite+aiosqlite:///./bay.db".into(), echo: false, max_connections: 8 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DriverType {
    #[default]
    Docker,
    K8s,
    /// A driver extension (WASM plugin) named by `driver.plugin.name`.
    Plugin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DriverConfig {
    #[serde(rename = "type")]
    pub kind: DriverType,
    pub image_pull_policy: PullPolicy,
    pub docker: DockerConfig,
    pub k8s: K8sConfig,
    pub plugin: PluginDriverConfig,
}

/// `driver.plugin` (Bay extension): which driver extension to use, the engine
/// endpoint it may reach, and settings passed through to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginDriverConfig {
    /// The `[driver] name` of a loaded driver plugin.
    pub name: String,
    /// `unix:///path/to.sock`, or `http://host:port` (`tcp://` is read as `http://`).
    pub endpoint: String,
    pub settings: std::collections::BTreeMap<String, String>,
}
impl Default for PluginDriverConfig {
    fn default() -> Self {
        PluginDriverConfig { name: "docker-api".into(), endpoint: "unix:///var/run/docker.sock".into(), settings: Default::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMode {
    ContainerNetwork,
    HostPort,
    #[default]
    Auto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerConfig {
    pub socket: String,
    pub network: Option<String>,
    pub connect_mode: ConnectMode,
    pub host_address: String,
    pub publish_ports: bool,
    pub host_port: Option<u16>,
    /// Bay extension: Bay's own container when Bay runs in one (joined to
    /// every session network in `container_network` mode); found by the
    /// container's host name when unset.
    pub self_container: Option<String>,
    /// Bay extension: where each session network's subnet comes from (one
    /// network per session; empty: the engine's default pools, which hold
    /// only about thirty networks).
    pub session_subnet_pool: Option<String>,
    /// Bay extension: the prefix length of each session's subnet (28: 14 hosts).
    pub session_subnet_prefix: u8,
    /// Bay extension: whether single-container sessions share one bridge with
    /// inter-container traffic off instead of a network each
    /// (crates/driver-kit/src/docker_api/shared.rs).
    pub session_network: SessionNetworkMode,
}

/// `driver.docker.session_network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionNetworkMode {
    /// The shared bridge on a Docker engine, a network per session elsewhere.
    #[default]
    Auto,
    /// A network of its own for every session.
    PerSession,
    /// The shared bridge for every eligible session (the engine must honour
    /// `enable_icc=false`: Docker does, Podman does not).
    Shared,
}
impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: "unix:///var/run/docker.sock".into(),
            network: None,
            connect_mode: ConnectMode::Auto,
            host_address: "127.0.0.1".into(),
            publish_ports: true,
            host_port: None,
            self_container: None,
            session_subnet_pool: Some(bay_driver_kit::docker_api::DEFAULT_SUBNET_POOL.into()),
            session_subnet_prefix: bay_driver_kit::docker_api::DEFAULT_SUBNET_PREFIX,
            session_network: SessionNetworkMode::Auto,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct K8sConfig {
    pub namespace: String,
    pub kubeconfig: Option<String>,
    pub storage_class: Option<String>,
    pub default_storage_size: String,
    pub image_pull_secrets: Vec<String>,
    pub pod_startup_timeout: u64,
    pub label_prefix: String,
}
impl Default for K8sConfig {
    fn default() -> Self {
        K8sConfig {
            namespace: "bay".into(),
            kubeconfig: None,
            storage_class: None,
            default_storage_size: "1Gi".into(),
            image_pull_secrets: vec![],
            pod_startup_timeout: 60,
            label_prefix: "bay".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CargoConfig {
    /// Where Bay sees the directory of bind-mounted cargos (see [`CargoConfig::bind_roots`]).
    pub root_path: String,
    /// Where the engine sees it; set, it turns bind mounts on.
    pub host_root_path: Option<String>,
    pub default_size_limit_mb: i64,
    pub mount_path: String,
    /// Bay extension: `uid:gid` given to each new cargo directory in bind
    /// mode, so runtimes running as that user can write their workspace
    /// (Bay's Ship and Gull run as 1000:1000); empty: left to Bay's user.
    pub bind_owner: String,
}
impl Default for CargoConfig {
    fn default() -> Self {
        CargoConfig {
            root_path: "/var/lib/bay/cargos".into(),
            host_root_path: None,
            default_size_limit_mb: 1024,
            mount_path: "/workspace".into(),
            bind_owner: "1000:1000".into(),
        }
    }
}

impl CargoConfig {
    /// Bind-mount mode as Shipyard Neo decides it: on when `host_root_path`
    /// is set, or when `root_path` is a mount point of this process (Bay in a
    /// container with a host directory mounted there; its source read from
    /// `/proc/self/mountinfo`). `(Bay's path, the engine's path)`.
    pub fn bind_roots(&self) -> Option<(PathBuf, PathBuf)> {
        let root = PathBuf::from(&self.root_path);
        if let Some(host) = self.host_root_path.as_deref().filter(|h| !h.is_empty()) {
            return Some((root, PathBuf::from(host)));
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        crate::driver::bind::detect_host_root(&mountinfo, &root).map(|host| (root, host))
    }

    /// `bind_owner` as numbers (validated at load).
    pub fn bind_owner_ids(&self) -> Option<(u32, u32)> {
        let (u, g) = self.bind_owner.split_once(':')?;
        Some((u.trim().parse().ok()?, g.trim().parse().ok()?))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub api_key: Option<String>,
    /// Requests without a bearer token act as the owner named by `X-Owner`.
    /// Off by default (Shipyard Neo: on).
    pub allow_anonymous: bool,
    /// Bay extension: honour anonymous requests from any peer, not only from
    /// loopback. Without it a sandbox (or anything else on the network) that
    /// reaches Bay cannot act as any owner it names.
    pub anonymous_from_network: bool,
    pub blocked_hosts: Vec<String>,
}
impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            api_key: None,
            allow_anonymous: false,
            anonymous_from_network: false,
            blocked_hosts: ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map(String::from).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IdempotencyConfig {
    pub enabled: bool,
    pub ttl_hours: f64,
}
impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig { enabled: true, ttl_hours: 1.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskToggle {
    pub enabled: bool,
}
impl Default for TaskToggle {
    fn default() -> Self {
        TaskToggle { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GcConfig {
    pub enabled: bool,
    pub run_on_startup: bool,
    pub interval_seconds: u64,
    pub instance_id: Option<String>,
    pub idle_session: TaskToggle,
    pub expired_sandbox: TaskToggle,
    pub orphan_cargo: TaskToggle,
    pub orphan_container: TaskToggle,
}
impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: true,
            run_on_startup: true,
            interval_seconds: 300,
            instance_id: None,
            idle_session: TaskToggle::default(),
            expired_sandbox: TaskToggle::default(),
            orphan_cargo: TaskToggle::default(),
            orphan_container: TaskToggle { enabled: false },
        }
    }
}

impl GcConfig {
    /// `gc.instance_id`, else `$HOSTNAME`, else `bay`.
    pub fn effective_instance_id(&self) -> String {
        self.instance_id.clone().or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())).unwrap_or_else(|| "bay".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    #[default]
    DropNewest,
    DropOldest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmPoolConfig {
    pub enabled: bool,
    pub warmup_queue_workers: usize,
    pub warmup_queue_max_size: usize,
    pub warmup_queue_drop_policy: DropPolicy,
    pub warmup_queue_drop_alert_threshold: u64,
    pub interval_seconds: u64,
    pub run_on_startup: bool,
}
impl Default for WarmPoolConfig {
    fn default() -> Self {
        WarmPoolConfig {
            enabled: true,
            warmup_queue_workers: 2,
            warmup_queue_max_size: 256,
            warmup_queue_drop_policy: DropPolicy::DropNewest,
            warmup_queue_drop_alert_threshold: 50,
            interval_seconds: 30,
            run_on_startup: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BrowserLearningConfig {
    pub enabled: bool,
    pub run_on_startup: bool,
    pub interval_seconds: u64,
    pub batch_size: u32,
    pub score_threshold: f64,
    pub replay_success_threshold: f64,
    pub min_samples: u32,
    pub canary_window_hours: u32,
    pub success_drop_threshold: f64,
    pub error_rate_multiplier_threshold: f64,
}
impl Default for BrowserLearningConfig {
    fn default() -> Self {
        BrowserLearningConfig {
            enabled: true,
            run_on_startup: true,
            interval_seconds: 300,
            batch_size: 20,
            score_threshold: 0.85,
            replay_success_threshold: 0.95,
            min_samples: 30,
            canary_window_hours: 24,
            success_drop_threshold: 0.03,
            error_rate_multiplier_threshold: 2.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BrowserServiceConfig {
    /// Browser calls go to one shared Gull (host/src/sandbox/shared_browser.rs).
    pub enabled: bool,
    pub endpoint: String,
    /// Bay extension: sent as `X-Bay-Token`; the shared Gull's `BAY_RUNTIME_TOKEN`.
    pub token: Option<String>,
}
impl Default for BrowserServiceConfig {
    fn default() -> Self {
        BrowserServiceConfig { enabled: false, endpoint: "http://gull-service:8115".into(), token: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    pub enabled: bool,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub default_no_proxy: String,
}
impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            enabled: false,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
            default_no_proxy:
                "localhost,127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,*.local,.svc,.svc.cluster.local,.pod.cluster.local".into(),
        }
    }
}

impl ProxyConfig {
    /// The environment variables this proxy configuration injects.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.enabled {
            return env;
        }
        for (keys, value) in [(["HTTP_PROXY", "http_proxy"], &self.http_proxy), (["HTTPS_PROXY", "https_proxy"], &self.https_proxy)] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                for k in keys {
                    env.push((k.to_owned(), v.clone()));
                }
            }
        }
        let mut no_proxy = self.default_no_proxy.clone();
        if let Some(extra) = self.no_proxy.as_ref().filter(|v| !v.is_empty()) {
            no_proxy = if no_proxy.is_empty() { extra.clone() } else { format!("{no_proxy},{extra}") };
        }
        if !no_proxy.is_empty() {
            env.push(("NO_PROXY".into(), no_proxy.clone()));
            env.push(("no_proxy".into(), no_proxy));
        }
        env
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Where plugins are found: one sub-directory per plugin with a
    /// `plugin.toml`. Unset: only the plugins built into Bay (the Ship and
    /// Gull adapters). A plugin here serving a runtime type overrides the
    /// built-in one.
    pub dir: Option<PathBuf>,
    /// Where compiled components are cached (keyed by the engine's compatibility hash).
    pub cache_dir: Option<PathBuf>,
    /// Concurrent plugin instances (pooling allocator slots); calls beyond it wait.
    pub max_instances: u32,
    /// Default linear-memory limit per instance, unless the manifest sets one.
    pub memory_limit_mb: u64,
    /// Default budget of guest CPU time per call between host calls.
    pub guest_time_limit_ms: u64,
    /// Largest response body a plugin may read into its memory.
    pub max_response_mb: u64,
    /// How often the plugins directory is checked for new, changed or removed
    /// plugins (hot reload); 0 turns watching off.
    pub watch_interval_ms: u64,
}
impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            cache_dir: None,
            max_instances: 256,
            memory_limit_mb: 128,
            guest_time_limit_ms: 2_000,
            max_response_mb: 64,
            watch_interval_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionsConfig {
    /// How long a starting runtime may take to answer `/health`.
    pub ready_timeout_seconds: u64,
    /// Start a sandbox's session in the background right after create, so
    /// the first exec rarely waits (per profile: `start_on_create`). Off by
    /// default, as in Shipyard Neo, where a new sandbox is `idle` until its
    /// first capability call; the warm pool is the fast path.
    pub warmup_on_create: bool,
    /// Session starts (containers up and runtimes ready) in progress at once;
    /// more wait their turn. 0: twice the CPUs. Starting runtimes is CPU
    /// bound: a hundred at once on two cores all finish late, in turns each
    /// finishes early.
    pub max_concurrent_starts: usize,
}
impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { ready_timeout_seconds: 120, warmup_on_create: false, max_concurrent_starts: 0 }
    }
}

impl SessionsConfig {
    pub fn concurrent_starts(&self) -> usize {
        match self.max_concurrent_starts {
            0 => 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        }
    }
}

/// Where the configuration was read from, and keys that were not understood.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub file: Option<PathBuf>,
    pub unknown_keys: Vec<String>,
    /// Environment variables that set a key the file leaves out.
    pub env_overrides: Vec<String>,
    /// Environment variables the file overrides (`BAY_SERVER__PORT` → `server.port`).
    pub env_ignored: Vec<(String, String)>,
    /// Keys that are set but that Bay reads without acting on.
    pub unused_keys: Vec<String>,
    /// Settings Bay accepts as Shipyard Neo does but that are likely
    /// mistakes, each saying what Bay does and how to change it.
    pub warnings: Vec<String>,
}

/// Keys outside `profiles` that Bay reads and does not act on (Shipyard Neo
/// ignores `security.blocked_hosts` too). A whole section is named by its
/// name alone.
const UNUSED_KEYS: [&str; 2] = ["database.echo", "security.blocked_hosts"];

/// What `bay config` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// `scheme://user:password@host…` with the password replaced.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let password = if userinfo.contains(':') { format!(":{REDACTED}") } else { String::new() };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl Config {
    /// This configuration with its secrets replaced, for printing (`bay
    /// config`): the API key, the shared browser's token, passwords in the
    /// database and proxy URLs.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.security.api_key.is_some() {
            c.security.api_key = Some(REDACTED.into());
        }
        if c.browser_service.token.is_some() {
            c.browser_service.token = Some(REDACTED.into());
        }
        c.database.url = redact_url_password(&c.database.url);
        let redact = |proxy: &mut ProxyConfig| {
            for url in [&mut proxy.http_proxy, &mut proxy.https_proxy].into_iter().flatten() {
                *url = redact_url_password(url);
            }
        };
        redact(&mut c.proxy);
        for p in c.profiles.iter_mut().flatten() {
            p.proxy.as_mut().map(redact);
            for container in p.containers.iter_mut().flatten() {
                container.proxy.as_mut().map(redact);
            }
        }
        c
    }

    /// Finds and loads the configuration (see the module docs), then applies
    /// environment overrides.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Config, LoadReport)> {
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("BAY_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| ["config.yaml", "/etc/bay/config.yaml"].into_iter().map(PathBuf::from).find(|p| p.is_file())),
        };
        let text = match &file {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?,
            None => String::new(),
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (mut config, mut report) = Self::from_yaml_and_env(&text, &env).with_context(|| match &file {
            Some(p) => format!("invalid config file {}", p.display()),
            None => "invalid configuration".into(),
        })?;
        report.file = file.clone();
        // Relative paths in the file are relative to the working directory, as
        // in Shipyard Neo (its sqlite URLs are cwd-relative too).
        if let Some(dir) = config.profiles_dir.clone() {
            let loaded = profiles::load_dir(&dir)?;
            for p in &loaded {
                report.unused_keys.extend(p.unused_keys());
                report.warnings.extend(p.warnings());
            }
            config.profiles.get_or_insert_with(Vec::new).extend(loaded);
        }
        config.validate()?;
        Ok((config, report))
    }

    /// Parses YAML text and applies `BAY_<SECTION>__<KEY>=value` from `env`
    /// to the keys the file leaves out (Shipyard Neo's precedence). Values are
    /// parsed as YAML scalars (`true`, `8114`, `[a, b]`).
    pub fn from_yaml_and_env(text: &str, env: &[(String, String)]) -> anyhow::Result<(Config, LoadReport)> {
        let mut root: Value = if text.trim().is_empty() { Value::Mapping(Default::default()) } else { yaml_serde::from_str(text)? };
        if root.is_null() {
            root = Value::Mapping(Default::default());
        }
        let mut report = LoadReport::default();
        let mut overrides: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("BAY_") else {
                continue;
            };
            // Only nested keys are config paths; BAY_API_KEY, BAY_DATA_DIR and
            // BAY_CONFIG_FILE are handled where they are used.
            if !rest.contains("__") {
                continue;
            }
            overrides.insert(rest.to_ascii_lowercase(), value.clone());
        }
        let file_root = root.clone();
        for (path, value) in overrides {
            let keys: Vec<&str> = path.split("__").collect();
            let var = format!("BAY_{}", path.to_ascii_uppercase());
            if file_sets(&file_root, &keys) {
                report.env_ignored.push((var, keys.join(".")));
                continue;
            }
            let parsed: Value = yaml_serde::from_str(&value).unwrap_or(Value::String(value.clone()));
            set_path(&mut root, &keys, parsed)?;
            report.env_overrides.push(var);
        }
        for key in UNUSED_KEYS {
            let keys: Vec<&str> = key.split('.').collect();
            match get_path(&root, &keys) {
                Some(Value::Mapping(section)) if keys.len() == 1 => {
                    report.unused_keys.extend(section.keys().filter_map(|k| k.as_str()).map(|k| format!("{key}.{k}")));
                }
                Some(v) if !v.is_null() => report.unused_keys.push(key.to_owned()),
                _ => {}
            }
        }
        let mut unknown = Vec::new();
        let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
        let de = serde_ignored::Deserializer::new(root, &mut on_unknown);
        // serde_path_to_error names the failing key (`server.port: invalid type ...`).
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?;
        report.unknown_keys = unknown;
        for p in config.profiles.iter().flatten() {
            report.unused_keys.extend(p.unused_keys());
            report.warnings.extend(p.warnings());
        }
        report.warnings.extend(config.driver_warnings());
        report.warnings.extend(config.browser_service_warnings());
        Ok((config, report))
    }

    /// The shared browser (`browser_service`) and what it depends on.
    fn browser_service_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.browser_service;
        if !s.enabled {
            for p in self.profiles.iter().flatten().filter(|p| p.browser.as_deref() == Some("shared")) {
                out.push(format!(
                    "profiles[{}].browser: shared has no effect while browser_service.enabled is false: its browser calls go to its own containers",
                    p.id
                ));
            }
            return out;
        }
        if self.cargo.bind_roots().is_none() {
            out.push(
                "browser_service is enabled but cargos are engine volumes: files the shared browser writes under /workspace (screenshots, PDFs) cannot reach the sandbox's workspace; set cargo.host_root_path (and mount that directory at /cargos in the shared Gull)"
                    .into(),
            );
        }
        if s.token.as_deref().is_none_or(str::is_empty) {
            out.push(
                "browser_service.token is unset: anything that reaches the shared Gull can drive any sandbox's browser; start it with BAY_RUNTIME_TOKEN and set the same value here"
                    .into(),
            );
        }
        out
    }

    /// `driver.docker.host_port`: Shipyard Neo's fixed port for
    /// single-container sessions, which serves one session at a time.
    fn driver_warnings(&self) -> Vec<String> {
        let d = &self.driver.docker;
        let Some(port) = d.host_port.filter(|p| *p != 0) else {
            return vec![];
        };
        if self.driver.kind != DriverType::Docker {
            return vec![format!("driver.docker.host_port ({port}) is not used: driver.type is not docker; remove it")];
        }
        let published = matches!((d.connect_mode, d.publish_ports), (ConnectMode::HostPort, _) | (ConnectMode::Auto, true));
        if !published {
            return vec![format!(
                "driver.docker.host_port ({port}) is not used: runtimes are reached on their network, not through published ports (connect_mode {}, publish_ports {}); remove it",
                match d.connect_mode {
                    ConnectMode::ContainerNetwork => "container_network",
                    ConnectMode::HostPort => "host_port",
                    ConnectMode::Auto => "auto",
                },
                d.publish_ports
            )];
        }
        vec![format!(
            "driver.docker.host_port: every single-container session publishes its runtime on {}:{port}, so only one such session can run at a time (as in Shipyard Neo); starting another fails until the first stops. Unset it (or 0) for a random port per session",
            d.host_address
        )]
    }

    /// The effective profiles: the configured ones, or the built-in defaults.
    pub fn effective_profiles(&self) -> Vec<ProfileConfig> {
        match &self.profiles {
            Some(p) if !p.is_empty() => p.clone(),
            _ => default_profiles(),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        DatabaseUrl::parse(&self.database.url)?;
        let profiles = self.effective_profiles();
        let mut seen = std::collections::HashSet::new();
        for p in &profiles {
            if !seen.insert(p.id.as_str()) {
                bail!("duplicate profile id {:?}", p.id);
            }
            p.validate()?;
        }
        if self.plugins.max_instances == 0 {
            bail!("plugins.max_instances must be at least 1");
        }
        if self.server.shutdown_grace_s > 3600 {
            bail!("server.shutdown_grace_s must be at most 3600 (seconds), not {}", self.server.shutdown_grace_s);
        }
        self.limits.validate()?;
        if !self.cargo.bind_owner.is_empty() && self.cargo.bind_owner_ids().is_none() {
            bail!("cargo.bind_owner must be \"uid:gid\" in numbers (or empty), not {:?}", self.cargo.bind_owner);
        }
        if self.browser_service.enabled {
            reqwest::Url::parse(&self.browser_service.endpoint)
                .with_context(|| format!("browser_service.endpoint {:?} is not a URL", self.browser_service.endpoint))?;
        }
        // Bay's HTTP client toward runtimes, engines and the shared browser
        // has no TLS (they live on the operator's private network or a
        // socket); an https:// endpoint would fail on every call.
        for (key, endpoint) in [
            ("browser_service.endpoint", self.browser_service.endpoint.as_str()),
            ("driver.plugin.endpoint", self.driver.plugin.endpoint.as_str()),
            ("driver.docker.socket", self.driver.docker.socket.as_str()),
        ] {
            if endpoint.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
                bail!(
                    "{key} {endpoint:?}: https is not supported (Bay speaks plain HTTP to engines and runtimes, which belong on a private network or a unix socket); use http:// or put a TLS-terminating proxy on the same host"
                );
            }
        }
        Ok(())
    }

    /// `$BAY_DATA_DIR`, else the working directory.
    pub fn data_dir() -> PathBuf {
        std::env::var_os("BAY_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugins.cache_dir.clone().unwrap_or_else(|| Self::data_dir().join(".bay-cache/components"))
    }
}

fn get_path<'a>(node: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(node, |node, key| node.as_mapping()?.get(*key))
}

/// Whether the file sets this key (not to `null`), or a parent of it to
/// something other than a mapping: then the file's value wins.
fn file_sets(root: &Value, path: &[&str]) -> bool {
    let mut node = root;
    for key in path {
        match node {
            Value::Mapping(map) => match map.get(*key) {
                Some(child) => node = child,
                None => return false,
            },
            Value::Null => return false,
            _ => return true,
        }
    }
    !node.is_null()
}

fn set_path(node: &mut Value, path: &[&str], value: Value) -> anyhow::Result<()> {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    if !node.is_mapping() {
        *node = Value::Mapping(Default::default());
    }
    let map = node.as_mapping_mut().expect("mapping");
    let key = Value::String((*first).to_owned());
    let child = map.entry(key).or_insert(Value::Null);
    set_path(child, rest, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> (Config, LoadReport) {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_yaml_and_env(text, &env).unwrap()
    }

    #[test]
    fn defaults_are_safe_and_otherwise_shipyard_neos() {
        let (c, r) = load("", &[]);
        assert_eq!(c.server.port, 8114);
        // Safe defaults, unlike Shipyard Neo (0.0.0.0, anonymous on): see
        // docs/security.md.
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.database.url, "sqlite+aiosqlite:///./bay.db");
        assert!(!c.security.allow_anonymous);
        assert!(!c.security.anonymous_from_network);
        assert_eq!(c.limits, LimitsConfig::default());
        assert_eq!(c.quotas, QuotasConfig::default());
        assert_eq!(c.idempotency.ttl_hours, 1.0);
        assert_eq!(c.gc.interval_seconds, 300);
        assert!(!c.gc.orphan_container.enabled);
        assert_eq!(c.driver.docker.connect_mode, ConnectMode::Auto);
        assert_eq!(c.cargo.default_size_limit_mb, 1024);
        assert!(r.unknown_keys.is_empty());
        let ids: Vec<_> = c.effective_profiles().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["python-default", "python-data"]);
    }

    #[test]
    fn env_fills_keys_the_file_leaves_out_and_parses_scalars() {
        let (c, r) = load(
            "server:\n  host: 0.0.0.0\nsecurity:\n  api_key: null\n",
            &[
                ("BAY_SERVER__PORT", "8200"),
                ("BAY_SECURITY__ALLOW_ANONYMOUS", "true"),
                ("BAY_SECURITY__API_KEY", "k"),
                ("BAY_API_KEY", "x"),
                ("BAY_GC__INSTANCE_ID", "bay-7"),
                ("BAY_LIMITS__JSON_BODY_BYTES", "2048"),
                ("BAY_QUOTAS__MAX_SANDBOXES", "3"),
            ],
        );
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.server.port, 8200);
        assert!(c.security.allow_anonymous);
        // `null` in the file counts as left out.
        assert_eq!(c.security.api_key.as_deref(), Some("k"));
        assert_eq!(c.gc.instance_id.as_deref(), Some("bay-7"));
        assert_eq!(c.limits.json_body_bytes, 2048);
        assert_eq!(c.quotas.max_sandboxes, 3);
        assert_eq!(r.env_overrides.len(), 6);
        assert!(r.env_ignored.is_empty());
        assert!(r.unknown_keys.is_empty());
    }

    #[test]
    fn the_file_beats_the_environment_as_in_shipyard_neo_and_says_so() {
        let (c, r) = load(
            "server:\n  port: 9000\nsecurity:\n  allow_anonymous: true\ndatabase:\n  url: sqlite:///x.db\n",
            &[("BAY_SERVER__PORT", "8200"), ("BAY_SECURITY__ALLOW_ANONYMOUS", "false"), ("BAY_DATABASE__URL", "postgres://h/db")],
        );
        assert_eq!(c.server.port, 9000);
        assert!(c.security.allow_anonymous);
        assert!(r.env_overrides.is_empty());
        assert_eq!(c.database.url, "sqlite:///x.db");
        let ignored: Vec<(&str, &str)> = r.env_ignored.iter().map(|(v, k)| (v.as_str(), k.as_str())).collect();
        assert_eq!(
            ignored,
            [
                ("BAY_DATABASE__URL", "database.url"),
                ("BAY_SECURITY__ALLOW_ANONYMOUS", "security.allow_anonymous"),
                ("BAY_SERVER__PORT", "server.port")
            ]
        );
    }

    #[test]
    fn a_parent_the_file_sets_to_a_scalar_keeps_the_file_value() {
        let root: Value = yaml_serde::from_str("a: 1\nb: null\nc: {d: null}\n").unwrap();
        assert!(file_sets(&root, &["a", "x"]));
        assert!(!file_sets(&root, &["b", "x"]));
        assert!(!file_sets(&root, &["c", "d"]));
        assert!(!file_sets(&root, &["e"]));
    }

    #[test]
    fn https_endpoints_are_refused_at_load_with_the_key() {
        for (yaml, key) in [
            ("browser_service: {enabled: true, endpoint: \"https://g:8115\"}\n", "browser_service.endpoint"),
            ("driver: {type: plugin, plugin: {name: docker-api, endpoint: \"HTTPS://engine:2376\"}}\n", "driver.plugin.endpoint"),
            ("driver: {docker: {socket: \"https://engine:2376\"}}\n", "driver.docker.socket"),
        ] {
            let err = Config::from_yaml_and_env(yaml, &[]).and_then(|(c, _)| c.validate()).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(key) && msg.contains("https is not supported"), "{msg}");
        }
    }

    #[test]
    fn printed_configs_carry_no_secrets() {
        let text = r#"
database: { url: "postgresql+asyncpg://bay:s3cret@db:5432/bay" }
security: { api_key: sk-live-1234 }
browser_service: { enabled: true, endpoint: "http://g:8115", token: gull-secret }
proxy: { enabled: true, http_proxy: "http://me:pw@proxy:3128", https_proxy: "http://proxy:3128" }
"#;
        let (c, _) = load(text, &[]);
        let printed = yaml_serde::to_string(&c.redacted()).unwrap();
        for secret in ["s3cret", "sk-live-1234", "gull-secret", ":pw@"] {
            assert!(!printed.contains(secret), "{secret} in:\n{printed}");
        }
        let r = c.redacted();
        assert_eq!(r.database.url, "postgresql+asyncpg://bay:<redacted>@db:5432/bay");
        assert_eq!(r.proxy.http_proxy.as_deref(), Some("http://me:<redacted>@proxy:3128"));
        assert_eq!(r.proxy.https_proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(redact_url_password("sqlite:///./bay.db"), "sqlite:///./bay.db");
        // The original is untouched.
        assert_eq!(c.security.api_key.as_deref(), Some("sk-live-1234"));
    }

    #[test]
    fn keys_read_but_not_acted_on_are_listed() {
        let (_, r) = load("server:\n  port: 9000\n", &[]);
        assert!(r.unused_keys.is_empty() && r.warnings.is_empty());
        let text = r#"
database: { url: "sqlite:///x.db", echo: false }
cargo: { root_path: /var/lib/bay/cargos, default_size_limit_mb: 10 }
security: { blocked_hosts: [10.0.0.0/8] }
browser_learning: { enabled: true, min_samples: 3 }
browser_auto_release_enabled: true
profiles:
  - { id: p, image: x, warmup_retry_max_attempts: 3, warmup_circuit_breaker_threshold: 10 }
"#;
        let (_, r) = load(text, &[("BAY_BROWSER_SERVICE__ENABLED", "true")]);
        assert_eq!(
            r.unused_keys,
            ["database.echo", "security.blocked_hosts", "profiles[p].warmup_retry_max_attempts", "profiles[p].warmup_circuit_breaker_threshold",]
        );
        assert!(r.unknown_keys.is_empty());
    }

    #[test]
    fn a_fixed_host_port_is_used_with_a_warning_or_named_as_unused() {
        let (c, r) = load("driver:\n  docker:\n    connect_mode: host_port\n    host_port: 18123\n", &[]);
        assert_eq!(crate::driver::docker::settings(&c.driver.docker, c.driver.image_pull_policy, None, true).unwrap().host_port, Some(18123));
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("127.0.0.1:18123") && r.warnings[0].contains("only one"), "{}", r.warnings[0]);
        let (_, r) = load("driver:\n  docker:\n    connect_mode: container_network\n    publish_ports: false\n    host_port: 18123\n", &[]);
        assert!(r.warnings[0].contains("is not used") && r.warnings[0].contains("connect_mode container_network"), "{:?}", r.warnings);
        let (c, r) = load("driver:\n  docker:\n    host_port: 0\n", &[]);
        assert!(r.warnings.is_empty());
        assert_eq!(crate::driver::docker::settings(&c.driver.docker, c.driver.image_pull_policy, None, true).unwrap().host_port, None);
    }

    #[test]
    fn profile_warnings_reach_the_report() {
        let text =
            "profiles:\n  - id: p\n    image: x\n    containers: [{name: s, image: y, capabilities: [python], primary_for: [python, shell]}]\n";
        let (c, r) = load(text, &[]);
        c.validate().unwrap();
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let (_, r) = load("server:\n  port: 9000\n  workers: 4\nfuture_section:\n  a: 1\n", &[]);
        assert_eq!(r.unknown_keys, ["server.workers", "future_section"]);
    }

    #[test]
    fn type_errors_are_fatal_with_the_key() {
        let env: Vec<(String, String)> = vec![];
        let err = Config::from_yaml_and_env("server:\n  port: lots\n", &env).unwrap_err();
        assert!(format!("{err:#}").contains("port"), "{err:#}");
    }

    #[test]
    fn shipyard_neo_deploy_config_loads() {
        let text = r#"
server:
  host: "0.0.0.0"
  port: 8114
database:
  url: "sqlite+aiosqlite:///./data/bay.db"
  echo: false
driver:
  type: docker
  image_pull_policy: if_not_present
  docker:
    socket: "unix:///var/run/docker.sock"
    connect_mode: container_network
    network: "bay-network"
    publish_ports: false
cargo:
  root_path: "/var/lib/bay/cargos"
  default_size_limit_mb: 1024
  mount_path: "/workspace"
security:
  api_key: "CHANGE-ME"
  allow_anonymous: false
browser_service:
  enabled: true
  endpoint: "http://gull-service:8115"
gc:
  enabled: true
  run_on_startup: true
  interval_seconds: 300
  instance_id: "bay-prod"
  idle_session: { enabled: true }
  expired_sandbox: { enabled: true }
  orphan_cargo: { enabled: true }
  orphan_container: { enabled: true }
warm_pool:
  enabled: true
  warmup_queue_workers: 2
profiles:
  - id: python-default
    description: "Standard Python sandbox"
    image: "ghcr.io/astrbotdevs/shipyard-neo-ship:latest"
    runtime_type: ship
    runtime_port: 8123
    resources: { cpus: 1.0, memory: "1g" }
    capabilities: [filesystem, shell, python]
    idle_timeout: 1800
    warm_pool_size: 1
    env: { TZ: "Asia/Shanghai" }
  - id: browser-python
    description: "Browser + Python (the shared Gull)"
    image: "ghcr.io/astrbotdevs/shipyard-neo-ship:latest"
    runtime_type: ship
    runtime_port: 8123
    resources: { cpus: 1.0, memory: "1g" }
    capabilities: [filesystem, shell, python, browser]
    browser: shared
    idle_timeout: 1800
  - id: browser-python-v2
    description: "Browser + Python"
    containers:
      - name: ship
        image: "ghcr.io/astrbotdevs/shipyard-neo-ship:latest"
        runtime_type: ship
        runtime_port: 8123
        resources: { cpus: 1.0, memory: "1g" }
        capabilities: [python, shell, filesystem]
        primary_for: [filesystem, python, shell]
        env: {}
      - name: browser
        image: "ghcr.io/astrbotdevs/shipyard-neo-gull:latest"
        runtime_type: gull
        runtime_port: 8115
        resources: { cpus: 1.0, memory: "2g" }
        capabilities: [browser]
        primary_for: [browser]
        env: {}
    startup: { order: parallel, wait_for_all: true }
    idle_timeout: 1800
"#;
        let (c, r) = load(text, &[]);
        assert!(r.unknown_keys.is_empty(), "{:?}", r.unknown_keys);
        c.validate().unwrap();
        assert_eq!(c.driver.docker.connect_mode, ConnectMode::ContainerNetwork);
        assert!(!c.security.allow_anonymous);
        let profiles = c.effective_profiles();
        assert_eq!(profiles[1].capability_set(), ["filesystem", "shell", "python", "browser"]);
        assert_eq!(profiles[2].containers().len(), 2);
        assert_eq!(profiles[2].primary().name, "ship");
        assert!(r.unused_keys.iter().all(|k| !k.contains("browser")), "{:?}", r.unused_keys);
        // Acted on, with what it needs named: bind-mounted cargos and a token.
        assert!(c.browser_service.enabled);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("cargo.host_root_path") && r.warnings[1].contains("browser_service.token"), "{:?}", r.warnings);
    }

    #[test]
    fn a_shared_browser_profile_without_the_service_is_named() {
        let (_, r) = load("profiles:\n  - {id: b, image: x, capabilities: [browser], browser: shared}\n", &[]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("profiles[b].browser: shared has no effect"), "{}", r.warnings[0]);
        let (_, r) = load(
            "cargo: {root_path: /srv/c, host_root_path: /srv/c}\nbrowser_service: {enabled: true, endpoint: \"http://g:8115\", token: t}\n",
            &[],
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}
