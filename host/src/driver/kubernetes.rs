//! The Kubernetes driver: a session is one Pod, a cargo a PVC.
//!
//! Being rewritten for the session-shaped contract; until then every
//! operation answers `unsupported`.

use async_trait::async_trait;

use super::{ContainerInfo, Driver, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};
use crate::config::{K8sConfig, PullPolicy};

pub struct KubernetesDriver;

impl KubernetesDriver {
    pub async fn connect(_config: &K8sConfig, _pull_policy: PullPolicy) -> anyhow::Result<KubernetesDriver> {
        anyhow::bail!("the Kubernetes driver is not available in this build")
    }
}

fn todo() -> DriverError {
    DriverError::Unsupported("kubernetes".into())
}

#[async_trait]
impl Driver for KubernetesDriver {
    async fn launch_session(&self, _: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        Err(todo())
    }
    async fn destroy_session(&self, _: &str) -> Result<(), DriverError> {
        Err(todo())
    }
    async fn session_status(&self, _: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        Err(todo())
    }
    async fn list_sessions(&self, _: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        Err(todo())
    }
    async fn session_logs(&self, _: &str, _: u32) -> Result<String, DriverError> {
        Err(todo())
    }
    async fn create_volume(&self, _: &str, _: &Labels) -> Result<String, DriverError> {
        Err(todo())
    }
    async fn delete_volume(&self, _: &str) -> Result<(), DriverError> {
        Err(todo())
    }
    async fn volume_exists(&self, _: &str) -> Result<bool, DriverError> {
        Err(todo())
    }
    async fn list_volumes(&self, _: &Labels) -> Result<Vec<Named>, DriverError> {
        Err(todo())
    }
}
