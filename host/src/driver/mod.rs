//! Drivers run sessions (the compute of a sandbox) and keep cargo volumes on
//! an engine. The contract is shaped after sessions, not containers: a
//! driver launches, inspects, lists and destroys whole sessions, so the
//! lifecycle code (`crate::sandbox`) knows nothing of networks, Pods or
//! container ids beyond what a driver hands back. Its data types come from
//! `crates/driver-kit`, which also holds the Docker Engine API
//! implementation shared with the `docker-api-driver` plugin.
//!
//! Built in: [`docker`] (the Docker Engine API over a unix socket or TCP) and
//! [`kubernetes`] (a session is one Pod). [`plugin`] runs a driver-extension
//! plugin (`driver.type: plugin`).

pub(crate) mod bind;
pub(crate) mod docker;
pub(crate) mod kubernetes;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod plugin;

use async_trait::async_trait;

pub use bay_driver_kit::spec::{
    ContainerExit, ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, DriverError, Labels, LaunchedContainer, Named, Security,
    SessionInfo, SessionSpec, labels,
};

/// Container exits as an engine reports them.
pub type ExitStream = futures::stream::BoxStream<'static, ContainerExit>;

#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Launches a session (idempotent per session id: what exists of it is
    /// adopted) and returns where each container's runtime answers. On an
    /// error what was created may remain; callers destroy the session.
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError>;
    /// Removes everything of a session; what is already gone is not an error.
    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError>;
    /// The session's containers with their state (empty: nothing left).
    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError>;
    /// Sessions whose engine objects carry all of `labels` (reconcile, GC, delete).
    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError>;
    /// The last lines of the session's output (start-failure diagnostics).
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError>;
    /// Freezes a session, memory kept.
    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(format!("pausing session {session_id}")))
    }
    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(format!("resuming session {session_id}")))
    }

    /// Creates (or adopts, if it exists) a volume; returns its `driver_ref`.
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError>;
    /// Deletes a volume; a missing volume is not an error.
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError>;
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError>;
    /// Volumes carrying all of `labels`.
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError>;

    /// Exits of containers carrying all of `labels`, as the engine reports
    /// them, so a dead runtime is noticed before a call hits it. Drivers
    /// without an event feed return `None` (dead runtimes are then found by
    /// the next call).
    fn container_exits(&self, _labels: &Labels) -> Option<ExitStream> {
        None
    }
}

/// The moment a container stopped, in µs since the epoch.
pub(crate) fn finished_micros(status: &ContainerStatus) -> Option<crate::ids::Micros> {
    status.finished_at.as_deref().and_then(crate::ids::parse_rfc3339_micros)
}
