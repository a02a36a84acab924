//! Driver-extension plugins, whatever their WIT version.
//!
//! Each supported version implements [`DriverWorld`]: one entry point that
//! performs a session-shaped [`DriverOp`] with its generated bindings (`v0_2`
//! one to one; `v0_1`, whose contract was shaped after containers, through a
//! shim). [`DriverPlugin`] does the rest once: a fresh store per call, the
//! engine link, deadlines and failure reports; bound to an engine link it is a
//! [`Driver`](crate::driver::Driver).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::outbound::OutboundTarget;
use super::state::{Limits, PluginState, describe_failure, new_store};
use crate::driver::{ContainerInfo, Driver, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};

/// Where a driver's calls go: the engine endpoint and the operator's settings.
#[derive(Clone)]
pub(crate) struct EngineLink {
    pub target: OutboundTarget,
    pub settings: Arc<BTreeMap<String, String>>,
}

/// One operation of the session-shaped contract.
#[derive(Debug)]
pub(crate) enum DriverOp<'a> {
    Launch(&'a SessionSpec),
    Destroy(&'a str),
    Status(&'a str),
    ListSessions(&'a Labels),
    Logs(&'a str, u32),
    Pause(&'a str),
    Resume(&'a str),
    CreateVolume(&'a str, &'a Labels),
    DeleteVolume(&'a str),
    VolumeExists(&'a str),
    ListVolumes(&'a Labels),
}

/// What an operation answers.
#[derive(Debug)]
pub(crate) enum DriverOut {
    Launched(Vec<LaunchedContainer>),
    Done,
    Status(Vec<ContainerInfo>),
    Sessions(Vec<SessionInfo>),
    Logs(String),
    Volume(String),
    Exists(bool),
    Volumes(Vec<Named>),
}

/// One WIT version's driver-extension world, instantiated.
pub(crate) trait DriverWorld: Sized + Send + Sync + 'static {
    type Pre: Send + Sync + 'static;
    const PACKAGE: &'static str;

    fn prepare(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<Self>> + Send;
    /// The driver's self-declared name.
    fn describe(&self, store: &mut Store<PluginState>) -> impl Future<Output = wasmtime::Result<String>> + Send;
    fn call(&self, store: &mut Store<PluginState>, op: DriverOp<'_>)
    -> impl Future<Output = wasmtime::Result<Result<DriverOut, DriverError>>> + Send;
}

/// A loaded driver extension of some WIT version, ready to be bound to an engine.
pub(crate) trait DriverExtension: Send + Sync {
    /// A driver whose calls go to `link`.
    fn bind(self: Arc<Self>, link: EngineLink) -> Box<dyn Driver>;
}

/// Engine calls may wait on the engine (stopping a container takes up to its
/// grace period), so a driver call gets longer than a plugin's CPU budget.
const CALL_DEADLINE: Duration = Duration::from_secs(300);

pub(crate) struct DriverPlugin<W: DriverWorld> {
    name: String,
    version: String,
    pre: W::Pre,
    shared: super::Shared,
    limits: Limits,
}

impl<W: DriverWorld> DriverPlugin<W> {
    /// Links `component`, checks its exports and calls `describe`; returns
    /// the plugin and its self-declared name.
    pub(crate) async fn load(
        manifest: &super::manifest::Manifest,
        component: &Component,
        shared: &super::Shared,
        limits: Limits,
    ) -> anyhow::Result<(DriverPlugin<W>, String)> {
        let instance_pre =
            shared.linker.instantiate_pre(component).map_err(|e| anyhow::anyhow!("the component does not fit the host's imports: {e:#}"))?;
        let pre = W::prepare(instance_pre)
            .map_err(|e| anyhow::anyhow!("the component does not export the driver-extension world of {}: {e:#}", W::PACKAGE))?;
        let plugin: DriverPlugin<W> =
            DriverPlugin { name: manifest.name.clone(), version: manifest.version.clone(), pre, shared: shared.clone(), limits };
        let link = EngineLink { target: OutboundTarget::none(shared.client.clone()), settings: Default::default() };
        let (mut store, bindings) = plugin.instantiate(&link).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = tokio::time::timeout(Duration::from_secs(10), bindings.describe(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("describe() did not return within 10 s"))?
            .map_err(|e| anyhow::anyhow!("describe() failed: {e:#}"))?;
        Ok((plugin, name))
    }

    async fn instantiate(&self, link: &EngineLink) -> Result<(Store<PluginState>, W), DriverError> {
        let mut store = new_store(&self.shared.engine, &self.name, link.target.clone(), self.limits);
        store.data_mut().settings = link.settings.clone();
        let bindings = W::instantiate(&self.pre, &mut store)
            .await
            .map_err(|e| DriverError::Engine(format!("driver plugin {} {} failed: {e:#}", self.name, self.version)))?;
        Ok((store, bindings))
    }

    async fn call(&self, link: &EngineLink, op: DriverOp<'_>) -> Result<DriverOut, DriverError> {
        let _permit = self.shared.slots.clone().acquire_owned().await.map_err(|_| DriverError::Engine("plugin host is shutting down".into()))?;
        let (mut store, bindings) = self.instantiate(link).await?;
        match tokio::time::timeout(CALL_DEADLINE, bindings.call(&mut store, op)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(DriverError::Engine(format!(
                "driver plugin {} {} failed: {}",
                self.name,
                self.version,
                describe_failure(&self.name, &e, store.data())
            ))),
            Err(_) => Err(DriverError::Engine(format!("driver plugin {} did not answer within {}s", self.name, CALL_DEADLINE.as_secs()))),
        }
    }
}

impl<W: DriverWorld> DriverExtension for DriverPlugin<W> {
    fn bind(self: Arc<Self>, link: EngineLink) -> Box<dyn Driver> {
        Box::new(Bound { plugin: self, link })
    }
}

struct Bound<W: DriverWorld> {
    plugin: Arc<DriverPlugin<W>>,
    link: EngineLink,
}

fn contract_breach(op: &str, out: DriverOut) -> DriverError {
    DriverError::Engine(format!("the driver plugin answered {op} with {out:?}"))
}

/// Performs `op` and destructures the expected answer.
macro_rules! op {
    ($self:ident, $op:expr, $out:pat => $v:expr) => {
        match $self.plugin.call(&$self.link, $op).await? {
            $out => Ok($v),
            other => Err(contract_breach(stringify!($op), other)),
        }
    };
}

#[async_trait]
impl<W: DriverWorld> Driver for Bound<W> {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        op!(self, DriverOp::Launch(spec), DriverOut::Launched(v) => v)
    }
    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        op!(self, DriverOp::Destroy(session_id), DriverOut::Done => ())
    }
    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        op!(self, DriverOp::Status(session_id), DriverOut::Status(v) => v)
    }
    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        op!(self, DriverOp::ListSessions(labels), DriverOut::Sessions(v) => v)
    }
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        op!(self, DriverOp::Logs(session_id, lines), DriverOut::Logs(v) => v)
    }
    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        op!(self, DriverOp::Pause(session_id), DriverOut::Done => ())
    }
    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        op!(self, DriverOp::Resume(session_id), DriverOut::Done => ())
    }
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        op!(self, DriverOp::CreateVolume(name, labels), DriverOut::Volume(v) => v)
    }
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        op!(self, DriverOp::DeleteVolume(driver_ref), DriverOut::Done => ())
    }
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        op!(self, DriverOp::VolumeExists(driver_ref), DriverOut::Exists(v) => v)
    }
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        op!(self, DriverOp::ListVolumes(labels), DriverOut::Volumes(v) => v)
    }
}

/// Labels as the WIT lists them.
pub(crate) fn label_list(l: &Labels) -> Vec<(String, String)> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
