//! The WebAssembly plugin host.
//!
//! Runtime adapters and driver extensions are WASI 0.2 components: built into
//! the `bay` binary (the first-party Ship and Gull adapters, see
//! [`builtin`]), or found in a plugins directory (one sub-directory per
//! plugin, with a `plugin.toml` manifest), where a plugin serving the same
//! runtime type overrides the built-in one. The host keeps one [`Engine`]
//! with the pooling allocator and one pre-linked component per plugin, and
//! gives every call a fresh store ([`state`]): a plugin keeps no state
//! between calls, and one that traps, loops or eats memory only fails its own
//! call.
//!
//! One module per supported WIT version (`v0_1`, `v0_2`) generates that
//! version's bindings and converts them to the version-neutral traits the
//! rest of Bay uses: [`crate::adapter::RuntimeAdapter`] (through
//! [`adapter::AdapterWorld`]) and [`crate::driver::Driver`] (through
//! [`driver::DriverWorld`]). Nothing outside a version module names a version.

pub(crate) mod adapter;
pub mod body;
mod builtin;
pub(crate) mod compile_cache;
mod convert;
pub(crate) mod driver;
mod imports;
pub mod manifest;
pub(crate) mod outbound;
mod state;
mod v0_1;
mod v0_2;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::adapter::RuntimeAdapter;
use crate::config::PluginsConfig;
pub(crate) use driver::{DriverExtension, EngineLink};
use manifest::{Manifest, PluginKind};
pub(crate) use state::{Limits, PluginState};

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
    /// Its directory, or `builtin:<name>` for a plugin built into Bay.
    pub dir: PathBuf,
    pub state: String,
    pub error: Option<String>,
    pub load_ms: u64,
    pub cached: bool,
}

/// What every loaded plugin shares: the engine, the linker, the HTTP
/// client and the pool of instance slots.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    /// WASI (nothing granted) and the host imports of every supported version.
    pub(crate) linker: Arc<Linker<PluginState>>,
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

/// Loaded plugins: per directory what was loaded last, per runtime type the
/// adapter serving it (and the directory it came from), per name the driver
/// extensions; built-in adapters serve a runtime type no directory serves.
#[derive(Default)]
struct Registry {
    dirs: std::collections::BTreeMap<PathBuf, DirState>,
    adapters: HashMap<String, (PathBuf, Arc<dyn RuntimeAdapter>)>,
    drivers: HashMap<String, (PathBuf, Arc<dyn DriverExtension>)>,
    builtin_adapters: HashMap<String, Arc<dyn RuntimeAdapter>>,
    builtin_records: Vec<PluginRecord>,
}

/// What loading a plugin produced.
pub(crate) enum Loaded {
    Adapter(Arc<dyn RuntimeAdapter>),
    Driver(String, Arc<dyn DriverExtension>),
}

/// What `bay plugin check` found in a bare component.
pub enum Checked {
    Adapter { wit: String, info: crate::adapter::AdapterInfo },
    Driver { wit: String, name: String },
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
        // What a slot keeps resident between calls is reset with memset
        // instead of madvise, which takes syscalls off every instantiation —
        // but it stays resident in every slot a burst ever touched (100
        // concurrent calls: 100 slots). A little of each (what an adapter
        // call's tables and stack top use) plus batched decommits keeps the
        // hot path cheap and a burst's memory small afterwards.
        pool.table_keep_resident(16 << 10);
        pool.async_stack_keep_resident(32 << 10);
        pool.decommit_batch_size(16);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Reserve only what the memory limit allows (bounds checks become
        // explicit; adapters are I/O bound, so that costs nothing visible).
        c.memory_reservation(config.memory_limit_mb.max(1) << 20);
    }
    c
}

/// Which WIT versions this host loads (`bay:plugin@0.1`, `@0.2`).
fn supported(wit: manifest::WitVersion) -> bool {
    wit.major == 0 && (wit.minor == v0_1::MINOR || wit.minor == v0_2::MINOR)
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
        v0_2::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("bay-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(state::EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch thread")?;
        }
        Ok(PluginHost {
            shared: Shared {
                engine,
                linker: Arc::new(linker),
                client: outbound::shared_client(),
                slots: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
            },
            config: config.clone(),
            cache_dir,
            registry: RwLock::new(Registry::default()),
            ticker_stop,
        })
    }

    /// Loads the plugins built into this binary (see [`builtin`]).
    pub async fn load_builtins(&self) -> Vec<PluginRecord> {
        let mut records = Vec::new();
        for b in builtin::PLUGINS {
            let origin = PathBuf::from(format!("builtin:{}", b.name));
            let started = Instant::now();
            let mut record = empty_record(&origin);
            let loaded = async {
                let manifest = Manifest::parse(b.manifest).context("built-in manifest")?;
                self.load_component(&manifest, b.wasm.to_vec(), &mut record).await
            }
            .await;
            finish_record(&mut record, &loaded, started);
            if let Ok(Loaded::Adapter(adapter)) = loaded {
                let rt = adapter.info().runtime_type.clone();
                self.registry.write().expect("registry").builtin_adapters.insert(rt, adapter);
            }
            match &record.error {
                None => {
                    tracing::debug!(plugin = %record.name, load_ms = record.load_ms, cached = record.cached, "built-in plugin loaded")
                }
                Some(e) => {
                    tracing::error!(plugin = %record.name, error = %e, "built-in plugin failed to load")
                }
            }
            records.push(record);
        }
        self.registry.write().expect("registry").builtin_records = records.clone();
        release_compiler_memory();
        records
    }

    /// Loads (or reloads) the plugins under `dir`: new and changed plugin
    /// directories are loaded, removed ones unloaded, unchanged ones left as
    /// they are. A plugin that fails to load is recorded with its error; if an
    /// earlier version of it was serving, that version keeps serving. Returns
    /// the records of every plugin.
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
    pub(crate) async fn load_plugin(&self, dir: &Path) -> (PluginRecord, Option<Loaded>) {
        let started = Instant::now();
        let mut record = empty_record(dir);
        let loaded = async {
            let manifest = Manifest::load(dir)?;
            let wasm = dir.join(&manifest.component);
            let bytes = std::fs::read(&wasm).with_context(|| format!("reading component {}", wasm.display()))?;
            self.load_component(&manifest, bytes, &mut record).await
        }
        .await;
        finish_record(&mut record, &loaded, started);
        (record, loaded.ok())
    }

    /// Compiles (or takes from the cache), links and describes one component
    /// of the version its manifest names.
    async fn load_component(&self, manifest: &Manifest, wasm: Vec<u8>, record: &mut PluginRecord) -> anyhow::Result<Loaded> {
        record.name = manifest.name.clone();
        record.version = manifest.version.clone();
        record.wit = manifest.wit.clone();
        record.kind = match manifest.kind {
            PluginKind::RuntimeAdapter => "runtime-adapter",
            PluginKind::Driver => "driver",
        }
        .into();
        let wit = manifest.wit_version();
        if !supported(wit) {
            bail!("{} is not supported (this host implements {} and {})", manifest.wit, v0_1::PACKAGE, v0_2::PACKAGE);
        }
        let engine = self.shared.engine.clone();
        let cache_dir = self.cache_dir.clone();
        let stem = manifest.component.file_stem().and_then(|s| s.to_str()).unwrap_or("component").to_owned();
        let (component, outcome) = tokio::task::spawn_blocking(move || compile_cache::load(&engine, &stem, &wasm, &cache_dir))
            .await
            .context("component compilation panicked")??;
        record.cached = outcome == compile_cache::CacheOutcome::Hit;
        let limits = self.limits(manifest);
        if manifest.kind == PluginKind::Driver {
            let (plugin, name) = self.load_driver(manifest, &component, limits, wit.minor).await?;
            let declared = manifest.driver.as_ref().map(|d| d.name.as_str()).unwrap_or_default();
            if name != declared {
                bail!("the manifest declares driver {declared:?} but the component describes itself as {name:?}");
            }
            record.driver = Some(name.clone());
            return Ok(Loaded::Driver(name, plugin));
        }
        let plugin = self.load_adapter(manifest, &component, limits, wit.minor).await?;
        let runtime_type = plugin.info().runtime_type.clone();
        let declared = manifest.runtime.as_ref().map(|r| r.runtime_type.as_str()).unwrap_or_default();
        if runtime_type != declared {
            bail!("the manifest declares runtime type {declared:?} but the component describes itself as {runtime_type:?}");
        }
        record.runtime_type = Some(runtime_type);
        Ok(Loaded::Adapter(plugin))
    }

    async fn load_adapter(&self, manifest: &Manifest, component: &Component, limits: Limits, minor: u64) -> anyhow::Result<Arc<dyn RuntimeAdapter>> {
        Ok(if minor == v0_1::MINOR {
            Arc::new(adapter::AdapterPlugin::<v0_1::Adapter>::load(manifest, component, &self.shared, limits).await?)
        } else {
            Arc::new(adapter::AdapterPlugin::<v0_2::Adapter>::load(manifest, component, &self.shared, limits).await?)
        })
    }

    /// Loads a driver extension; returns it and the name it describes itself by.
    async fn load_driver(
        &self,
        manifest: &Manifest,
        component: &Component,
        limits: Limits,
        minor: u64,
    ) -> anyhow::Result<(Arc<dyn DriverExtension>, String)> {
        Ok(if minor == v0_1::MINOR {
            let (p, n) = driver::DriverPlugin::<v0_1::driver::Driver>::load(manifest, component, &self.shared, limits).await?;
            (Arc::new(p), n)
        } else {
            let (p, n) = driver::DriverPlugin::<v0_2::driver::Driver>::load(manifest, component, &self.shared, limits).await?;
            (Arc::new(p), n)
        })
    }

    fn limits(&self, manifest: &Manifest) -> Limits {
        Limits {
            memory_bytes: (manifest.limits.memory_mb.unwrap_or(self.config.memory_limit_mb).min(self.config.memory_limit_mb) as usize) << 20,
            guest_time: Duration::from_millis(manifest.limits.guest_time_ms.unwrap_or(self.config.guest_time_limit_ms)),
            max_response: self.config.max_response_mb << 20,
        }
    }

    /// Validates a component without a manifest (for `bay plugin check`):
    /// compiles it, finds what it is by its export (`bay:plugin/adapter@…`
    /// or `bay:plugin/driver@…`, which also names the WIT version), links it
    /// against this host's imports for that version and calls `describe`.
    pub async fn check_component(&self, wasm: &Path) -> anyhow::Result<Checked> {
        let engine = self.shared.engine.clone();
        let path = wasm.to_path_buf();
        let component = tokio::task::spawn_blocking(move || Component::from_file(&engine, &path).map_err(|e| anyhow::anyhow!("{e:#}"))).await??;
        let exports: Vec<String> = component.component_type().exports(&self.shared.engine).map(|(name, _)| name.to_owned()).collect();
        let found = exports.iter().find_map(|name| {
            let (interface, version) = name.strip_prefix("bay:plugin/")?.split_once('@')?;
            let kind = match interface {
                "adapter" => PluginKind::RuntimeAdapter,
                "driver" => PluginKind::Driver,
                _ => return None,
            };
            Some((kind, format!("bay:plugin@{version}")))
        });
        let Some((kind, wit)) = found else {
            bail!("it exports neither a runtime adapter (bay:plugin/adapter) nor a driver (bay:plugin/driver); its exports: {exports:?}");
        };
        let version = manifest::WitVersion::parse(&wit)?;
        if !supported(version) {
            bail!("{wit} is not supported (this host implements {} and {})", v0_1::PACKAGE, v0_2::PACKAGE);
        }
        let manifest = Manifest {
            name: wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            version: "0.0.0".into(),
            kind,
            wit: wit.clone(),
            component: wasm.to_path_buf(),
            description: None,
            runtime: None,
            driver: None,
            limits: Default::default(),
            outbound: Default::default(),
        };
        let limits = self.limits(&manifest);
        Ok(match kind {
            PluginKind::RuntimeAdapter => {
                let plugin = self.load_adapter(&manifest, &component, limits, version.minor).await?;
                Checked::Adapter { wit, info: plugin.info().clone() }
            }
            PluginKind::Driver => Checked::Driver { wit, name: self.load_driver(&manifest, &component, limits, version.minor).await?.1 },
        })
    }

    /// The adapter serving a runtime type: a plugin directory's, else the built-in one.
    pub fn adapter(&self, runtime_type: &str) -> Option<Arc<dyn RuntimeAdapter>> {
        let reg = self.registry.read().expect("registry");
        reg.adapters.get(runtime_type).map(|(_, a)| a.clone()).or_else(|| reg.builtin_adapters.get(runtime_type).cloned())
    }

    /// The driver extension registered under `name` (its current version).
    pub(crate) fn driver(&self, name: &str) -> Option<Arc<dyn DriverExtension>> {
        self.registry.read().expect("registry").drivers.get(name).map(|(_, d)| d.clone())
    }

    /// Runtime types with an active adapter.
    pub fn runtime_types(&self) -> Vec<String> {
        let reg = self.registry.read().expect("registry");
        let mut v: Vec<String> = reg.adapters.keys().chain(reg.builtin_adapters.keys()).cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every plugin: built-in ones, then what was found in the plugins directory.
    pub fn records(&self) -> Vec<PluginRecord> {
        let reg = self.registry.read().expect("registry");
        let mut records = reg.builtin_records.clone();
        for r in &mut records {
            if r.runtime_type.as_ref().is_some_and(|rt| reg.adapters.contains_key(rt)) {
                r.state = "overridden by a plugin in the plugins directory".into();
            }
        }
        records.extend(reg.dirs.values().map(|s| s.record.clone()));
        records
    }
}

fn empty_record(origin: &Path) -> PluginRecord {
    PluginRecord {
        name: origin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        version: String::new(),
        kind: String::new(),
        wit: String::new(),
        runtime_type: None,
        driver: None,
        dir: origin.to_path_buf(),
        state: "failed".into(),
        error: None,
        load_ms: 0,
        cached: false,
    }
}

fn finish_record(record: &mut PluginRecord, loaded: &anyhow::Result<Loaded>, started: Instant) {
    match loaded {
        Ok(_) => record.state = "active".into(),
        Err(e) => record.error = Some(format!("{e:#}")),
    }
    record.load_ms = started.elapsed().as_millis() as u64;
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
