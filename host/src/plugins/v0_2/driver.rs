//! The session-shaped `driver-extension` world of `bay:plugin@0.2`: each
//! operation is one export, one to one.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::driver::{ContainerInfo, ContainerState, ContainerStatus, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};
use crate::plugins::PluginState;
use crate::plugins::driver::{DriverOp, DriverOut, DriverWorld, label_list};

wasmtime::component::bindgen!({
    world: "driver-extension",
    path: "../wit/bay-plugin-0.2",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "bay:plugin/http": super::bay::plugin::http,
        "bay:plugin/log": super::bay::plugin::log,
    },
});

use exports::bay::plugin::driver as wit;

/// Adds the imports only this world has (`settings`).
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    self::bay::plugin::settings::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl self::bay::plugin::settings::Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).cloned())
    }
}

/// This version's instantiated driver-extension world.
pub(crate) struct Driver(DriverExtension);

fn from_wit(e: wit::DriverError) -> DriverError {
    match e {
        wit::DriverError::ImageMissing(m) => DriverError::ImageMissing(m),
        wit::DriverError::NotFound(m) => DriverError::NotFound(m),
        wit::DriverError::Unsupported(m) => DriverError::Unsupported(m),
        wit::DriverError::Engine(m) => DriverError::Engine(m),
    }
}

fn spec(s: &SessionSpec) -> wit::SessionSpec {
    wit::SessionSpec {
        session_id: s.session_id.clone(),
        labels: label_list(&s.labels),
        volume: s.volume.clone(),
        mount_path: s.mount_path.clone(),
        containers: s
            .containers
            .iter()
            .map(|c| wit::ContainerSpec {
                name: c.name.clone(),
                image: c.image.clone(),
                env: c.env.clone(),
                labels: label_list(&c.labels),
                cpus: c.cpus,
                memory_bytes: c.memory_bytes,
                security: wit::Security {
                    read_only_rootfs: c.security.read_only_rootfs,
                    no_new_privileges: c.security.no_new_privileges,
                    cap_drop: c.security.cap_drop.clone(),
                    cap_add: c.security.cap_add.clone(),
                    pids_limit: c.security.pids_limit,
                    tmpfs: c.security.tmpfs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    user: c.security.user.clone(),
                },
                runtime_port: c.runtime_port,
            })
            .collect(),
    }
}

fn info(c: wit::ContainerInfo) -> ContainerInfo {
    let state = match c.status.state {
        wit::ContainerState::Created => ContainerState::Created,
        wit::ContainerState::Running => ContainerState::Running,
        wit::ContainerState::Paused => ContainerState::Paused,
        wit::ContainerState::Exited => ContainerState::Exited,
        wit::ContainerState::Removing => ContainerState::Removing,
        wit::ContainerState::NotFound => ContainerState::NotFound,
    };
    ContainerInfo {
        name: c.name,
        id: c.id,
        status: ContainerStatus { state, exit_code: c.status.exit_code, oom_killed: c.status.oom_killed, finished_at: c.status.finished_at },
    }
}

fn labels(l: Vec<(String, String)>) -> Labels {
    l.into_iter().collect()
}

impl DriverWorld for Driver {
    type Pre = DriverExtensionPre<PluginState>;
    const PACKAGE: &'static str = super::PACKAGE;

    fn prepare(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        DriverExtensionPre::new(pre)
    }

    async fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        Ok(Driver(pre.instantiate_async(store).await?))
    }

    async fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<String> {
        Ok(self.0.bay_plugin_driver().call_describe(store).await?.name)
    }

    async fn call(&self, store: &mut Store<PluginState>, op: DriverOp<'_>) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        Ok(match op {
            DriverOp::Launch(s) => d
                .call_launch_session(store, &spec(s))
                .await?
                .map(|v| DriverOut::Launched(v.into_iter().map(|c| LaunchedContainer { name: c.name, id: c.id, endpoint: c.endpoint }).collect())),
            DriverOp::Destroy(id) => d.call_destroy_session(store, id).await?.map(|()| DriverOut::Done),
            DriverOp::Status(id) => d.call_session_status(store, id).await?.map(|v| DriverOut::Status(v.into_iter().map(info).collect())),
            DriverOp::ListSessions(l) => d.call_list_sessions(store, &label_list(l)).await?.map(|v| {
                DriverOut::Sessions(
                    v.into_iter()
                        .map(|s| SessionInfo {
                            session_id: s.session_id,
                            labels: labels(s.labels),
                            containers: s.containers.into_iter().map(info).collect(),
                        })
                        .collect(),
                )
            }),
            DriverOp::Logs(id, lines) => d.call_session_logs(store, id, lines).await?.map(DriverOut::Logs),
            DriverOp::Pause(id) => d.call_pause_session(store, id).await?.map(|()| DriverOut::Done),
            DriverOp::Resume(id) => d.call_resume_session(store, id).await?.map(|()| DriverOut::Done),
            DriverOp::CreateVolume(name, l) => d.call_create_volume(store, name, &label_list(l)).await?.map(DriverOut::Volume),
            DriverOp::DeleteVolume(r) => d.call_delete_volume(store, r).await?.map(|()| DriverOut::Done),
            DriverOp::VolumeExists(r) => d.call_volume_exists(store, r).await?.map(DriverOut::Exists),
            DriverOp::ListVolumes(l) => d
                .call_list_volumes(store, &label_list(l))
                .await?
                .map(|v| DriverOut::Volumes(v.into_iter().map(|n| Named { name: n.name, labels: labels(n.labels) }).collect())),
        }
        .map_err(from_wit))
    }
}
