//! Drivers create and remove the compute (containers) and storage (volumes)
//! of sessions on an engine. The Docker driver is built in; Kubernetes and
//! driver extensions (WASM plugins) implement the same trait.

pub mod docker;
pub mod kubernetes;
pub mod plugin;

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Labels every Bay-managed object carries (reference §6.2).
pub mod labels {
    pub const MANAGED: &str = "bay.managed";
    pub const OWNER: &str = "bay.owner";
    pub const SANDBOX_ID: &str = "bay.sandbox_id";
    pub const SESSION_ID: &str = "bay.session_id";
    pub const CARGO_ID: &str = "bay.cargo_id";
    pub const PROFILE_ID: &str = "bay.profile_id";
    pub const RUNTIME_PORT: &str = "bay.runtime_port";
    pub const INSTANCE_ID: &str = "bay.instance_id";
    pub const CONTAINER_NAME: &str = "bay.container_name";
    pub const RUNTIME_TYPE: &str = "bay.runtime_type";
}

pub type Labels = BTreeMap<String, String>;

/// Everything needed to create one runtime container.
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub labels: Labels,
    pub cpus: f64,
    pub memory_bytes: u64,
    pub security: crate::config::ContainerSecurity,
    /// The cargo's `driver_ref` (volume name) mounted at `mount_path`.
    pub volume: String,
    pub mount_path: String,
    pub runtime_port: u16,
    pub hostname: Option<String>,
    /// The session network (multi-container sessions): the container joins it
    /// with `hostname` as its DNS alias, so siblings reach it by name.
    pub network: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Removing,
    NotFound,
}

#[derive(Debug, Clone)]
pub struct ContainerStatus {
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// When it stopped (µs since the epoch), if it did.
    pub finished_at: Option<crate::ids::Micros>,
}

impl ContainerStatus {
    pub fn not_found() -> ContainerStatus {
        ContainerStatus { state: ContainerState::NotFound, exit_code: None, oom_killed: false, finished_at: None }
    }

    /// "exit code 137, out of memory" and the like, for error messages.
    pub fn describe(&self) -> String {
        match self.state {
            ContainerState::NotFound => "the container is gone".into(),
            _ => format!(
                "exit code {}{}",
                self.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                if self.oom_killed { ", out of memory" } else { "" }
            ),
        }
    }
}

/// A container found by label (for reconcile and GC).
#[derive(Debug, Clone)]
pub struct RuntimeInstance {
    pub id: String,
    pub name: String,
    pub labels: Labels,
    pub state: String,
}

/// A volume or network found by label.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub labels: Labels,
}

/// A Bay container stopped on its own (it exited, was killed, or ran out of memory).
#[derive(Debug, Clone)]
pub struct ContainerExit {
    pub container_id: String,
    pub labels: Labels,
    pub oom: bool,
}

pub type ExitStream = futures::stream::BoxStream<'static, ContainerExit>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("image {0:?} is not available on the engine")]
    ImageMissing(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("container engine error: {0}")]
    Engine(String),
}

#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Creates (or adopts, if it exists) a volume; returns its `driver_ref`.
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError>;
    /// Deletes a volume; a missing volume is not an error.
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError>;
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError>;

    /// Creates a container; returns its id.
    async fn create_container(&self, spec: &ContainerLaunch) -> Result<String, DriverError>;
    /// Starts a container; returns the endpoint URL of its runtime port.
    async fn start_container(&self, id: &str, runtime_port: u16) -> Result<String, DriverError>;
    /// Stops and removes a container; a missing container is not an error.
    async fn destroy_container(&self, id: &str) -> Result<(), DriverError>;
    async fn container_status(&self, id: &str) -> Result<ContainerStatus, DriverError>;
    /// The last lines of a container's output (for start-failure diagnostics).
    async fn container_logs(&self, id: &str, lines: usize) -> Result<String, DriverError>;
    /// Containers carrying all of `labels`.
    async fn list_containers(&self, labels: &Labels) -> Result<Vec<RuntimeInstance>, DriverError>;
    /// Volumes carrying all of `labels`.
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError>;

    /// Creates (or adopts) a private network for one session's containers.
    async fn create_network(&self, name: &str, labels: &Labels) -> Result<(), DriverError>;
    /// Removes a network; a missing one is not an error.
    async fn remove_network(&self, name: &str) -> Result<(), DriverError>;
    /// Names of networks carrying all of `labels`.
    async fn list_networks(&self, labels: &Labels) -> Result<Vec<Named>, DriverError>;
    /// Exits of containers carrying all of `labels`, as the engine reports
    /// them, so a dead runtime is noticed before a call hits it. Drivers
    /// without an event feed return `None` (dead runtimes are then found by
    /// the next call).
    fn container_exits(&self, _labels: &Labels) -> Option<ExitStream> {
        None
    }
}
