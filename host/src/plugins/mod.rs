//! The WebAssembly plugin host.
//!
//! Runtime adapters are WASI 0.2 components found in a plugins directory (one
//! sub-directory per plugin, with a `plugin.toml` manifest). The host keeps
//! one [`Engine`] with the pooling allocator, one `InstancePre` per plugin,
//! and gives every call a fresh [`Store`]: a plugin keeps no state between
//! calls, and one that traps, loops or eats memory only fails its own call.
//!
//! Per call, a plugin gets:
//! - a linear-memory limit (manifest `limits.memory_mb`, else the default);
//! - a guest CPU budget between host calls, enforced with epoch interruption
//!   (time spent waiting on the host's HTTP import does not count);
//! - a wall-clock deadline around the whole call;
//! - outbound HTTP only to the runtime endpoint it serves (plus the
//!   manifest's allow-list), through the host's connection pool;
//! - WASI with nothing granted: no files, no environment, no sockets.

pub mod body;
pub mod compile_cache;
pub mod manifest;
pub mod outbound;
pub mod v0_1;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::adapter::RuntimeAdapter;
use crate::config::PluginsConfig;
use manifest::{Manifest, PluginKind};
use outbound::OutboundTarget;

/// How often the engine's epoch advances; the granularity of CPU budgets.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-call limits of one plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub guest_time: Duration,
    pub max_response: u64,
}

/// The data of a plugin call's [`Store`].
pub struct PluginState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    limits: CallLimits,
    pub(crate) target: OutboundTarget,
    pub(crate) plugin: Arc<str>,
    /// When the guest last (re)gained control; the CPU budget counts from here.
    guest_since: Instant,
    guest_budget: Duration,
    /// Whether any request of this call got an answer, and whether one
    /// failed to connect: together they tell "the runtime never saw it".
    answered: bool,
    connect_failed: bool,
    /// Operator settings (driver extensions' `settings` import).
    pub(crate) settings: Arc<std::collections::BTreeMap<String, String>>,
}

impl PluginState {
    pub(crate) fn observe<T>(&mut self, result: &Result<T, outbound::OutError>) {
        match result {
            Ok(_) => self.answered = true,
            Err(outbound::OutError::ConnectFailed(_)) => self.connect_failed = true,
            Err(_) => {}
        }
    }

    /// True when the call's requests all failed to connect.
    pub(crate) fn never_connected(&self) -> bool {
        self.connect_failed && !self.answered
    }

    /// Called by host imports when they return to the guest.
    pub(crate) fn resume_guest(&mut self) {
        self.guest_since = Instant::now();
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A call's resource limits, remembering whether the guest hit the memory
/// limit (it then usually aborts, which only shows as a generic trap).
pub(crate) struct CallLimits {
    inner: StoreLimits,
    memory_bytes: usize,
    memory_denied: bool,
}

impl wasmtime::ResourceLimiter for CallLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        self.memory_denied |= !allowed;
        Ok(allowed)
    }
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Why a plugin call failed, in words an operator can act on (the full
/// error, with the wasm backtrace, goes to the log).
pub(crate) fn describe_failure(plugin: &str, e: &wasmtime::Error, state: &PluginState) -> String {
    tracing::warn!(plugin, error = ?e, "plugin call failed");
    if state.limits.memory_denied {
        return format!("it exceeded its memory limit of {} MiB", state.limits.memory_bytes >> 20);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => "it trapped (a panic or abort inside the plugin)".into(),
        Some(trap) => format!("it trapped: {trap}"),
        None => e.root_cause().to_string(),
    }
}

/// A fresh store for one call.
pub(crate) fn new_store(engine: &Engine, plugin: &str, target: OutboundTarget, limits: Limits) -> Store<PluginState> {
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    let state = PluginState {
        table: ResourceTable::new(),
        wasi: wasi.build(),
        limits: CallLimits {
            inner: StoreLimitsBuilder::new().memory_size(limits.memory_bytes).instances(16).tables(32).memories(4).build(),
            memory_bytes: limits.memory_bytes,
            memory_denied: false,
        },
        target,
        plugin: Arc::from(plugin),
        guest_since: Instant::now(),
        guest_budget: limits.guest_time,
        answered: false,
        connect_failed: false,
        settings: Default::default(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        let s = ctx.data();
        if s.guest_since.elapsed() > s.guest_budget {
            Err(wasmtime::Error::msg(format!("plugin exceeded its CPU budget of {} ms without yielding to the host", s.guest_budget.as_millis())))
        } else {
            // Let other tasks run, then check again at the next tick.
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// A plugin that was found, and whether it loaded.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub wit: String,
    pub runtime_type: Option<String>,
    /// For driver extensions: the name `driver.plugin.name` selects.
    pub driver: Option<String>,
    pub dir: PathBuf,
    pub state: String,
    pub error: Option<String>,
    pub load_ms: u64,
    pub cached: bool,
}

/// What every loaded plugin shares: the engine, the linkers, the HTTP
/// client and the pool of instance slots.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker_v0_1: Arc<Linker<PluginState>>,
    pub(crate) client: reqwest::Client,
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

pub struct PluginHost {
    shared: Shared,
    config: PluginsConfig,
    cache_dir: PathBuf,
    registry: RwLock<Registry>,
    ticker_stop: Arc<AtomicBool>,
}

/// Loaded plugins: per directory what was loaded last, and per runtime type
/// the adapter serving it (and the directory it came from).
#[derive(Default)]
struct Registry {
    dirs: std::collections::BTreeMap<PathBuf, DirState>,
    adapters: HashMap<String, (PathBuf, Arc<dyn RuntimeAdapter>)>,
    drivers: HashMap<String, (PathBuf, Arc<v0_1::driver::DriverPlugin>)>,
}

/// What loading a plugin directory produced.
pub enum Loaded {
    Adapter(Arc<dyn RuntimeAdapter>),
    Driver(String, Arc<v0_1::driver::DriverPlugin>),
}

struct DirState {
    fingerprint: u64,
    record: PluginRecord,
}

/// Makes the plugin in `dir` serve `key` (replacing its own earlier version),
/// unless another plugin directory serves it: then the conflict, as an error.
fn register<T>(map: &mut HashMap<String, (PathBuf, T)>, what: &str, key: String, dir: &Path, value: T) -> Option<String> {
    if let Some((other, _)) = map.get(&key).filter(|(other, _)| other != dir) {
        return Some(format!("{what} {key:?} is already served by the plugin in {}", other.display()));
    }
    map.retain(|_, (d, _)| d != dir);
    map.insert(key, (dir.to_path_buf(), value));
    None
}

/// Changes when the manifest or the component file changes.
fn fingerprint(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    let manifest = std::fs::read(dir.join("plugin.toml")).unwrap_or_default();
    manifest.hash(&mut h);
    if let Ok(m) = toml::from_str::<toml::Value>(&String::from_utf8_lossy(&manifest))
        && let Some(component) = m.get("component").and_then(|c| c.as_str())
        && let Ok(meta) = std::fs::metadata(dir.join(component))
    {
        meta.len().hash(&mut h);
        meta.modified().ok().hash(&mut h);
    }
    h.finish()
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(config: &PluginsConfig, pooling: bool) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    if pooling {
        let slots = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots);
        pool.total_core_instances(slots * 4);
        pool.total_memories(slots * 2);
        pool.total_tables(slots * 4);
        pool.total_stacks(slots);
        pool.max_memory_size((config.memory_limit_mb.max(1) as usize) << 20);
        // Adapters touch a few hundred KiB per call; keeping that resident
        // between calls (reset with memset instead of madvise) and batching
        // decommits takes syscalls off every instantiation.
        pool.table_keep_resident(64 << 10);
        pool.async_stack_keep_resident(128 << 10);
        pool.decommit_batch_size(16);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Reserve only what the memory limit allows (bounds checks become
        // explicit; adapters are I/O bound, so that costs nothing visible).
        c.memory_reservation(config.memory_limit_mb.max(1) << 20);
    }
    c
}

impl PluginHost {
    pub fn new(config: &PluginsConfig, cache_dir: PathBuf) -> anyhow::Result<PluginHost> {
        let engine = match Engine::new(&engine_config(config, true)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instance allocation");
                Engine::new(&engine_config(config, false)).map_err(|e| anyhow::anyhow!("{e}"))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
        v0_1::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
        v0_1::driver::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("bay-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch thread")?;
        }
        Ok(PluginHost {
            shared: Shared {
                engine,
                linker_v0_1: Arc::new(linker),
                client: outbound::shared_client(),
                slots: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
            },
            config: config.clone(),
            cache_dir,
            registry: RwLock::new(Registry::default()),
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Loads (or reloads) the plugins under `dir`: new and changed plugin
    /// directories are loaded, removed ones unloaded, unchanged ones left as
    /// they are. A plugin that fails to load is recorded with its error; if an
    /// earlier version of it was serving, that version keeps serving. Returns
    /// the records of every plugin directory.
    pub async fn scan(&self, dir: &Path) -> Vec<PluginRecord> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("plugin.toml").is_file()).collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "plugins directory is not readable");
                vec![]
            }
        };
        dirs.sort();
        let mut compiled = false;
        for d in &dirs {
            let fingerprint = fingerprint(d);
            let unchanged = self.registry.read().expect("registry").dirs.get(d).is_some_and(|s| s.fingerprint == fingerprint);
            if unchanged {
                continue;
            }
            compiled = true;
            let (mut record, loaded) = self.load_plugin(d).await;
            let mut reg = self.registry.write().expect("registry");
            // Calls in flight keep the Arc of the version they started with.
            let taken = match loaded {
                Some(Loaded::Adapter(adapter)) => {
                    let rt = adapter.info().runtime_type.clone();
                    register(&mut reg.adapters, "runtime type", rt, d, adapter)
                }
                Some(Loaded::Driver(name, driver)) => register(&mut reg.drivers, "driver", name, d, driver),
                None => {
                    if reg.adapters.values().any(|(dir, _)| dir == d) || reg.drivers.values().any(|(dir, _)| dir == d) {
                        record.state = "failed; previous version still serving".into();
                    }
                    None
                }
            };
            if let Some(conflict) = taken {
                record.state = "failed".into();
                record.error = Some(conflict);
            }
            match &record.error {
                None => {
                    tracing::info!(plugin = %record.name, version = %record.version, runtime_type = ?record.runtime_type, load_ms = record.load_ms, cached = record.cached, "plugin loaded")
                }
                Some(e) => tracing::error!(dir = %d.display(), error = %e, "plugin failed to load"),
            }
            reg.dirs.insert(d.clone(), DirState { fingerprint, record });
        }
        {
            let mut reg = self.registry.write().expect("registry");
            let gone: Vec<PathBuf> = reg.dirs.keys().filter(|d| !dirs.contains(d)).cloned().collect();
            for d in gone {
                reg.dirs.remove(&d);
                reg.adapters.retain(|_, (dir, _)| *dir != d);
                reg.drivers.retain(|_, (dir, _)| *dir != d);
                tracing::info!(dir = %d.display(), "plugin removed");
            }
        }
        if compiled {
            release_compiler_memory();
        }
        self.records()
    }

    /// Watches `dir` and applies changes as they appear (polling: it works on
    /// every filesystem, and a plugin copied in slowly is simply retried).
    /// Install a plugin atomically (write elsewhere, then rename) to avoid
    /// a failed first attempt.
    pub fn watch(self: &Arc<Self>, dir: PathBuf, every: Duration) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(host) = this.upgrade() else { return };
                host.scan(&dir).await;
            }
        });
    }

    /// Loads one plugin directory.
    pub async fn load_plugin(&self, dir: &Path) -> (PluginRecord, Option<Loaded>) {
        let started = Instant::now();
        let mut record = PluginRecord {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            version: String::new(),
            kind: String::new(),
            wit: String::new(),
            runtime_type: None,
            driver: None,
            dir: dir.to_path_buf(),
            state: "failed".into(),
            error: None,
            load_ms: 0,
            cached: false,
        };
        let loaded = match self.try_load(dir, &mut record).await {
            Ok(loaded) => {
                record.state = "active".into();
                Some(loaded)
            }
            Err(e) => {
                record.error = Some(format!("{e:#}"));
                None
            }
        };
        record.load_ms = started.elapsed().as_millis() as u64;
        (record, loaded)
    }

    async fn try_load(&self, dir: &Path, record: &mut PluginRecord) -> anyhow::Result<Loaded> {
        let manifest = Manifest::load(dir)?;
        record.name = manifest.name.clone();
        record.version = manifest.version.clone();
        record.wit = manifest.wit.clone();
        record.kind = match manifest.kind {
            PluginKind::RuntimeAdapter => "runtime-adapter",
            PluginKind::Driver => "driver",
        }
        .into();
        let wit = manifest.wit_version();
        if !wit.compatible_with(v0_1::VERSION) {
            bail!("{} is not supported (this host implements {})", manifest.wit, v0_1::VERSION);
        }
        let wasm = dir.join(&manifest.component);
        let engine = self.shared.engine.clone();
        let cache_dir = self.cache_dir.clone();
        let (component, outcome) = tokio::task::spawn_blocking(move || compile_cache::load(&engine, &wasm, &cache_dir))
            .await
            .context("component compilation panicked")??;
        record.cached = outcome == compile_cache::CacheOutcome::Hit;
        let limits = Limits {
            memory_bytes: (manifest.limits.memory_mb.unwrap_or(self.config.memory_limit_mb).min(self.config.memory_limit_mb) as usize) << 20,
            guest_time: Duration::from_millis(manifest.limits.guest_time_ms.unwrap_or(self.config.guest_time_limit_ms)),
            max_response: self.config.max_response_mb << 20,
        };
        if manifest.kind == PluginKind::Driver {
            let (plugin, name) = v0_1::driver::DriverPlugin::load(&manifest, &component, &self.shared, limits).await?;
            let declared = manifest.driver.as_ref().map(|d| d.name.as_str()).unwrap_or_default();
            if name != declared {
                bail!("the manifest declares driver {declared:?} but the component describes itself as {name:?}");
            }
            record.driver = Some(name.clone());
            return Ok(Loaded::Driver(name, Arc::new(plugin)));
        }
        let plugin = v0_1::AdapterPlugin::load(&manifest, &component, &self.shared, limits).await?;
        let runtime_type = plugin.info().runtime_type.clone();
        let declared = manifest.runtime.as_ref().map(|r| r.runtime_type.as_str()).unwrap_or_default();
        if runtime_type != declared {
            bail!("the manifest declares runtime type {declared:?} but the component describes itself as {runtime_type:?}");
        }
        record.runtime_type = Some(runtime_type);
        Ok(Loaded::Adapter(Arc::new(plugin)))
    }

    /// Validates a component against the runtime-adapter world without a
    /// manifest (for `bay plugin check`): compiles it, links it against this
    /// host's imports, checks its exports and calls `describe`.
    pub async fn check_component(&self, wasm: &Path) -> anyhow::Result<crate::adapter::AdapterInfo> {
        let engine = self.shared.engine.clone();
        let path = wasm.to_path_buf();
        let component =
            tokio::task::spawn_blocking(move || wasmtime::component::Component::from_file(&engine, &path).map_err(|e| anyhow::anyhow!("{e:#}")))
                .await??;
        let manifest = Manifest {
            name: wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            version: "0.0.0".into(),
            kind: PluginKind::RuntimeAdapter,
            wit: v0_1::VERSION.to_string(),
            component: wasm.to_path_buf(),
            description: None,
            runtime: None,
            driver: None,
            limits: Default::default(),
            outbound: Default::default(),
        };
        let limits = Limits {
            memory_bytes: (self.config.memory_limit_mb as usize) << 20,
            guest_time: Duration::from_millis(self.config.guest_time_limit_ms),
            max_response: self.config.max_response_mb << 20,
        };
        let plugin = v0_1::AdapterPlugin::load(&manifest, &component, &self.shared, limits).await?;
        Ok(plugin.info().clone())
    }

    /// The adapter serving a runtime type.
    pub fn adapter(&self, runtime_type: &str) -> Option<Arc<dyn RuntimeAdapter>> {
        self.registry.read().expect("registry").adapters.get(runtime_type).map(|(_, a)| a.clone())
    }

    /// The driver extension registered under `name` (its current version).
    pub fn driver(&self, name: &str) -> Option<Arc<v0_1::driver::DriverPlugin>> {
        self.registry.read().expect("registry").drivers.get(name).map(|(_, d)| d.clone())
    }

    /// Runtime types with an active adapter.
    pub fn runtime_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self.registry.read().expect("registry").adapters.keys().cloned().collect();
        v.sort();
        v
    }

    /// What was found in the plugins directory, and its state.
    pub fn records(&self) -> Vec<PluginRecord> {
        self.registry.read().expect("registry").dirs.values().map(|s| s.record.clone()).collect()
    }
}

/// Compiling components leaves several MB of freed Cranelift allocations in
/// the allocator's arenas; hand them back to the OS so an idle Bay stays small.
fn release_compiler_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by glibc's allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
