//! A Bay driver extension for engines that speak the Docker Engine REST API:
//! a Docker engine (local socket or remote TCP) or Podman's API service
//! (`podman system service`), which implements the same endpoints.
//!
//! The session logic is `bay-driver-kit`'s (`crates/driver-kit/src/docker_api`),
//! the same code the built-in Docker driver runs (`host/src/driver/docker.rs`):
//! one container per runtime on a bridge network of the session's own (with a
//! subnet from a pool), the cargo volume mounted, hardening from the profile,
//! everything labelled so any Bay process finds it again. This plugin only
//! gives the kit a [`Transport`] over the host's `http` import (whose paths
//! resolve against `driver.plugin.endpoint`; the host reaches nothing else)
//! and its [`Settings`] from `driver.plugin.settings`:
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `api_version` | `1.41` | the Engine API version prefix (Docker 20.10+ and Podman 3+ serve 1.41) |
//! | `connect_mode` | `host_port` | how Bay reaches a runtime: `host_port` (a port published on `host_address`; Bay on the engine's host) or `container_network` (the container's address on the session network) |
//! | `host_address` | `127.0.0.1` | `host_port`: the address ports are published on and Bay connects to |
//! | `self_container` | — | `container_network`: Bay's own container, joined to every session network |
//! | `network` | — | `container_network` without `self_container`: a shared network every session container joins too (Shipyard Neo's layout; sessions can then reach each other's runtime ports) |
//! | `session_subnet_pool` | `10.213.0.0/16` | where session networks' subnets come from; empty: the engine's default pools (about thirty networks) |
//! | `session_subnet_prefix` | `28` | the size of each session's subnet (a /28 holds 14 containers) |
//! | `image_pull_policy` | `if_not_present` | `always`, `if_not_present` or `never` |
//! | `session_network` | `per_session` | `shared`: single-container sessions without `NET_RAW` share one bridge with inter-container traffic off (`crates/driver-kit/src/docker_api/shared.rs`); only on a Docker engine, Podman ignores the setting that keeps them apart |

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bay_driver_kit::docker_api::{self, DockerApi, PullPolicy, Reach, Reply, Settings, SubnetPool, Transport};
use bay_driver_kit::spec;
use bay_plugin_sdk::driver::*;
use bay_plugin_sdk::http::{self, Method, Request, RequestBody};

/// The kit's transport: the host's `http` import.
struct HostHttp;

fn send_now(req: docker_api::Request) -> Result<Reply, String> {
    let method = match req.method {
        docker_api::Method::Get => Method::Get,
        docker_api::Method::Post => Method::Post,
        docker_api::Method::Delete => Method::Delete,
    };
    let mut r = Request::new(method, &req.path).timeout_secs(req.timeout_s);
    for (k, v) in &req.query {
        r = r.query(k, v);
    }
    if let Some(json) = req.body {
        r = r.body(RequestBody::Json(json));
    }
    let resp = http::send(r).map_err(|e| e.to_string())?;
    Ok(Reply { status: resp.status, body: resp.body })
}

impl Transport for HostHttp {
    /// The import blocks until the engine has answered, so the future is
    /// ready from the start.
    fn send(&self, req: docker_api::Request) -> impl Future<Output = Result<Reply, String>> + Send {
        std::future::ready(send_now(req))
    }
}

/// Polls allowed before a future that is still pending counts as stuck.
const MAX_POLLS: usize = 1000;

/// Runs one of the kit's operations to its end. Every future the transport
/// makes is ready when first polled, so one poll usually finishes the
/// operation; a few more cover combinators that yield on their own (`join_all`
/// over many futures). Nothing in a plugin could wake a future that is still
/// pending after that: it is an error, not a hang.
fn block_on<T>(f: impl Future<Output = Result<T, spec::DriverError>>) -> Result<T, DriverError> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
            return r.map_err(error);
        }
    }
    Err(DriverError::Engine("the driver waited on something other than the engine (a bug in the docker-api driver)".into()))
}

fn invalid(key: &str, value: &str, expected: &str) -> DriverError {
    DriverError::Engine(format!("driver.plugin.settings.{key}: {value:?} is not valid (expected {expected})"))
}

/// The kit's settings from `driver.plugin.settings` (see the module doc).
fn settings() -> Result<Settings, DriverError> {
    let defaults = Settings::default();
    let api_version = setting("api_version").map(|v| v.trim_start_matches('v').to_owned()).unwrap_or(defaults.api_version);
    let reach = match setting("connect_mode").as_deref().unwrap_or("host_port") {
        "host_port" => Reach::PublishedPort { host_address: setting("host_address").unwrap_or_else(|| "127.0.0.1".into()) },
        "container_network" => match (setting("self_container"), setting("network")) {
            (Some(me), _) => Reach::SessionNetwork { join: Some(me) },
            (None, Some(network)) => Reach::SharedNetwork { network },
            (None, None) => Reach::SessionNetwork { join: None },
        },
        other => return Err(invalid("connect_mode", other, "host_port or container_network")),
    };
    let prefix = match setting("session_subnet_prefix") {
        Some(p) => p.trim().parse().map_err(|_| invalid("session_subnet_prefix", &p, "a prefix length such as 28"))?,
        None => docker_api::DEFAULT_SUBNET_PREFIX,
    };
    let subnets = match setting("session_subnet_pool").unwrap_or_else(|| docker_api::DEFAULT_SUBNET_POOL.into()) {
        pool if pool.trim().is_empty() => None,
        pool => Some(
            SubnetPool::parse(pool.trim(), prefix).map_err(|e| DriverError::Engine(format!("driver.plugin.settings.session_subnet_pool: {e}")))?,
        ),
    };
    let pull = match setting("image_pull_policy").as_deref().unwrap_or("if_not_present") {
        "always" => PullPolicy::Always,
        "if_not_present" => PullPolicy::IfNotPresent,
        "never" => PullPolicy::Never,
        other => return Err(invalid("image_pull_policy", other, "always, if_not_present or never")),
    };
    let shared_bridge = match setting("session_network").as_deref().unwrap_or("per_session") {
        "per_session" => None,
        "shared" => Some(docker_api::SHARED_BRIDGE.to_owned()),
        other => return Err(invalid("session_network", other, "per_session or shared")),
    };
    Ok(Settings { api_version, reach, subnets, pull, shared_bridge, ..defaults })
}

fn api() -> Result<DockerApi<HostHttp>, DriverError> {
    Ok(DockerApi::new(HostHttp, settings()?))
}

// ---- WIT records <-> the kit's ----------------------------------------

fn labels(l: Labels) -> spec::Labels {
    l.into_iter().collect()
}

fn label_list(l: spec::Labels) -> Labels {
    l.into_iter().collect()
}

fn error(e: spec::DriverError) -> DriverError {
    match e {
        spec::DriverError::ImageMissing(m) => DriverError::ImageMissing(m),
        spec::DriverError::NotFound(m) => DriverError::NotFound(m),
        spec::DriverError::Unsupported(m) => DriverError::Unsupported(m),
        spec::DriverError::Engine(m) => DriverError::Engine(m),
    }
}

fn session_spec(s: SessionSpec) -> spec::SessionSpec {
    spec::SessionSpec {
        session_id: s.session_id,
        labels: labels(s.labels),
        volume: s.volume,
        mount_path: s.mount_path,
        containers: s
            .containers
            .into_iter()
            .map(|c| spec::ContainerSpec {
                name: c.name,
                image: c.image,
                env: c.env,
                labels: labels(c.labels),
                cpus: c.cpus,
                memory_bytes: c.memory_bytes,
                security: spec::Security {
                    read_only_rootfs: c.security.read_only_rootfs,
                    no_new_privileges: c.security.no_new_privileges,
                    cap_drop: c.security.cap_drop,
                    cap_add: c.security.cap_add,
                    pids_limit: c.security.pids_limit,
                    tmpfs: c.security.tmpfs.into_iter().collect(),
                    user: c.security.user,
                },
                runtime_port: c.runtime_port,
            })
            .collect(),
    }
}

fn container_info(c: spec::ContainerInfo) -> ContainerInfo {
    let state = match c.status.state {
        spec::ContainerState::Created => ContainerState::Created,
        spec::ContainerState::Running => ContainerState::Running,
        spec::ContainerState::Paused => ContainerState::Paused,
        spec::ContainerState::Exited => ContainerState::Exited,
        spec::ContainerState::Removing => ContainerState::Removing,
        spec::ContainerState::NotFound => ContainerState::NotFound,
    };
    ContainerInfo {
        name: c.name,
        id: c.id,
        status: ContainerStatus { state, exit_code: c.status.exit_code, oom_killed: c.status.oom_killed, finished_at: c.status.finished_at },
    }
}

// ---- the driver -----------------------------------------------------------

struct DockerApiDriver;

impl DriverExtension for DockerApiDriver {
    fn describe() -> DriverInfo {
        DriverInfo::new("docker-api", env!("CARGO_PKG_VERSION"))
    }

    fn launch_session(spec: SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        let launched = block_on(api()?.launch_session(&session_spec(spec)))?;
        Ok(launched.into_iter().map(|c| LaunchedContainer { name: c.name, id: c.id, endpoint: c.endpoint }).collect())
    }

    fn destroy_session(session_id: String) -> Result<(), DriverError> {
        block_on(api()?.destroy_session(&session_id))
    }

    fn session_status(session_id: String) -> Result<Vec<ContainerInfo>, DriverError> {
        Ok(block_on(api()?.session_status(&session_id))?.into_iter().map(container_info).collect())
    }

    fn list_sessions(labels: Labels) -> Result<Vec<SessionInfo>, DriverError> {
        let sessions = block_on(api()?.list_sessions(&self::labels(labels)))?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionInfo {
                session_id: s.session_id,
                labels: label_list(s.labels),
                containers: s.containers.into_iter().map(container_info).collect(),
            })
            .collect())
    }

    fn session_logs(session_id: String, lines: u32) -> Result<String, DriverError> {
        block_on(api()?.session_logs(&session_id, lines))
    }

    fn pause_session(session_id: String) -> Result<(), DriverError> {
        block_on(api()?.pause_session(&session_id))
    }

    fn resume_session(session_id: String) -> Result<(), DriverError> {
        block_on(api()?.resume_session(&session_id))
    }

    fn create_volume(name: String, labels: Labels) -> Result<String, DriverError> {
        block_on(api()?.create_volume(&name, &self::labels(labels)))
    }

    fn delete_volume(driver_ref: String) -> Result<(), DriverError> {
        block_on(api()?.delete_volume(&driver_ref))
    }

    fn volume_exists(driver_ref: String) -> Result<bool, DriverError> {
        block_on(api()?.volume_exists(&driver_ref))
    }

    fn list_volumes(labels: Labels) -> Result<Vec<Named>, DriverError> {
        let volumes = block_on(api()?.list_volumes(&self::labels(labels)))?;
        Ok(volumes.into_iter().map(|v| Named { name: v.name, labels: label_list(v.labels) }).collect())
    }
}

bay_plugin_sdk::register_driver!(DockerApiDriver);
