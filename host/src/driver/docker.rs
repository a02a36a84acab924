//! The built-in Docker driver: `crates/driver-kit`'s Docker Engine API
//! sessions over the engine's socket (or TCP), plus the engine's event feed.
//!
//! The session logic is the same code the `docker-api-driver` plugin runs;
//! here it goes over reqwest instead of the plugin's `http` import.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bay_driver_kit::docker_api::{self, DockerApi, Method, Reach, Reply, Request, Settings, SubnetPool, Transport};
use futures::StreamExt;

use super::{ContainerInfo, Driver, DriverError, ExitStream, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};
use crate::config::{ConnectMode, DockerConfig, PullPolicy, SessionNetworkMode};

/// HTTP to one engine endpoint.
#[derive(Clone)]
pub(crate) struct EngineHttp {
    client: reqwest::Client,
    base: String,
}

impl EngineHttp {
    /// `unix:///path.sock`, `tcp://host:port` or `http://host:port`.
    pub(crate) fn connect(endpoint: &str) -> anyhow::Result<EngineHttp> {
        let builder = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(32).connect_timeout(Duration::from_secs(10));
        let (builder, base) = if let Some(path) = endpoint.strip_prefix("unix://") {
            (builder.unix_socket(path), "http://localhost".to_owned())
        } else if endpoint.starts_with('/') {
            (builder.unix_socket(endpoint), "http://localhost".to_owned())
        } else if let Some(rest) = endpoint.strip_prefix("tcp://") {
            (builder.tcp_nodelay(true), format!("http://{rest}"))
        } else if endpoint.starts_with("http://") {
            (builder.tcp_nodelay(true), endpoint.trim_end_matches('/').to_owned())
        } else {
            anyhow::bail!("engine endpoint {endpoint:?}: expected unix:///path, tcp://host:port or http://host:port");
        };
        Ok(EngineHttp { client: builder.build()?, base })
    }

    fn request(&self, req: &Request) -> reqwest::RequestBuilder {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut url = format!("{}{}", self.base, req.path);
        if !req.query.is_empty() {
            let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&req.query).finish();
            url = format!("{url}?{query}");
        }
        let mut r = self.client.request(method, url);
        if let Some(body) = &req.body {
            r = r.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        r
    }
}

impl Transport for EngineHttp {
    fn send(&self, req: Request) -> impl Future<Output = Result<Reply, String>> + Send {
        let builder = self.request(&req).timeout(Duration::from_secs(req.timeout_s.into()));
        async move {
            let resp = builder.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
            Ok(Reply { status, body })
        }
    }

    fn send_lines<'a>(&'a self, req: Request, line: &'a (dyn Fn(&[u8]) + Send + Sync)) -> impl Future<Output = Result<Reply, String>> + Send + 'a {
        let builder = self.request(&req).timeout(Duration::from_secs(req.timeout_s.into()));
        async move {
            let resp = builder.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            let mut seen = 0;
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
                while let Some(end) = body[seen..].iter().position(|b| *b == b'\n') {
                    line(&body[seen..seen + end]);
                    seen += end + 1;
                }
            }
            Ok(Reply { status, body })
        }
    }
}

/// Logs an image pull's progress: at most a line every two seconds, and its outcome.
fn pull_logger() -> bay_driver_kit::docker_api::Progress {
    let last = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(10));
    std::sync::Arc::new(move |text: &str| {
        let mut last = last.lock().expect("pull log");
        let done = text.contains("Status:") || text.contains("error");
        if done || last.elapsed() >= Duration::from_secs(2) {
            *last = std::time::Instant::now();
            tracing::info!("{text}");
        }
    })
}

pub struct DockerDriver {
    api: DockerApi<EngineHttp>,
    http: EngineHttp,
}

/// The kit's settings from Bay's `driver.docker` section.
/// `engine_isolates`: the engine is Docker (Podman serves the same API but
/// ignores `enable_icc`) and filters bridged traffic, so `auto` may use the
/// shared bridge; `shared` uses it regardless (the operator's call).
pub(crate) fn settings(config: &DockerConfig, pull: PullPolicy, self_container: Option<String>, engine_isolates: bool) -> anyhow::Result<Settings> {
    let reach = match (config.connect_mode, config.publish_ports) {
        (ConnectMode::HostPort, _) | (ConnectMode::Auto, true) => Reach::PublishedPort { host_address: config.host_address.clone() },
        _ => match (self_container, &config.network) {
            (Some(me), _) => Reach::SessionNetwork { join: Some(me) },
            (None, Some(network)) => {
                tracing::warn!(
                    network,
                    "Bay's own container was not found: session containers join the shared network {network:?}, where sandboxes can reach each other's runtime ports (their session secret still protects them); set driver.docker.self_container"
                );
                Reach::SharedNetwork { network: network.clone() }
            }
            (None, None) => Reach::SessionNetwork { join: None },
        },
    };
    let subnets = match config.session_subnet_pool.as_deref().filter(|p| !p.is_empty()) {
        Some(pool) => {
            Some(SubnetPool::parse(pool, config.session_subnet_prefix).map_err(|e| anyhow::anyhow!("driver.docker.session_subnet_pool: {e}"))?)
        }
        None => None,
    };
    Ok(Settings {
        api_version: "1.41".into(),
        reach,
        subnets,
        pull: match pull {
            PullPolicy::Always => docker_api::PullPolicy::Always,
            PullPolicy::IfNotPresent => docker_api::PullPolicy::IfNotPresent,
            PullPolicy::Never => docker_api::PullPolicy::Never,
        },
        stop_grace_s: 5,
        host_port: config.host_port.filter(|p| *p != 0),
        shared_bridge: match config.session_network {
            SessionNetworkMode::Shared => Some(docker_api::SHARED_BRIDGE.into()),
            SessionNetworkMode::Auto if engine_isolates => Some(docker_api::SHARED_BRIDGE.into()),
            _ => None,
        },
    })
}

impl DockerDriver {
    /// Connects to the engine and checks that it answers.
    pub async fn connect(config: &DockerConfig, pull: PullPolicy) -> anyhow::Result<DockerDriver> {
        let http = EngineHttp::connect(&config.socket)?;
        let probe = DockerApi::new(http.clone(), Settings::default());
        let version = probe.version().await.map_err(|e| anyhow::anyhow!("cannot reach the Docker engine at {}: {e}", config.socket))?;
        let self_container = match (&config.self_container, config.connect_mode) {
            (Some(c), _) => Some(c.clone()),
            (None, ConnectMode::ContainerNetwork) | (None, ConnectMode::Auto) if !config.publish_ports => own_container(&http).await,
            _ => None,
        };
        // The shared bridge relies on Docker filtering bridged traffic
        // (br_netfilter); without it, `enable_icc=false` would do nothing.
        let filters = probe.info().await.is_ok_and(|i| i["BridgeNfIptables"] == true);
        // Containers on it get IPv6 turned off by sysctl, which fails on a
        // kernel booted without IPv6 (the kernel is the engine's when Bay
        // runs beside it): there, sessions keep a network each.
        let ipv6 = std::path::Path::new("/proc/sys/net/ipv6").exists();
        let docker = docker_api::is_docker_engine(&version);
        if !filters && docker && config.session_network == SessionNetworkMode::Auto {
            tracing::warn!("the engine does not filter bridged traffic (BridgeNfIptables is off): every session gets a network of its own");
        }
        let settings = settings(config, pull, self_container, docker && filters && ipv6)?;
        tracing::info!(endpoint = %config.socket, reach = ?settings.reach, subnets = ?config.session_subnet_pool, shared_bridge = ?settings.shared_bridge, "Docker driver");
        let api = DockerApi::new(http.clone(), settings).with_progress(pull_logger());
        if !api.prepare_shared_bridge().await {
            tracing::warn!(
                bridge = docker_api::SHARED_BRIDGE,
                "cannot create the shared session bridge (its subnet, the last sixteenth of driver.docker.session_subnet_pool, may be taken): sessions get a network each until it can be made"
            );
        }
        Ok(DockerDriver { api, http })
    }
}

/// Bay's own container, when Bay runs in one on this engine (its host name
/// is the container's short id unless set otherwise).
async fn own_container(http: &EngineHttp) -> Option<String> {
    if !std::path::Path::new("/.dockerenv").exists() && !std::path::Path::new("/run/.containerenv").exists() {
        return None;
    }
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())?;
    let req = Request { method: Method::Get, path: format!("/v1.41/containers/{host}/json"), query: vec![], body: None, timeout_s: 10 };
    let reply = http.send(req).await.ok().filter(|r| r.status == 200)?;
    let v: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
    v["Id"].as_str().map(String::from)
}

#[async_trait]
impl Driver for DockerDriver {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        self.api.launch_session(spec).await
    }
    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.api.destroy_session(session_id).await
    }
    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        self.api.session_status(session_id).await
    }
    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        self.api.list_sessions(labels).await
    }
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        self.api.session_logs(session_id, lines).await
    }
    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.api.pause_session(session_id).await
    }
    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.api.resume_session(session_id).await
    }
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        self.api.create_volume(name, labels).await
    }
    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        self.api.delete_volume(driver_ref).await
    }
    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        self.api.volume_exists(driver_ref).await
    }
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        self.api.list_volumes(labels).await
    }

    fn container_exits(&self, labels: &Labels) -> Option<ExitStream> {
        let req = Request {
            method: Method::Get,
            path: format!("/v{}/events", self.api.settings().api_version),
            query: docker_api::exit_events_query(labels),
            body: None,
            timeout_s: 0,
        };
        // No timeout: the feed stays open for the life of the engine.
        let builder = self.http.request(&req);
        let stream = async_stream(builder);
        Some(stream.boxed())
    }
}

/// The event feed as exits: newline-delimited JSON objects, read as they come.
fn async_stream(builder: reqwest::RequestBuilder) -> impl futures::Stream<Item = super::ContainerExit> + Send {
    futures::stream::once(async move { builder.send().await.ok() })
        .filter_map(|resp| async move { resp.filter(|r| r.status().is_success()) })
        .flat_map(|resp| {
            let mut pending: Vec<u8> = Vec::new();
            resp.bytes_stream().take_while(|chunk| futures::future::ready(chunk.is_ok())).flat_map(move |chunk| {
                pending.extend_from_slice(&chunk.unwrap_or_default());
                let mut exits = Vec::new();
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    exits.extend(docker_api::parse_exit_event(&line));
                }
                futures::stream::iter(exits)
            })
        })
}
