//! Runtime-adapter plugins, whatever their WIT version.
//!
//! Each supported version (`v0_1`, `v0_2`) implements [`AdapterWorld`] over
//! its generated bindings: instantiate, and convert Bay's version-neutral
//! calls and answers (`crate::adapter`) to and from its own types. Everything
//! else — a fresh store per call, limits, deadlines, failure reports — is
//! here, once, in [`AdapterPlugin`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::outbound::OutboundTarget;
use super::state::{Limits, PluginState, describe_failure, new_store};
use crate::adapter::{
    AdapterError, AdapterInfo, CapabilityCall, CapabilityOutcome, HealthStatus, LiveOp, LiveRequest, RuntimeAdapter, RuntimeLink, RuntimeMeta,
};

/// One WIT version's runtime-adapter world: its bindings, instantiated.
pub(crate) trait AdapterWorld: Sized + Send + Sync + 'static {
    /// The pre-linked component of this version.
    type Pre: Send + Sync + 'static;
    /// `bay:plugin@0.x`, for messages.
    const PACKAGE: &'static str;

    fn prepare(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<Self>> + Send;
    fn describe(&self, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<AdapterInfo>> + Send;
    fn health(&self, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<Result<HealthStatus, AdapterError>>> + Send;
    fn meta(&self, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<Result<RuntimeMeta, AdapterError>>> + Send;
    fn invoke(
        &self,
        store: &mut Store<PluginState>,
        call: CapabilityCall,
    ) -> impl Future<Output = wasmtime::Result<Result<CapabilityOutcome, AdapterError>>> + Send;
    /// Maps a live operation onto a runtime request (versions without live
    /// operations answer `unsupported`).
    fn live(&self, store: &mut Store<PluginState>, op: LiveOp) -> impl Future<Output = wasmtime::Result<Result<LiveRequest, AdapterError>>> + Send;
}

/// A loaded runtime-adapter plugin.
pub(crate) struct AdapterPlugin<W: AdapterWorld> {
    name: String,
    version: String,
    info: AdapterInfo,
    pre: W::Pre,
    shared: super::Shared,
    limits: Limits,
    allow: Arc<Vec<String>>,
}

impl<W: AdapterWorld> AdapterPlugin<W> {
    /// Links `component` against the host's imports, checks its exports and
    /// asks it to describe itself.
    pub(crate) async fn load(
        manifest: &super::manifest::Manifest,
        component: &Component,
        shared: &super::Shared,
        limits: Limits,
    ) -> anyhow::Result<AdapterPlugin<W>> {
        let instance_pre =
            shared.linker.instantiate_pre(component).map_err(|e| anyhow::anyhow!("the component does not fit the host's imports: {e:#}"))?;
        let pre = W::prepare(instance_pre)
            .map_err(|e| anyhow::anyhow!("the component does not export the runtime-adapter world of {}: {e:#}", W::PACKAGE))?;
        let mut plugin: AdapterPlugin<W> = AdapterPlugin {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            info: AdapterInfo { runtime_type: String::new(), version: String::new(), capabilities: vec![] },
            pre,
            shared: shared.clone(),
            limits,
            allow: Arc::new(manifest.outbound.allow.clone()),
        };
        let (mut store, bindings, _permit) = plugin.instantiate(None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        plugin.info = tokio::time::timeout(Duration::from_secs(10), bindings.describe(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("describe() did not return within 10 s"))?
            .map_err(|e| anyhow::anyhow!("describe() failed: {e:#}"))?;
        Ok(plugin)
    }

    async fn instantiate(&self, runtime: Option<&RuntimeLink>) -> Result<(Store<PluginState>, W, OwnedSemaphorePermit), AdapterError> {
        // Calls beyond the pool's capacity wait for a slot instead of failing.
        let permit = self.shared.slots.clone().acquire_owned().await.map_err(|_| AdapterError::Plugin("plugin host is shutting down".into()))?;
        let target = OutboundTarget::new(runtime, self.allow.clone(), self.shared.client.clone(), self.limits.max_response)
            .map_err(AdapterError::InvalidRequest)?;
        let mut store = new_store(&self.shared.engine, &self.name, target, self.limits);
        let bindings = W::instantiate(&self.pre, &mut store).await.map_err(|e| self.trap(e))?;
        Ok((store, bindings, permit))
    }

    fn trap(&self, e: wasmtime::Error) -> AdapterError {
        AdapterError::Plugin(format!("runtime adapter plugin {} {} failed: {e:#}", self.name, self.version))
    }

    /// Runs one export under the call's deadline; a failure is described
    /// with what the store saw (memory limit hit, trap kind, CPU budget).
    async fn run<T>(
        &self,
        deadline: Duration,
        store: &mut Store<PluginState>,
        f: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(deadline, f(&mut *store)).await {
            Ok(Ok(Ok(v))) => Ok(v),
            // Nothing reached the runtime: the caller may safely retry elsewhere.
            Ok(Ok(Err(AdapterError::Unreachable(m)))) if store.data().never_connected() => Err(AdapterError::NotConnected(m)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(AdapterError::Plugin(format!(
                "runtime adapter plugin {} {} failed: {}",
                self.name,
                self.version,
                describe_failure(&self.name, &e, store.data())
            ))),
            Err(_) => Err(AdapterError::Timeout(format!("runtime adapter plugin {} did not finish within {}s", self.name, deadline.as_secs()))),
        }
    }
}

#[async_trait]
impl<W: AdapterWorld> RuntimeAdapter for AdapterPlugin<W> {
    fn info(&self) -> &AdapterInfo {
        &self.info
    }

    fn plugin(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    async fn health(&self, runtime: &RuntimeLink) -> Result<HealthStatus, AdapterError> {
        let (mut store, b, _permit) = self.instantiate(Some(runtime)).await?;
        self.run(Duration::from_secs(30), &mut store, async |s| b.health(s).await).await
    }

    async fn meta(&self, runtime: &RuntimeLink) -> Result<RuntimeMeta, AdapterError> {
        let (mut store, b, _permit) = self.instantiate(Some(runtime)).await?;
        self.run(Duration::from_secs(30), &mut store, async |s| b.meta(s).await).await
    }

    async fn invoke(&self, runtime: &RuntimeLink, call: CapabilityCall) -> Result<CapabilityOutcome, AdapterError> {
        let started = Instant::now();
        let deadline = call.deadline();
        let (mut store, b, _permit) = self.instantiate(Some(runtime)).await?;
        let outcome = self.run(deadline, &mut store, async |s| b.invoke(s, call).await).await;
        tracing::trace!(plugin = %self.name, elapsed_us = started.elapsed().as_micros() as u64, "plugin call");
        outcome
    }

    async fn live(&self, op: LiveOp) -> Result<LiveRequest, AdapterError> {
        // Pure mapping: the call reaches nothing.
        let (mut store, b, _permit) = self.instantiate(None).await?;
        self.run(std::time::Duration::from_secs(10), &mut store, async |s| b.live(s, op).await).await
    }
}
