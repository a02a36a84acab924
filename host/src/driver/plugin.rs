//! A driver backed by a driver-extension plugin (`driver.type: plugin`).
//!
//! Every call looks up the plugin's current version, so a hot-reloaded driver
//! serves the next call; calls in flight finish on the version they started
//! with. Engines reached this way report no event feed, so a dead runtime is
//! found by the next call to it (health probing) rather than by an event.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ContainerInfo, Driver, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};
use crate::config::PluginDriverConfig;
use crate::plugins::outbound::OutboundTarget;
use crate::plugins::{EngineLink, PluginHost};

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

    fn current(&self) -> Result<Box<dyn Driver>, DriverError> {
        let plugin = self
            .plugins
            .driver(&self.name)
            .ok_or_else(|| DriverError::Engine(format!("the driver plugin {:?} is not loaded any more", self.name)))?;
        Ok(plugin.bind(self.link.clone()))
    }
}

#[async_trait]
impl Driver for PluginDriver {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        self.current()?.launch_session(spec).await
    }
    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.current()?.destroy_session(session_id).await
    }
    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        self.current()?.session_status(session_id).await
    }
    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        self.current()?.list_sessions(labels).await
    }
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        self.current()?.session_logs(session_id, lines).await
    }
    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.current()?.pause_session(session_id).await
    }
    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.current()?.resume_session(session_id).await
    }
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        self.current()?.create_volume(name, labels).await
    }
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        self.current()?.delete_volume(driver_ref).await
    }
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        self.current()?.volume_exists(driver_ref).await
    }
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        self.current()?.list_volumes(labels).await
    }
}
