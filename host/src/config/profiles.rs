//! Profiles: what a sandbox runs (Shipyard Neo's contract, docs/compatibility.md).
//!
//! Schema v1 describes one container with top-level `image`/`runtime_type`/…;
//! schema v2 lists `containers`. Both normalise to a list of [`ContainerSpec`]
//! (a v1 profile becomes one container named `primary`), which is all the rest
//! of Bay looks at.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::ProxyConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub cpus: f64,
    pub memory: String,
}
impl Default for Resources {
    fn default() -> Self {
        Resources { cpus: 1.0, memory: "1g".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartupConfig {
    pub order: String,
    pub wait_for_all: bool,
    /// Bay extension: how long this profile's runtimes may take to answer
    /// `/health` (default: `sessions.ready_timeout_seconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_timeout_seconds: Option<u64>,
}
impl Default for StartupConfig {
    fn default() -> Self {
        StartupConfig { order: "parallel".into(), wait_for_all: true, ready_timeout_seconds: None }
    }
}

/// Bay extension: how a profile's containers are confined. The defaults are
/// what the Ship and Gull runtimes need and nothing more (see docs/runtimes.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Root filesystem read-only; `/workspace` (the cargo) and the `tmpfs`
    /// mounts stay writable.
    pub read_only_rootfs: bool,
    pub no_new_privileges: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub pids_limit: i64,
    /// Mount point → options (`size=256m,mode=1777`).
    pub tmpfs: BTreeMap<String, String>,
    /// Run as this user instead of the image's (`uid[:gid]`).
    pub user: Option<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            read_only_rootfs: true,
            no_new_privileges: true,
            cap_drop: vec!["ALL".into()],
            cap_add: vec![],
            pids_limit: 256,
            tmpfs: BTreeMap::from([
                ("/tmp".to_owned(), "rw,nosuid,nodev,size=512m,mode=1777".to_owned()),
                ("/var/tmp".to_owned(), "rw,nosuid,nodev,size=64m,mode=1777".to_owned()),
            ]),
            user: None,
        }
    }
}

impl SecurityConfig {
    /// As the driver contract carries it.
    pub fn to_driver(&self) -> crate::driver::Security {
        crate::driver::Security {
            read_only_rootfs: self.read_only_rootfs,
            no_new_privileges: self.no_new_privileges,
            cap_drop: self.cap_drop.clone(),
            cap_add: self.cap_add.clone(),
            pids_limit: self.pids_limit,
            tmpfs: self.tmpfs.clone(),
            user: self.user.clone(),
        }
    }
}

fn default_runtime_type() -> String {
    "ship".into()
}
fn default_runtime_port() -> u16 {
    8123
}
fn default_health_path() -> String {
    "/health".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    #[serde(default = "default_runtime_type")]
    pub runtime_type: String,
    #[serde(default = "default_runtime_port")]
    pub runtime_port: u16,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub primary_for: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
    /// Bay extension: overrides the profile's `security` for this container.
    #[serde(default)]
    pub security: Option<SecurityConfig>,
}

fn default_idle_timeout() -> i64 {
    1800
}
fn default_rotate_ttl() -> i64 {
    1800
}
fn default_paused_timeout() -> i64 {
    86_400
}

/// What an idle session becomes (`idle_action`, a Bay extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleAction {
    /// Stopped: the containers go, the cargo stays (Shipyard Neo's behaviour).
    #[default]
    Stop,
    /// Paused: frozen with its memory (Python state) kept, no CPU; stopped
    /// after `paused_timeout`. A driver that cannot pause stops it instead.
    Pause,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileConfig {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub runtime_type: Option<String>,
    #[serde(default)]
    pub runtime_port: Option<u16>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    #[serde(default)]
    pub containers: Option<Vec<ContainerSpec>>,
    #[serde(default)]
    pub startup: StartupConfig,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: i64,
    /// Bay extension: what an idle session becomes (`stop`, `pause`).
    #[serde(default)]
    pub idle_action: IdleAction,
    /// Bay extension: seconds a paused session is kept before it is stopped.
    #[serde(default = "default_paused_timeout")]
    pub paused_timeout: i64,
    #[serde(default)]
    pub warm_pool_size: u32,
    #[serde(default = "default_rotate_ttl")]
    pub warm_rotate_ttl: i64,
    #[serde(default)]
    pub warm_claim_timeout_ms: Option<u64>,
    #[serde(default)]
    pub warmup_retry_max_attempts: Option<u32>,
    #[serde(default)]
    pub warmup_retry_backoff_base_ms: Option<u64>,
    #[serde(default)]
    pub warmup_retry_backoff_max_ms: Option<u64>,
    #[serde(default)]
    pub warmup_circuit_breaker_threshold: Option<u32>,
    #[serde(default)]
    pub browser: Option<String>,
    /// Bay extension: start the session in the background right after
    /// create (unset: `sessions.warmup_on_create`). Shipyard Neo starts it on
    /// the first capability call, so a fresh sandbox reads `idle`.
    #[serde(default)]
    pub start_on_create: Option<bool>,
    /// Bay extension: container confinement (defaults: hardened).
    #[serde(default)]
    pub security: SecurityConfig,
}

/// The capabilities a container has when a v1 profile does not say.
pub const DEFAULT_CAPABILITIES: [&str; 3] = ["filesystem", "shell", "python"];

impl ProfileConfig {
    /// A v1 profile with one `ship` container, as the built-in defaults are.
    pub fn simple(id: &str, image: &str, cpus: f64, memory: &str) -> ProfileConfig {
        ProfileConfig {
            id: id.into(),
            description: None,
            image: Some(image.into()),
            runtime_type: Some("ship".into()),
            runtime_port: Some(8123),
            resources: Some(Resources { cpus, memory: memory.into() }),
            capabilities: Some(DEFAULT_CAPABILITIES.map(String::from).to_vec()),
            env: None,
            proxy: None,
            containers: None,
            startup: StartupConfig::default(),
            start_on_create: None,
            idle_timeout: 1800,
            idle_action: IdleAction::Stop,
            paused_timeout: default_paused_timeout(),
            warm_pool_size: 0,
            warm_rotate_ttl: 1800,
            warm_claim_timeout_ms: None,
            warmup_retry_max_attempts: None,
            warmup_retry_backoff_base_ms: None,
            warmup_retry_backoff_max_ms: None,
            warmup_circuit_breaker_threshold: None,
            browser: None,
            security: SecurityConfig::default(),
        }
    }

    /// The normalised container list (v1 → one container named `primary`;
    /// neither `image` nor `containers` → the default `ship:latest`).
    pub fn containers(&self) -> Vec<ContainerSpec> {
        if let Some(c) = self.containers.as_ref().filter(|c| !c.is_empty()) {
            return c.clone();
        }
        let caps = self.capabilities.clone().unwrap_or_else(|| DEFAULT_CAPABILITIES.map(String::from).to_vec());
        vec![ContainerSpec {
            name: "primary".into(),
            image: self.image.clone().unwrap_or_else(|| "ship:latest".into()),
            runtime_type: self.runtime_type.clone().unwrap_or_else(default_runtime_type),
            runtime_port: self.runtime_port.unwrap_or(8123),
            resources: self.resources.clone().unwrap_or_default(),
            capabilities: caps.clone(),
            primary_for: caps,
            env: self.env.clone().unwrap_or_default(),
            proxy: self.proxy.clone(),
            health_check_path: default_health_path(),
            security: None,
        }]
    }

    /// The primary container: the first named `primary` or `ship`, else the first.
    pub fn primary(&self) -> ContainerSpec {
        let containers = self.containers();
        containers.iter().find(|c| c.name == "primary" || c.name == "ship").cloned().unwrap_or_else(|| containers[0].clone())
    }

    /// The capability set of the profile: `capabilities` when set (in config
    /// order), else the sorted union over the containers.
    pub fn capability_set(&self) -> Vec<String> {
        if let Some(c) = &self.capabilities {
            return c.clone();
        }
        let mut all: Vec<String> = self.containers().into_iter().flat_map(|c| c.capabilities).collect();
        all.sort();
        all.dedup();
        all
    }

    /// The container serving a capability: the first listing it in
    /// `primary_for`, else the first listing it in `capabilities`.
    pub fn container_for(&self, capability: &str) -> Option<ContainerSpec> {
        let containers = self.containers();
        containers
            .iter()
            .find(|c| c.primary_for.iter().any(|x| x == capability))
            .or_else(|| containers.iter().find(|c| c.capabilities.iter().any(|x| x == capability)))
            .cloned()
    }

    /// The confinement of a container: its own, else the profile's.
    pub fn security_for(&self, container: &ContainerSpec) -> SecurityConfig {
        container.security.clone().unwrap_or_else(|| self.security.clone())
    }

    /// The environment of a container: the profile's `env` (v1) and the
    /// container's own `env` (the container wins).
    pub fn env_for(&self, container: &ContainerSpec) -> BTreeMap<String, String> {
        let mut env = self.env.clone().unwrap_or_default();
        env.extend(container.env.clone());
        env
    }

    /// What Shipyard Neo accepts in this profile and Bay accepts the same
    /// way, but which is likely a mistake: one line each, logged at startup.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let id = &self.id;
        if self.containers.as_ref().is_some_and(|c| !c.is_empty()) {
            let v1 = [
                ("image", self.image.is_some()),
                ("runtime_type", self.runtime_type.is_some()),
                ("runtime_port", self.runtime_port.is_some()),
                ("resources", self.resources.is_some()),
            ];
            let set: Vec<&str> = v1.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect();
            if !set.is_empty() {
                out.push(format!(
                    "profile {id:?} sets both `containers` (schema v2) and {} (schema v1): the containers are used and {} ignored, as in Shipyard Neo; remove {} or move it into a container",
                    set.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    if set.len() == 1 { "it is" } else { "they are" },
                    if set.len() == 1 { "it" } else { "them" },
                ));
            }
        }
        let offered = self.capability_set();
        for c in self.containers() {
            for cap in c.primary_for.iter().filter(|cap| !c.capabilities.contains(cap)) {
                let effect = if offered.contains(cap) {
                    format!("{cap} calls are routed to it anyway")
                } else {
                    format!("the profile does not offer {cap} (no capabilities list it), so its calls are refused")
                };
                out.push(format!(
                    "profile {id:?}: container {:?} is primary_for {cap:?} but does not list it in `capabilities`: {effect}, as in Shipyard Neo; add {cap:?} to its capabilities or remove it from primary_for",
                    c.name
                ));
            }
        }
        out
    }

    /// Keys of this profile that Bay reads but does not act on (set to
    /// something other than what Bay does anyway), as `profiles[id].key`.
    pub fn unused_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let key = |k: &str| format!("profiles[{}].{k}", self.id);
        for (name, set) in [
            ("warm_claim_timeout_ms", self.warm_claim_timeout_ms.is_some()),
            ("warmup_retry_max_attempts", self.warmup_retry_max_attempts.is_some()),
            ("warmup_retry_backoff_base_ms", self.warmup_retry_backoff_base_ms.is_some()),
            ("warmup_retry_backoff_max_ms", self.warmup_retry_backoff_max_ms.is_some()),
            ("warmup_circuit_breaker_threshold", self.warmup_circuit_breaker_threshold.is_some()),
            // Bay starts a session's containers in parallel and waits for all.
            ("startup.order", self.startup.order != "parallel"),
            ("startup.wait_for_all", !self.startup.wait_for_all),
        ] {
            if set {
                keys.push(key(name));
            }
        }
        for c in self.containers.iter().flatten() {
            if c.health_check_path != default_health_path() {
                keys.push(key(&format!("containers[{}].health_check_path", c.name)));
            }
        }
        keys
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.id.trim().is_empty() {
            bail!("a profile has an empty id");
        }
        let ctx = || format!("profile {:?}", self.id);
        let containers = self.containers();
        let mut names = std::collections::HashSet::new();
        for c in &containers {
            if c.name.is_empty() || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                bail!("{}: container name {:?} must be non-empty [A-Za-z0-9_-]", ctx(), c.name);
            }
            if !names.insert(c.name.as_str()) {
                bail!("{}: duplicate container name {:?}", ctx(), c.name);
            }
            if c.image.is_empty() {
                bail!("{}: container {:?} has no image", ctx(), c.name);
            }
            if c.resources.cpus <= 0.0 {
                bail!("{}: container {:?}: resources.cpus must be positive", ctx(), c.name);
            }
            parse_memory(&c.resources.memory).with_context(|| format!("{}: container {:?}: resources.memory", ctx(), c.name))?;
            for key in c.env.keys().chain(self.env.iter().flat_map(|e| e.keys())) {
                if key.is_empty() || key.contains('=') {
                    bail!("{}: invalid env name {key:?}", ctx());
                }
            }
        }
        if self.idle_timeout <= 0 {
            bail!("{}: idle_timeout must be positive", ctx());
        }
        if self.paused_timeout <= 0 || self.paused_timeout > crate::ids::MAX_TTL_SECS {
            bail!("{}: paused_timeout must be between 1 and {} seconds", ctx(), crate::ids::MAX_TTL_SECS);
        }
        if let Some(b) = &self.browser
            && b != "shared"
            && b != "isolated"
        {
            bail!("{}: browser must be `shared` or `isolated`", ctx());
        }
        if self.startup.order != "parallel" && self.startup.order != "sequential" {
            bail!("{}: startup.order must be `parallel` or `sequential`", ctx());
        }
        Ok(())
    }
}

/// The smallest memory limit Docker accepts (6 MiB).
pub const MIN_MEMORY: u64 = 6 << 20;

/// Parses Docker-style memory sizes: `512m`, `1g`, `1.5g`, `1Gi`, `1024k`,
/// or plain bytes. `k/m/g` are binary multiples, as Docker treats them.
pub fn parse_memory(text: &str) -> anyhow::Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let value: f64 = num.trim().parse().with_context(|| format!("invalid memory size {text:?}"))?;
    if value.is_nan() || value <= 0.0 {
        bail!("memory size {text:?} must be positive");
    }
    let bytes = (value * mult as f64) as u64;
    if bytes < MIN_MEMORY {
        // Shipyard Neo loads such a profile, and then every session of it
        // fails to start (the engine refuses the container).
        bail!("memory size {text:?} is below 6 MiB, the least Docker accepts for a container: set it to \"6m\" or more");
    }
    Ok(bytes)
}

/// Built-in profiles used when the configuration has none.
pub fn default_profiles() -> Vec<ProfileConfig> {
    let mut default = ProfileConfig::simple("python-default", "ship:latest", 1.0, "1g");
    default.description = Some("Python, shell and files in one container".into());
    let mut data = ProfileConfig::simple("python-data", "ship:data", 2.0, "4g");
    data.description = Some("Python for data work: more CPU and memory".into());
    vec![default, data]
}

/// Loads every `*.yaml`/`*.yml` file of a directory as one profile, sorted by
/// file name.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<ProfileConfig>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading profiles_dir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)?;
            yaml_serde::from_str(&text).with_context(|| format!("invalid profile file {}", p.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_normalises_to_one_primary_container() {
        let p: ProfileConfig = yaml_serde::from_str("id: p\nimage: ship:latest\nresources: {cpus: 2, memory: 2g}\nenv: {A: b}\n").unwrap();
        p.validate().unwrap();
        let c = p.containers();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "primary");
        assert_eq!(c[0].runtime_type, "ship");
        assert_eq!(c[0].runtime_port, 8123);
        assert_eq!(c[0].capabilities, ["filesystem", "shell", "python"]);
        assert_eq!(p.env_for(&c[0])["A"], "b");
        assert_eq!(p.capability_set(), ["filesystem", "python", "shell"]);
    }

    #[test]
    fn capabilities_keep_config_order_when_set() {
        let p: ProfileConfig = yaml_serde::from_str("id: p\nimage: x\ncapabilities: [python, filesystem]\n").unwrap();
        assert_eq!(p.capability_set(), ["python", "filesystem"]);
        assert!(p.container_for("shell").is_none());
    }

    #[test]
    fn v2_routes_by_primary_for_then_capabilities() {
        let p: ProfileConfig = yaml_serde::from_str(
            r#"
id: bp
containers:
  - {name: browser, image: gull:latest, runtime_type: gull, runtime_port: 8115, capabilities: [browser, filesystem]}
  - {name: ship, image: ship:latest, capabilities: [python, shell, filesystem], primary_for: [filesystem]}
"#,
        )
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.primary().name, "ship");
        assert_eq!(p.container_for("filesystem").unwrap().name, "ship");
        assert_eq!(p.container_for("browser").unwrap().name, "browser");
        assert_eq!(p.capability_set(), ["browser", "filesystem", "python", "shell"]);
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let bad = [
            "id: a\ncontainers: [{name: s, image: y}, {name: s, image: z}]\n",
            "id: a\nimage: x\nresources: {cpus: 1, memory: lots}\n",
            "id: a\nimage: x\nidle_timeout: 0\n",
            "id: a\nimage: x\nbrowser: maybe\n",
        ];
        for text in bad {
            let p: ProfileConfig = yaml_serde::from_str(text).unwrap();
            assert!(p.validate().is_err(), "{text}");
        }
    }

    #[test]
    fn image_beside_containers_is_ignored_with_a_warning() {
        let p: ProfileConfig =
            yaml_serde::from_str("id: a\nimage: x\nruntime_port: 9\ncontainers: [{name: s, image: y, capabilities: [python]}]\n").unwrap();
        p.validate().unwrap();
        assert_eq!(p.containers().len(), 1);
        assert_eq!(p.primary().image, "y");
        let w = p.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`image`, `runtime_port`") && w[0].contains("ignored"), "{}", w[0]);
        let v2: ProfileConfig = yaml_serde::from_str("id: a\ncontainers: [{name: s, image: y}]\n").unwrap();
        assert!(v2.warnings().is_empty());
    }

    #[test]
    fn primary_for_beyond_capabilities_routes_there_with_a_warning() {
        let p: ProfileConfig = yaml_serde::from_str(
            "id: a\ncontainers: [{name: s, image: y, capabilities: [python], primary_for: [shell]}, {name: t, image: z, capabilities: [shell]}]\n",
        )
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.container_for("shell").unwrap().name, "s");
        let w = p.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("\"s\" is primary_for \"shell\"") && w[0].contains("routed to it anyway"), "{}", w[0]);
        let alone: ProfileConfig =
            yaml_serde::from_str("id: a\ncontainers: [{name: s, image: y, capabilities: [python], primary_for: [shell]}]\n").unwrap();
        alone.validate().unwrap();
        assert!(alone.warnings()[0].contains("does not offer shell"), "{:?}", alone.warnings());
    }

    #[test]
    fn unused_profile_keys_are_listed_only_when_they_would_change_something() {
        let p: ProfileConfig = yaml_serde::from_str(
            "id: a\nimage: x\nwarmup_retry_max_attempts: 3\nwarmup_circuit_breaker_threshold: 10\nstartup: {order: parallel, wait_for_all: true}\nbrowser: isolated\n",
        )
        .unwrap();
        assert_eq!(p.unused_keys(), ["profiles[a].warmup_retry_max_attempts", "profiles[a].warmup_circuit_breaker_threshold"]);
        let p: ProfileConfig = yaml_serde::from_str(
            "id: b\nstartup: {order: sequential, wait_for_all: false}\nbrowser: shared\nwarm_claim_timeout_ms: 200\nwarmup_retry_backoff_base_ms: 1\nwarmup_retry_backoff_max_ms: 2\ncontainers: [{name: s, image: y, health_check_path: /healthz}]\n",
        )
        .unwrap();
        assert_eq!(
            p.unused_keys(),
            [
                "profiles[b].warm_claim_timeout_ms",
                "profiles[b].warmup_retry_backoff_base_ms",
                "profiles[b].warmup_retry_backoff_max_ms",
                "profiles[b].startup.order",
                "profiles[b].startup.wait_for_all",
                "profiles[b].containers[s].health_check_path",
            ]
        );
    }

    #[test]
    fn memory_below_dockers_minimum_is_refused_saying_how_to_fix_it() {
        let p: ProfileConfig = yaml_serde::from_str("id: a\nimage: x\nresources: {cpus: 1, memory: 4m}\n").unwrap();
        let err = format!("{:#}", p.validate().unwrap_err());
        assert!(err.contains("resources.memory") && err.contains("below 6 MiB") && err.contains("\"6m\" or more"), "{err}");
        assert_eq!(parse_memory("6m").unwrap(), MIN_MEMORY);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("2GB").unwrap(), 2 << 30);
        assert!(parse_memory("1").is_err());
        assert!(parse_memory("-1g").is_err());
        assert!(parse_memory("g").is_err());
    }
}
