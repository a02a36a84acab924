//! A driver backed by a driver-extension plugin (`driver.type: plugin`).
//!
//! Every call looks up the plugin's current version, so a hot-reloaded driver
//! serves the next call; calls in flight finish on the version they started
//! with. Engines reached this way report no event feed, so a dead runtime is
//! found by the next call to it (health probing) rather than by an event.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ContainerLaunch, ContainerStatus, Driver, DriverError, Labels, Named, RuntimeInstance};
use crate::config::PluginDriverConfig;
use crate::plugins::PluginHost;
use crate::plugins::outbound::OutboundTarget;
use crate::plugins::v0_1::driver::{DriverPlugin, EngineLink};

pub struct PluginDriver {
    plugins: Arc<PluginHost>,
    name: String,
    link: EngineLink,
}

impl PluginDriver {
    /// Binds the named driver plugin (which must be loaded) to the engine endpoint.
    pub fn new(plugins: Arc<PluginHost>, config: &PluginDriverConfig) -> anyhow::Result<PluginDriver> {
        if plugins.driver(&config.name).is_none() {
            let found: Vec<String> = plugins.records().into_iter().filter_map(|r| r.driver).collect();
            anyhow::bail!(
                "driver.type is plugin, but no driver plugin named {:?} is loaded (driver plugins found: {found:?}); see GET /v1/admin/plugins or `bay plugin list`",
                config.name
            );
        }
        let target = OutboundTarget::engine(&config.endpoint, 64 << 20).map_err(|e| anyhow::anyhow!("driver.plugin.endpoint: {e}"))?;
        Ok(PluginDriver { plugins, name: config.name.clone(), link: EngineLink { target, settings: Arc::new(config.settings.clone()) } })
    }

    fn current(&self) -> Result<Arc<DriverPlugin>, DriverError> {
        self.plugins.driver(&self.name).ok_or_else(|| DriverError::Engine(format!("the driver plugin {:?} is not loaded any more", self.name)))
    }
}

#[async_trait]
impl Driver for PluginDriver {
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        self.current()?.create_volume(&self.link, name, labels).await
    }
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        self.current()?.delete_volume(&self.link, driver_ref).await
    }
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        self.current()?.volume_exists(&self.link, driver_ref).await
    }
    async fn create_container(&self, spec: &ContainerLaunch) -> Result<String, DriverError> {
        self.current()?.create_container(&self.link, spec).await
    }
    async fn start_container(&self, id: &str, runtime_port: u16) -> Result<String, DriverError> {
        self.current()?.start_container(&self.link, id, runtime_port).await
    }
    async fn destroy_container(&self, id: &str) -> Result<(), DriverError> {
        self.current()?.destroy_container(&self.link, id).await
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus, DriverError> {
        self.current()?.container_status(&self.link, id).await
    }
    async fn container_logs(&self, id: &str, lines: usize) -> Result<String, DriverError> {
        self.current()?.container_logs(&self.link, id, lines).await
    }
    async fn list_containers(&self, labels: &Labels) -> Result<Vec<RuntimeInstance>, DriverError> {
        self.current()?.list_containers(&self.link, labels).await
    }
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        self.current()?.list_volumes(&self.link, labels).await
    }
    async fn create_network(&self, name: &str, labels: &Labels) -> Result<(), DriverError> {
        self.current()?.create_network(&self.link, name, labels).await
    }
    async fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        self.current()?.remove_network(&self.link, name).await
    }
    async fn list_networks(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        self.current()?.list_networks(&self.link, labels).await
    }
}
