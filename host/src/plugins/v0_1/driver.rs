//! Host side of the `driver-extension` world of `bay:plugin@0.1.x`.
//!
//! The world shares the `http` and `log` imports with runtime adapters (their
//! host implementations live in the parent module and are reused here); it
//! adds `settings`, and exports `driver`, whose functions map one to one onto
//! [`crate::driver::Driver`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::driver::{ContainerLaunch, ContainerState, ContainerStatus, DriverError, Labels, Named, RuntimeInstance};
use crate::plugins::PluginState;
use crate::plugins::outbound::OutboundTarget;

wasmtime::component::bindgen!({
    world: "driver-extension",
    path: "../wit/bay-plugin-0.1",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "bay:plugin/http": super::bay::plugin::http,
        "bay:plugin/log": super::bay::plugin::log,
    },
});

use exports::bay::plugin::driver as wit;

/// Adds the imports only this world has (`settings`) to a linker that has
/// the runtime-adapter imports already.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    self::bay::plugin::settings::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl self::bay::plugin::settings::Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).cloned())
    }
}

/// Where a driver's calls go: the engine endpoint and the operator's settings.
#[derive(Clone)]
pub struct EngineLink {
    pub target: OutboundTarget,
    pub settings: Arc<BTreeMap<String, String>>,
}

/// A loaded driver-extension plugin of this WIT version.
pub struct DriverPlugin {
    name: String,
    version: String,
    pre: DriverExtensionPre<PluginState>,
    shared: crate::plugins::Shared,
    limits: crate::plugins::Limits,
}

/// Engine calls may wait on the engine (stopping a container takes up to its
/// grace period), so a driver call gets longer than a plugin's CPU budget.
const CALL_DEADLINE: Duration = Duration::from_secs(120);

fn labels(l: &Labels) -> Vec<(String, String)> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn from_wit(e: wit::DriverError) -> DriverError {
    match e {
        wit::DriverError::ImageMissing(m) => DriverError::ImageMissing(m),
        wit::DriverError::NotFound(m) => DriverError::NotFound(m),
        wit::DriverError::Engine(m) => DriverError::Engine(m),
    }
}

fn named(v: Vec<wit::Named>) -> Vec<Named> {
    v.into_iter().map(|n| Named { name: n.name, labels: n.labels.into_iter().collect() }).collect()
}

/// Calls one export of a fresh instance: `call!(self, link, method(args...))`.
macro_rules! call {
    ($self:ident, $link:ident, $method:ident($($arg:expr),*)) => {{
        let (mut store, bindings, _permit) = $self.instantiate($link).await?;
        let outcome = tokio::time::timeout(CALL_DEADLINE, bindings.bay_plugin_driver().$method(&mut store $(, $arg)*)).await;
        match outcome {
            Ok(Ok(r)) => r.map_err(from_wit),
            Ok(Err(e)) => Err(DriverError::Engine(format!(
                "driver plugin {} {} failed: {}",
                $self.name,
                $self.version,
                crate::plugins::describe_failure(&$self.name, &e, store.data())
            ))),
            Err(_) => Err(DriverError::Engine(format!("driver plugin {} did not answer within {}s", $self.name, CALL_DEADLINE.as_secs()))),
        }
    }};
}

impl DriverPlugin {
    /// Links `component` against this version's imports, checks its exports,
    /// and calls `describe`; returns the plugin and its self-declared name.
    pub(crate) async fn load(
        manifest: &crate::plugins::manifest::Manifest,
        component: &Component,
        shared: &crate::plugins::Shared,
        limits: crate::plugins::Limits,
    ) -> anyhow::Result<(DriverPlugin, String)> {
        let instance_pre =
            shared.linker_v0_1.instantiate_pre(component).map_err(|e| anyhow::anyhow!("the component does not fit the host's imports: {e:#}"))?;
        let pre = DriverExtensionPre::new(instance_pre)
            .map_err(|e| anyhow::anyhow!("the component does not export the driver-extension world of bay:plugin@0.1: {e:#}"))?;
        let plugin = DriverPlugin { name: manifest.name.clone(), version: manifest.version.clone(), pre, shared: shared.clone(), limits };
        let link = EngineLink { target: OutboundTarget::none(shared.client.clone()), settings: Default::default() };
        let (mut store, bindings, _permit) = plugin.instantiate(&link).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = tokio::time::timeout(Duration::from_secs(10), bindings.bay_plugin_driver().call_describe(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("describe() did not return within 10 s"))?
            .map_err(|e| anyhow::anyhow!("describe() failed: {e:#}"))?;
        Ok((plugin, info.name))
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    async fn instantiate(&self, link: &EngineLink) -> Result<(Store<PluginState>, DriverExtension, OwnedSemaphorePermit), DriverError> {
        let permit = self.shared.slots.clone().acquire_owned().await.map_err(|_| DriverError::Engine("plugin host is shutting down".into()))?;
        let mut store = crate::plugins::new_store(&self.shared.engine, &self.name, link.target.clone(), self.limits);
        store.data_mut().settings = link.settings.clone();
        let bindings = self.pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e))?;
        Ok((store, bindings, permit))
    }

    fn trap(&self, e: wasmtime::Error) -> DriverError {
        DriverError::Engine(format!("driver plugin {} {} failed: {e:#}", self.name, self.version))
    }

    pub async fn create_volume(&self, link: &EngineLink, name: &str, l: &Labels) -> Result<String, DriverError> {
        call!(self, link, call_create_volume(name, &labels(l)))
    }

    pub async fn delete_volume(&self, link: &EngineLink, driver_ref: &str) -> Result<(), DriverError> {
        call!(self, link, call_delete_volume(driver_ref))
    }

    pub async fn volume_exists(&self, link: &EngineLink, driver_ref: &str) -> Result<bool, DriverError> {
        call!(self, link, call_volume_exists(driver_ref))
    }

    pub async fn list_volumes(&self, link: &EngineLink, l: &Labels) -> Result<Vec<Named>, DriverError> {
        call!(self, link, call_list_volumes(&labels(l))).map(named)
    }

    pub async fn create_container(&self, link: &EngineLink, spec: &ContainerLaunch) -> Result<String, DriverError> {
        let s = &spec.security;
        let spec = wit::ContainerSpec {
            name: spec.name.clone(),
            image: spec.image.clone(),
            env: spec.env.clone(),
            labels: labels(&spec.labels),
            cpus: spec.cpus,
            memory_bytes: spec.memory_bytes,
            security: wit::Security {
                read_only_rootfs: s.read_only_rootfs,
                no_new_privileges: s.no_new_privileges,
                cap_drop: s.cap_drop.clone(),
                cap_add: s.cap_add.clone(),
                pids_limit: s.pids_limit,
                tmpfs: s.tmpfs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                user: s.user.clone(),
            },
            volume: spec.volume.clone(),
            mount_path: spec.mount_path.clone(),
            runtime_port: spec.runtime_port,
            hostname: spec.hostname.clone(),
            network: spec.network.clone(),
        };
        call!(self, link, call_create_container(&spec))
    }

    pub async fn start_container(&self, link: &EngineLink, id: &str, runtime_port: u16) -> Result<String, DriverError> {
        call!(self, link, call_start_container(id, runtime_port))
    }

    pub async fn destroy_container(&self, link: &EngineLink, id: &str) -> Result<(), DriverError> {
        call!(self, link, call_destroy_container(id))
    }

    pub async fn container_status(&self, link: &EngineLink, id: &str) -> Result<ContainerStatus, DriverError> {
        let s = call!(self, link, call_inspect_container(id))?;
        let state = match s.state {
            wit::ContainerState::Created => ContainerState::Created,
            wit::ContainerState::Running => ContainerState::Running,
            wit::ContainerState::Exited => ContainerState::Exited,
            wit::ContainerState::Removing => ContainerState::Removing,
            wit::ContainerState::NotFound => ContainerState::NotFound,
        };
        let finished_at = s.finished_at.as_deref().and_then(crate::ids::parse_rfc3339_micros);
        Ok(ContainerStatus { state, exit_code: s.exit_code, oom_killed: s.oom_killed, finished_at })
    }

    pub async fn container_logs(&self, link: &EngineLink, id: &str, lines: usize) -> Result<String, DriverError> {
        call!(self, link, call_container_logs(id, lines.min(u32::MAX as usize) as u32))
    }

    pub async fn list_containers(&self, link: &EngineLink, l: &Labels) -> Result<Vec<RuntimeInstance>, DriverError> {
        let list = call!(self, link, call_list_containers(&labels(l)))?;
        Ok(list.into_iter().map(|i| RuntimeInstance { id: i.id, name: i.name, labels: i.labels.into_iter().collect(), state: i.state }).collect())
    }

    pub async fn create_network(&self, link: &EngineLink, name: &str, l: &Labels) -> Result<(), DriverError> {
        call!(self, link, call_create_network(name, &labels(l)))
    }

    pub async fn remove_network(&self, link: &EngineLink, name: &str) -> Result<(), DriverError> {
        call!(self, link, call_remove_network(name))
    }

    pub async fn list_networks(&self, link: &EngineLink, l: &Labels) -> Result<Vec<Named>, DriverError> {
        call!(self, link, call_list_networks(&labels(l))).map(named)
    }
}
