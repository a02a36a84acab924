//! The container-shaped `driver-extension` world of `bay:plugin@0.1`, behind
//! a shim that speaks the session-shaped contract.
//!
//! A session becomes what Bay's lifecycle code used to do by hand: a network
//! `bay_net_<session>` (create-network), one container per runtime on it with
//! its name as DNS alias (create-container), each started (start-container).
//! Everything carries the session's labels, so the shim keeps no state:
//! status, listing and destruction find the session's objects by label.
//! 0.1 has no way to choose a network's subnet (the engine's default pools
//! hold only a few dozen networks) and cannot pause; drivers that need either
//! move to 0.2.

use bay_driver_kit::docker_api::{container_name, network_name};
use bay_driver_kit::spec::group_sessions;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::driver::{ContainerInfo, ContainerState, ContainerStatus, DriverError, Labels, LaunchedContainer, Named, SessionSpec, labels};
use crate::plugins::PluginState;
use crate::plugins::driver::{DriverOp, DriverOut, DriverWorld, label_list};

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
        wit::DriverError::Engine(m) => DriverError::Engine(m),
    }
}

fn status(s: wit::ContainerStatus) -> ContainerStatus {
    let state = match s.state {
        wit::ContainerState::Created => ContainerState::Created,
        wit::ContainerState::Running => ContainerState::Running,
        wit::ContainerState::Exited => ContainerState::Exited,
        wit::ContainerState::Removing => ContainerState::Removing,
        wit::ContainerState::NotFound => ContainerState::NotFound,
    };
    ContainerStatus { state, exit_code: s.exit_code, oom_killed: s.oom_killed, finished_at: s.finished_at }
}

fn session_label(session_id: &str) -> Vec<(String, String)> {
    vec![(labels::SESSION_ID.to_owned(), session_id.to_owned())]
}

/// A listed container as a session member (state from the list; no inspect).
fn member(i: &wit::Instance) -> (Labels, ContainerInfo) {
    let labels: Labels = i.labels.iter().cloned().collect();
    let name = labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_else(|| i.name.clone());
    let status = ContainerStatus { state: ContainerState::parse(&i.state), exit_code: None, oom_killed: false, finished_at: None };
    (labels, ContainerInfo { name, id: i.id.clone(), status })
}

/// Runs one export: `call!(d, store, call_x(args))` → `Result<T, DriverError>`
/// inside a `wasmtime::Result`.
macro_rules! call {
    ($d:ident, $store:ident, $method:ident($($arg:expr),*)) => {
        match $d.$method(&mut *$store $(, $arg)*).await? {
            Ok(v) => v,
            Err(e) => return Ok(Err(from_wit(e))),
        }
    };
}

impl Driver {
    async fn launch(&self, store: &mut Store<PluginState>, spec: &SessionSpec) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        let net = network_name(&spec.session_id);
        let mut session_labels = spec.labels.clone();
        session_labels.insert(labels::SESSION_ID.into(), spec.session_id.clone());
        call!(d, store, call_create_network(&net, &label_list(&session_labels)));
        // Adopt what a launch before a crash created.
        let existing = call!(d, store, call_list_containers(&session_label(&spec.session_id)));
        let mut launched = Vec::new();
        for c in &spec.containers {
            let adopted = existing.iter().map(member).find(|(_, m)| m.name == c.name).map(|(_, m)| m.id);
            let id = match adopted {
                Some(id) => id,
                None => {
                    let mut l = session_labels.clone();
                    l.extend(c.labels.clone());
                    l.insert(labels::CONTAINER_NAME.into(), c.name.clone());
                    l.insert(labels::RUNTIME_PORT.into(), c.runtime_port.to_string());
                    let s = &c.security;
                    let launch = wit::ContainerSpec {
                        name: container_name(spec, &c.name),
                        image: c.image.clone(),
                        env: c.env.clone(),
                        labels: label_list(&l),
                        cpus: c.cpus,
                        memory_bytes: c.memory_bytes,
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
                        runtime_port: c.runtime_port,
                        hostname: Some(c.name.clone()),
                        network: Some(net.clone()),
                    };
                    call!(d, store, call_create_container(&launch))
                }
            };
            launched.push((c, id));
        }
        let mut out = Vec::new();
        for (c, id) in launched {
            let endpoint = call!(d, store, call_start_container(&id, c.runtime_port));
            out.push(LaunchedContainer { name: c.name.clone(), id, endpoint });
        }
        Ok(Ok(DriverOut::Launched(out)))
    }

    async fn destroy(&self, store: &mut Store<PluginState>, session_id: &str) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        for c in call!(d, store, call_list_containers(&session_label(session_id))) {
            call!(d, store, call_destroy_container(&c.id));
        }
        for n in call!(d, store, call_list_networks(&session_label(session_id))) {
            call!(d, store, call_remove_network(&n.name));
        }
        Ok(Ok(DriverOut::Done))
    }

    async fn status(&self, store: &mut Store<PluginState>, session_id: &str) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        let mut out = Vec::new();
        for c in call!(d, store, call_list_containers(&session_label(session_id))) {
            let (_, mut info) = member(&c);
            info.status = status(call!(d, store, call_inspect_container(&c.id)));
            out.push(info);
        }
        Ok(Ok(DriverOut::Status(out)))
    }

    async fn sessions(&self, store: &mut Store<PluginState>, l: &Labels) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        let containers = call!(d, store, call_list_containers(&label_list(l)));
        let networks = call!(d, store, call_list_networks(&label_list(l)));
        let grouped = group_sessions(containers.iter().map(member), networks.into_iter().map(|n| n.labels.into_iter().collect()));
        Ok(Ok(DriverOut::Sessions(grouped)))
    }

    async fn logs(&self, store: &mut Store<PluginState>, session_id: &str, lines: u32) -> wasmtime::Result<Result<DriverOut, DriverError>> {
        let d = self.0.bay_plugin_driver();
        let mut out = String::new();
        for c in call!(d, store, call_list_containers(&session_label(session_id))) {
            out.push_str(&call!(d, store, call_container_logs(&c.id, lines)));
        }
        Ok(Ok(DriverOut::Logs(out)))
    }
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
        match op {
            DriverOp::Launch(spec) => self.launch(store, spec).await,
            DriverOp::Destroy(id) => self.destroy(store, id).await,
            DriverOp::Status(id) => self.status(store, id).await,
            DriverOp::ListSessions(l) => self.sessions(store, l).await,
            DriverOp::Logs(id, lines) => self.logs(store, id, lines).await,
            DriverOp::Pause(_) | DriverOp::Resume(_) => {
                Ok(Err(DriverError::Unsupported(format!("{} drivers cannot pause sessions", super::PACKAGE))))
            }
            DriverOp::CreateVolume(name, l) => Ok(Ok(DriverOut::Volume(call!(d, store, call_create_volume(name, &label_list(l)))))),
            DriverOp::DeleteVolume(r) => Ok(Ok({
                call!(d, store, call_delete_volume(r));
                DriverOut::Done
            })),
            DriverOp::VolumeExists(r) => Ok(Ok(DriverOut::Exists(call!(d, store, call_volume_exists(r))))),
            DriverOp::ListVolumes(l) => {
                let v = call!(d, store, call_list_volumes(&label_list(l)));
                Ok(Ok(DriverOut::Volumes(v.into_iter().map(|n| Named { name: n.name, labels: n.labels.into_iter().collect() }).collect())))
            }
        }
    }
}
