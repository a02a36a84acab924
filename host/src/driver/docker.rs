//! The Docker driver (bollard, local engine).
//!
//! Sessions are containers named `bay-session-<session_id>` with the cargo's
//! named volume at `/workspace`; the runtime port is published on
//! `host_address` (127.0.0.1 by default) on a random host port, and the
//! endpoint is `http://<host_address>:<port>`. Containers run hardened:
//! `no-new-privileges`, all capabilities dropped, pids/memory/cpu limits.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig, PortBinding,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;

use super::{ContainerExit, ContainerLaunch, ContainerState, ContainerStatus, Driver, DriverError, ExitStream, Labels, Named, RuntimeInstance};
use crate::config::{ConnectMode, DockerConfig};

pub struct DockerDriver {
    docker: Docker,
    config: DockerConfig,
}

fn engine(err: bollard::errors::Error) -> DriverError {
    match &err {
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => DriverError::NotFound(message.clone()),
        _ => DriverError::Engine(err.to_string()),
    }
}

/// How long a runtime gets to shut down cleanly before it is killed.
const STOP_GRACE_SECONDS: i32 = 5;

fn label_filters(labels: &Labels) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect())])
}

fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl DockerDriver {
    /// Connects to the engine and negotiates the API version (the engine may be
    /// older than bollard's default).
    pub async fn connect(config: &DockerConfig) -> anyhow::Result<DockerDriver> {
        let socket = config.socket.clone();
        let docker = if socket.starts_with("tcp://") || socket.starts_with("http://") {
            Docker::connect_with_http(&socket, 120, bollard::API_DEFAULT_VERSION)?
        } else {
            let path = socket.strip_prefix("unix://").unwrap_or(&socket);
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?
        };
        let docker = docker.negotiate_version().await.map_err(|e| anyhow::anyhow!("cannot reach the Docker engine at {socket}: {e}"))?;
        Ok(DockerDriver { docker, config: config.clone() })
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn publish(&self) -> bool {
        self.config.publish_ports && self.config.connect_mode != ConnectMode::ContainerNetwork
    }
}

#[async_trait]
impl Driver for DockerDriver {
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect::<HashMap<_, _>>()),
            ..Default::default()
        };
        let volume = self.docker.create_volume(request).await.map_err(engine)?;
        Ok(volume.name)
    }

    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self.docker.remove_volume(driver_ref, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_volume(driver_ref).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    async fn create_container(&self, spec: &ContainerLaunch) -> Result<String, DriverError> {
        let port_key = format!("{}/tcp", spec.runtime_port);
        let mut port_bindings = HashMap::new();
        if self.publish() {
            port_bindings.insert(
                port_key.clone(),
                Some(vec![PortBinding { host_ip: Some(self.config.host_address.clone()), host_port: Some(String::new()) }]),
            );
        }
        let bay_network = match self.config.connect_mode {
            ConnectMode::HostPort => None,
            _ => self.config.network.clone(),
        };
        // A session network comes first (sibling DNS); Bay's own network, if
        // any, is connected after create (old engines take one at create).
        let network_mode = spec.network.clone().or_else(|| bay_network.clone());
        let networking_config = spec.network.as_ref().map(|net| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                EndpointSettings { aliases: spec.hostname.clone().map(|h| vec![h]), ..Default::default() },
            )])),
        });
        let host_config = HostConfig {
            mounts: Some(vec![Mount {
                target: Some(spec.mount_path.clone()),
                source: Some(spec.volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            }]),
            memory: Some(spec.memory_bytes as i64),
            // No swap beyond the memory limit.
            memory_swap: Some(spec.memory_bytes as i64),
            nano_cpus: Some((spec.cpus * 1e9) as i64),
            pids_limit: Some(spec.security.pids_limit),
            port_bindings: Some(port_bindings),
            network_mode,
            security_opt: spec.security.no_new_privileges.then(|| vec!["no-new-privileges:true".into()]),
            cap_drop: Some(spec.security.cap_drop.clone()),
            cap_add: Some(spec.security.cap_add.clone()),
            readonly_rootfs: Some(spec.security.read_only_rootfs),
            tmpfs: Some(spec.security.tmpfs.clone().into_iter().collect()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: spec.hostname.clone(),
            user: spec.security.user.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(vec![port_key]),
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&spec.name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(r) => r.id,
            Err(e) if is_not_found(&e) => return Err(DriverError::ImageMissing(spec.image.clone())),
            Err(e) => return Err(engine(e)),
        };
        if let (Some(session_net), Some(bay_net)) = (&spec.network, &bay_network)
            && session_net != bay_net
        {
            let request = NetworkConnectRequest { container: id.clone(), endpoint_config: None };
            if let Err(e) = self.docker.connect_network(bay_net, request).await {
                let _ = self.destroy_container(&id).await;
                return Err(engine(e));
            }
        }
        Ok(id)
    }

    async fn start_container(&self, id: &str, runtime_port: u16) -> Result<String, DriverError> {
        self.docker.start_container(id, None).await.map_err(engine)?;
        let info = self.docker.inspect_container(id, None).await.map_err(engine)?;
        let net = info.network_settings.unwrap_or_default();
        if self.publish() {
            let key = format!("{runtime_port}/tcp");
            let host_port = net
                .ports
                .as_ref()
                .and_then(|p| p.get(&key))
                .and_then(|b| b.as_ref())
                .and_then(|b| b.iter().find_map(|b| b.host_port.clone()))
                .filter(|p| !p.is_empty());
            if let Some(port) = host_port {
                return Ok(format!("http://{}:{port}", self.config.host_address));
            }
            if self.config.connect_mode == ConnectMode::HostPort {
                return Err(DriverError::Engine(format!("container {id} has no published port for {key}")));
            }
        }
        // Container network: the container's address on Bay's network (or the first one).
        let networks = net.networks.unwrap_or_default();
        let wanted = self.config.network.as_deref();
        let ip =
            wanted.and_then(|n| networks.get(n)).or_else(|| networks.values().next()).and_then(|n| n.ip_address.clone()).filter(|ip| !ip.is_empty());
        match ip {
            Some(ip) => Ok(format!("http://{ip}:{runtime_port}")),
            None => {
                let name = info.name.unwrap_or_default();
                Ok(format!("http://{}:{runtime_port}", name.trim_start_matches('/')))
            }
        }
    }

    async fn destroy_container(&self, id: &str) -> Result<(), DriverError> {
        // Stop first (SIGTERM, then SIGKILL after the grace period): runtimes
        // flush state on a clean shutdown — Chromium writes its cookies only
        // then — which a forced remove (SIGKILL) would lose.
        let stop = StopContainerOptionsBuilder::new().t(STOP_GRACE_SECONDS).build();
        match self.docker.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: not running; anything else: the forced remove below decides.
            Err(_) => {}
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).v(false).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // "removal already in progress"
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, DriverError> {
        match self.docker.inspect_container(id, None).await {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                use bollard::models::ContainerStateStatusEnum as S;
                let s = match state.status {
                    Some(S::RUNNING) | Some(S::PAUSED) | Some(S::RESTARTING) => ContainerState::Running,
                    Some(S::CREATED) => ContainerState::Created,
                    Some(S::REMOVING) => ContainerState::Removing,
                    _ => ContainerState::Exited,
                };
                let finished_at = state.finished_at.as_deref().and_then(crate::ids::parse_rfc3339_micros);
                Ok(ContainerStatus { state: s, exit_code: state.exit_code, oom_killed: state.oom_killed.unwrap_or(false), finished_at })
            }
            Err(e) if is_not_found(&e) => Ok(ContainerStatus::not_found()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn container_logs(&self, id: &str, lines: usize) -> Result<String, DriverError> {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut out = String::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(log) => out.push_str(&log.to_string()),
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(engine(e)),
            }
        }
        Ok(out)
    }

    async fn list_containers(&self, labels: &Labels) -> Result<Vec<RuntimeInstance>, DriverError> {
        let options = ListContainersOptionsBuilder::new().all(true).filters(&label_filters(labels)).build();
        let list = self.docker.list_containers(Some(options)).await.map_err(engine)?;
        Ok(list
            .into_iter()
            .map(|c| RuntimeInstance {
                id: c.id.unwrap_or_default(),
                name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_owned(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let options = ListVolumesOptionsBuilder::new().filters(&label_filters(labels)).build();
        let list = self.docker.list_volumes(Some(options)).await.map_err(engine)?;
        Ok(list.volumes.unwrap_or_default().into_iter().map(|v| Named { name: v.name, labels: v.labels.into_iter().collect() }).collect())
    }

    async fn create_network(&self, name: &str, labels: &Labels) -> Result<(), DriverError> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<(), DriverError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn list_networks(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let options = ListNetworksOptionsBuilder::new().filters(&label_filters(labels)).build();
        let list = self.docker.list_networks(Some(options)).await.map_err(engine)?;
        Ok(list.into_iter().map(|n| Named { name: n.name.unwrap_or_default(), labels: n.labels.unwrap_or_default().into_iter().collect() }).collect())
    }

    fn container_exits(&self, labels: &Labels) -> Option<ExitStream> {
        let mut filters = label_filters(labels);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["die".into(), "oom".into()]);
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        let stream = self.docker.events(Some(options)).filter_map(|event| async move {
            let event = event.ok()?;
            let actor = event.actor?;
            Some(ContainerExit {
                container_id: actor.id?,
                labels: actor.attributes.unwrap_or_default().into_iter().collect(),
                oom: event.action.as_deref() == Some("oom"),
            })
        });
        Some(stream.boxed())
    }
}
