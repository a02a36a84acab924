//! The data of one plugin call's [`Store`] and the limits it runs under.
//!
//! Every call gets a fresh store: a linear-memory limit, a guest CPU budget
//! between host calls (epoch interruption: time spent waiting on the host's
//! HTTP import does not count), outbound HTTP bound to one target, and WASI
//! with nothing granted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::body::HostBody;
use super::outbound::{self, OutboundTarget};

/// How often the engine's epoch advances; the granularity of CPU budgets.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    pub(crate) fn take_body(&mut self, body: wasmtime::component::Resource<HostBody>) -> wasmtime::Result<HostBody> {
        Ok(self.table.delete(body)?)
    }

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
