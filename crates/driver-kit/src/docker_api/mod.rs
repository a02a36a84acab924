//! Sessions on an engine that speaks the Docker Engine REST API (a Docker
//! engine, Podman's API service).
//!
//! A session is one container per runtime plus a bridge network of its own
//! (`bay_net_<session_id>`), on which the containers reach each other by name
//! and nothing else of Bay's: engines isolate bridge networks from each other,
//! so one sandbox cannot reach another's runtime. Each network gets a small
//! subnet from Bay's pool ([`subnet`]). The cargo volume is mounted at the
//! mount path of every container; the runtime port is reached either through
//! a port published on `host_address` (Bay on the engine's host) or at the
//! container's address on the session network, which Bay's own container joins
//! when Bay runs in one.
//!
//! With [`Settings::shared_bridge`], a single-container session whose
//! container cannot forge frames (no `NET_RAW`, no `NET_ADMIN`) joins one
//! bridge shared by all such sessions instead ([`shared`]): the engine keeps
//! them apart there (inter-container traffic off, IPv6 off in the container),
//! and a session start no longer creates and removes a network, which is most
//! of the engine's work when many sessions start at once.
//!
//! Every object carries the session's labels; the engine is the only state, so
//! any Bay process can list, adopt or destroy any session.

pub mod body;
mod shared;
pub mod subnet;
mod transport;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::spec::{
    ContainerExit, ContainerInfo, ContainerState, ContainerStatus, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec, labels,
};
pub use subnet::SubnetPool;
pub use transport::{Method, Reply, Request, Transport};

/// How the driver treats images that are not on the engine
/// (`driver.image_pull_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull before every launch.
    Always,
    /// Pull when the image is missing.
    #[default]
    IfNotPresent,
    /// Never pull: a missing image fails the launch.
    Never,
}

/// How Bay reaches a runtime's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Through a port published on `host_address` (Bay on the engine's host).
    PublishedPort { host_address: String },
    /// At the container's address on the session network: Bay runs on the
    /// engine's host (which routes to bridge networks), or in the container
    /// named here, which joins every session network.
    SessionNetwork { join: Option<String> },
    /// Shipyard Neo's layout: session containers also join this shared
    /// network, where Bay's container is. Sessions can then reach each other
    /// on it (the runtime's secret still stops them from using another's
    /// runtime); prefer `SessionNetwork` with `join`.
    SharedNetwork { network: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The API version prefix (`1.41`: Docker 20.10+ and Podman 3+).
    pub api_version: String,
    pub reach: Reach,
    /// Where session subnets come from (`None`: the engine's default pools).
    pub subnets: Option<SubnetPool>,
    pub pull: PullPolicy,
    /// Seconds a runtime gets to shut down cleanly before it is killed.
    pub stop_grace_s: u32,
    /// With `Reach::PublishedPort`: the fixed host port of single-container
    /// sessions (Shipyard Neo's `driver.docker.host_port`); `None` or 0: a
    /// random port. One port serves one running container: while it is
    /// taken, another session fails to start.
    pub host_port: Option<u16>,
    /// The bridge network with inter-container traffic off that eligible
    /// single-container sessions share ([`shared`]); `None`: every session
    /// gets a network of its own. Only for engines that honour
    /// `com.docker.network.bridge.enable_icc` (Docker; not Podman's netavark).
    pub shared_bridge: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_version: "1.41".into(),
            reach: Reach::PublishedPort { host_address: "127.0.0.1".into() },
            subnets: Some(SubnetPool::parse(DEFAULT_SUBNET_POOL, DEFAULT_SUBNET_PREFIX).expect("default pool")),
            pull: PullPolicy::IfNotPresent,
            stop_grace_s: 5,
            host_port: None,
            shared_bridge: None,
        }
    }
}

/// The default pool of session subnets and their size (4096 sessions of 14 hosts).
pub const DEFAULT_SUBNET_POOL: &str = "10.213.0.0/16";
pub const DEFAULT_SUBNET_PREFIX: u8 = 28;

/// The name of the shared session bridge ([`shared`]).
pub const SHARED_BRIDGE: &str = "bay_sessions";

/// Whether `GET /version` describes a Docker engine (not Podman's API
/// service, which serves the same API).
pub fn is_docker_engine(version: &Value) -> bool {
    let names = version["Components"].as_array().into_iter().flatten().filter_map(|c| c["Name"].as_str());
    let platform = version["Platform"]["Name"].as_str();
    !names.chain(platform).any(|n| n.to_ascii_lowercase().contains("podman"))
}

/// Candidate subnets a launch tries before giving up.
const SUBNET_TRIES: usize = 32;

/// The network of one session.
pub fn network_name(session_id: &str) -> String {
    format!("bay_net_{session_id}")
}

/// The engine name of a session's container: Shipyard Neo's names (one
/// container: `bay-session-<id>`; several: `bay-<id>-<name>`).
pub fn container_name(spec: &SessionSpec, name: &str) -> String {
    if spec.containers.len() == 1 { format!("bay-session-{}", spec.session_id) } else { format!("bay-{}-{name}", spec.session_id) }
}

/// Receives human-readable progress of long operations (image pulls).
pub type Progress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The Docker-API driver over a transport.
pub struct DockerApi<T> {
    transport: T,
    settings: Settings,
    progress: Option<Progress>,
}

fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn label_filter(labels: &Labels) -> (String, String) {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ("filters".into(), json!({ "label": l }).to_string())
}

fn session_label(session_id: &str) -> Labels {
    Labels::from([(labels::SESSION_ID.to_owned(), session_id.to_owned())])
}

pub(crate) fn labels_of(v: &Value) -> Labels {
    v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()).unwrap_or_default()
}

impl<T: Transport> DockerApi<T> {
    pub fn new(transport: T, settings: Settings) -> DockerApi<T> {
        DockerApi { transport, settings, progress: None }
    }

    /// Reports the progress of image pulls to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> DockerApi<T> {
        self.progress = Some(progress);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: Vec<(String, String)>,
        body: Option<Value>,
        timeout_s: u32,
    ) -> Result<Reply, DriverError> {
        let req = Request { method, path: format!("/v{}{path}", self.settings.api_version), query, body: body.map(|b| b.to_string()), timeout_s };
        self.transport.send(req).await.map_err(|e| DriverError::Engine(format!("engine request {path} failed: {e}")))
    }

    async fn get(&self, path: &str, query: Vec<(String, String)>) -> Result<Reply, DriverError> {
        self.send(Method::Get, path, query, None, 30).await
    }

    /// The engine's version document (`GET /version`), to check it answers.
    pub async fn version(&self) -> Result<Value, DriverError> {
        self.get("/version", vec![]).await?.expect("version", &[200])?.json()
    }

    /// `GET /info`: the engine's system information.
    pub async fn info(&self) -> Result<Value, DriverError> {
        self.get("/info", vec![]).await?.expect("info", &[200])?.json()
    }

    // ---- volumes ------------------------------------------------------

    /// Creates (or adopts) a volume; returns its name.
    pub async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        let r = self
            .send(Method::Post, "/volumes/create", vec![], Some(json!({ "Name": name, "Labels": labels })), 30)
            .await?
            .expect("create volume", &[200, 201])?;
        Ok(r.json()?["Name"].as_str().unwrap_or(name).to_owned())
    }

    /// Deletes a volume; a missing one is not an error.
    pub async fn delete_volume(&self, name: &str) -> Result<(), DriverError> {
        self.send(Method::Delete, &format!("/volumes/{}", seg(name)), vec![("force".into(), "true".into())], None, 30)
            .await?
            .expect("delete volume", &[204, 404])
            .map(drop)
    }

    pub async fn volume_exists(&self, name: &str) -> Result<bool, DriverError> {
        let r = self.get(&format!("/volumes/{}", seg(name)), vec![]).await?.expect("inspect volume", &[200, 404])?;
        Ok(r.status == 200)
    }

    pub async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let r = self.get("/volumes", vec![label_filter(labels)]).await?.expect("list volumes", &[200])?.json()?;
        Ok(r["Volumes"]
            .as_array()
            .map(|v| v.iter().map(|v| Named { name: v["Name"].as_str().unwrap_or_default().into(), labels: labels_of(&v["Labels"]) }).collect())
            .unwrap_or_default())
    }

    // ---- sessions -----------------------------------------------------

    /// Launches a session (or adopts what exists of it): its network, its
    /// containers, started; returns where each runtime answers. On an error,
    /// what was created stays for [`destroy_session`](Self::destroy_session).
    pub async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        let net = match self.shared_bridge_for(spec) {
            Some(bridge) if self.ensure_shared_bridge(bridge).await => bridge.to_owned(),
            _ => {
                let net = network_name(&spec.session_id);
                self.create_network(&net, spec).await?;
                net
            }
        };
        if let Reach::SessionNetwork { join: Some(me) } = &self.settings.reach {
            self.connect(&net, me, None).await?;
        }
        if self.settings.pull == PullPolicy::Always {
            let mut images: Vec<&str> = spec.containers.iter().map(|c| c.image.as_str()).collect();
            images.sort_unstable();
            images.dedup();
            for image in images {
                self.pull(image).await?;
            }
        }
        let creations = spec.containers.iter().map(|c| self.create_container(spec, c, net.as_str()));
        let ids = join_all(creations).await.into_iter().collect::<Result<Vec<_>, _>>()?;
        let net = &net;
        let starts = spec.containers.iter().zip(&ids).map(|(c, id)| async move {
            let endpoint = self.start_container(id, c.runtime_port, net).await?;
            Ok::<_, DriverError>(LaunchedContainer { name: c.name.clone(), id: id.clone(), endpoint })
        });
        join_all(starts).await.into_iter().collect()
    }

    /// Creates the shared bridge now, if sessions will use it, so the first
    /// burst of launches does not race to create it (a launch that loses
    /// that race gets a network of its own). False when it cannot be made.
    pub async fn prepare_shared_bridge(&self) -> bool {
        match self.usable_shared_bridge() {
            Some(bridge) => self.ensure_shared_bridge(bridge).await,
            None => true,
        }
    }

    /// The shared bridge, unless Bay joins session networks: its own
    /// container on the bridge could not reach the runtimes either
    /// (inter-container traffic is off).
    fn usable_shared_bridge(&self) -> Option<&str> {
        let joins = matches!(self.settings.reach, Reach::SessionNetwork { join: Some(_) });
        self.settings.shared_bridge.as_deref().filter(|_| !joins)
    }

    /// The shared bridge this session joins, if any.
    fn shared_bridge_for(&self, spec: &SessionSpec) -> Option<&str> {
        self.usable_shared_bridge().filter(|_| shared::eligible(spec))
    }

    /// Joins the shared bridge if it exists and is Bay's (inter-container
    /// traffic off), creating it if missing; it is never removed. Looked at on
    /// every launch rather than remembered, so a bridge pruned meanwhile comes
    /// back. False when there is no bridge to join: its subnet is taken by
    /// another network, the engine refused it, or a network of that name was
    /// made by someone else and lets containers talk. The session then gets a
    /// network of its own.
    async fn ensure_shared_bridge(&self, bridge: &str) -> bool {
        if let Some(ours) = self.inspect_shared_bridge(bridge).await {
            return ours;
        }
        let block = self.settings.subnets.as_ref().and_then(SubnetPool::shared_block);
        let Ok(r) = self.send(Method::Post, "/networks/create", vec![], Some(shared::create_body(bridge, block.as_deref())), 30).await else {
            return false;
        };
        match r.status {
            200 | 201 => true,
            // Another launch made it meanwhile (a name conflict, or the
            // overlap of its fixed subnet), or the block is another network's.
            _ if r.status == 409 || r.message().contains("already exists") || subnet::is_overlap(&r.message()) => {
                self.inspect_shared_bridge(bridge).await == Some(true)
            }
            _ => false,
        }
    }

    /// Whether the network named `bridge` is a shared bridge as Bay makes
    /// them; `None` when there is none.
    async fn inspect_shared_bridge(&self, bridge: &str) -> Option<bool> {
        let r = self.get(&format!("/networks/{}", seg(bridge)), vec![]).await.ok()?;
        if r.status != 200 {
            return None;
        }
        Some(r.json().is_ok_and(|v| shared::is_shared_bridge(&v)))
    }

    async fn create_network(&self, net: &str, spec: &SessionSpec) -> Result<(), DriverError> {
        let mut body = json!({ "Name": net, "Driver": "bridge", "CheckDuplicate": true, "Labels": spec.labels });
        let candidates = match &self.settings.subnets {
            Some(pool) => pool.candidates(&spec.session_id, SUBNET_TRIES, self.settings.shared_bridge.is_some()).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut last = None;
        for subnet in candidates {
            if let Some(s) = &subnet {
                body["IPAM"] = json!({ "Driver": "default", "Config": [{ "Subnet": s }] });
            }
            let r = self.send(Method::Post, "/networks/create", vec![], Some(body.clone()), 30).await?;
            match r.status {
                200 | 201 => return Ok(()),
                // A launch retried after a crash: the network is there already
                // (Docker: 409; Podman: 500 "network already exists").
                409 => return Ok(()),
                _ if r.message().contains("already exists") => return Ok(()),
                _ if subnet::is_overlap(&r.message()) => last = Some(r),
                _ => return Err(r.error("create session network")),
            }
        }
        Err(last.map(|r| r.error("create session network (no free subnet in the pool)")).unwrap_or_else(|| DriverError::Engine("no subnet".into())))
    }

    /// Connects a container to a network (already connected is fine).
    async fn connect(&self, net: &str, container: &str, alias: Option<&str>) -> Result<(), DriverError> {
        let mut body = json!({ "Container": container });
        if let Some(a) = alias {
            body["EndpointConfig"] = json!({ "Aliases": [a] });
        }
        let r = self.send(Method::Post, &format!("/networks/{}/connect", seg(net)), vec![], Some(body), 30).await?;
        match r.status {
            200 | 204 => Ok(()),
            _ if r.message().contains("already exists") || r.message().contains("already connected") => Ok(()),
            _ => Err(r.error("connect to session network")),
        }
    }

    /// Pulls an image, reporting its progress; an `error` in the progress
    /// stream fails the pull.
    pub async fn pull(&self, image: &str) -> Result<(), DriverError> {
        let (from, tag) = body::split_image(image);
        let mut q = vec![("fromImage".to_owned(), from.to_owned())];
        if let Some(t) = tag {
            q.push(("tag".into(), t.to_owned()));
        }
        let req =
            Request { method: Method::Post, path: format!("/v{}/images/create", self.settings.api_version), query: q, body: None, timeout_s: 3600 };
        let progress = self.progress.clone();
        let image_name = image.to_owned();
        let report = move |line: &[u8]| {
            if let (Some(p), Some(text)) = (&progress, body::pull_progress(line)) {
                p(&format!("pulling {image_name}: {text}"));
            }
        };
        let r = self.transport.send_lines(req, &report).await.map_err(|e| DriverError::Engine(format!("pulling {image}: {e}")))?;
        if r.status != 200 {
            return Err(DriverError::ImageMissing(format!("{image} (pull failed: {})", r.message())));
        }
        if let Some(err) = body::pull_error(&r.body) {
            return Err(DriverError::ImageMissing(format!("{image} (pull failed: {err})")));
        }
        Ok(())
    }

    async fn create_container(&self, spec: &SessionSpec, c: &crate::spec::ContainerSpec, net: &str) -> Result<String, DriverError> {
        let name = container_name(spec, &c.name);
        let publish = match &self.settings.reach {
            Reach::PublishedPort { host_address } => Some(host_address.as_str()),
            _ => None,
        };
        // As in Shipyard Neo: the fixed port only for single-container sessions.
        let fixed = self.settings.host_port.filter(|p| *p != 0 && spec.containers.len() == 1);
        let mut create = body::create_container(spec, c, net, publish.map(|address| (address, fixed)));
        if self.settings.shared_bridge.as_deref() == Some(net) {
            shared::join(&mut create, net);
        }
        let query = vec![("name".to_owned(), name.clone())];
        let mut r = self.send(Method::Post, "/containers/create", query.clone(), Some(create.clone()), 60).await?;
        if r.status == 404 && self.settings.pull == PullPolicy::IfNotPresent {
            self.pull(&c.image).await?;
            r = self.send(Method::Post, "/containers/create", query, Some(create), 60).await?;
        }
        let id = match r.status {
            200 | 201 => r.json()?["Id"].as_str().unwrap_or_default().to_owned(),
            404 => return Err(DriverError::ImageMissing(c.image.clone())),
            // Launched before (a retry after a crash): adopt it (Docker: 409;
            // Podman: 500 "… already in use").
            409 | 500 if r.status == 409 || r.message().contains("already in use") => {
                let info = self.get(&format!("/containers/{}/json", seg(&name)), vec![]).await?.expect("inspect container", &[200])?.json()?;
                info["Id"].as_str().unwrap_or_default().to_owned()
            }
            _ => return Err(r.error("create container")),
        };
        if let Reach::SharedNetwork { network } = &self.settings.reach {
            self.connect(network, &id, None).await?;
        }
        Ok(id)
    }

    /// Starts a container; returns the endpoint of its runtime port.
    async fn start_container(&self, id: &str, runtime_port: u16, net: &str) -> Result<String, DriverError> {
        let r = self.send(Method::Post, &format!("/containers/{}/start", seg(id)), vec![], None, 60).await?;
        if let Some(port) = self.settings.host_port.filter(|p| *p != 0)
            && !matches!(r.status, 204 | 304)
            && (r.message().contains("already allocated") || r.message().contains("address already in use"))
        {
            return Err(DriverError::Engine(format!(
                "start container: host port {port} is taken ({}); driver.docker.host_port publishes every single-container session on that one port, so only one can run at a time: stop the other session, or unset driver.docker.host_port for a random port per session",
                r.message()
            )));
        }
        r.expect("start container", &[204, 304])?;
        let info = self.get(&format!("/containers/{}/json", seg(id)), vec![]).await?.expect("inspect container", &[200])?.json()?;
        body::endpoint(&info, runtime_port, net, &self.settings.reach)
            .ok_or_else(|| DriverError::Engine(format!("container {id} has no reachable address for port {runtime_port}")))
    }

    /// Removes everything of a session (containers, then its network); what
    /// is already gone is not an error.
    pub async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        let containers = self.list_containers(&session_label(session_id)).await?;
        let removals = containers.iter().map(|c| self.remove_container(&c.id));
        let results = join_all(removals).await;
        let nets = self.list_networks(&session_label(session_id)).await?;
        // Podman refuses to remove a network any container is attached to,
        // even a stopped one or one whose removal it is still finishing;
        // `force` removes those with it (Docker ignores the parameter). Not
        // when Bay's own container joins the session networks.
        let joined = matches!(&self.settings.reach, Reach::SessionNetwork { join: Some(_) });
        let query: Vec<(String, String)> = if joined { vec![] } else { vec![("force".into(), "true".into())] };
        for net in &nets {
            if let Reach::SessionNetwork { join: Some(me) } = &self.settings.reach {
                let body = json!({ "Container": me, "Force": true });
                let _ = self.send(Method::Post, &format!("/networks/{}/disconnect", seg(net)), vec![], Some(body), 30).await;
            }
            self.send(Method::Delete, &format!("/networks/{}", seg(net)), query.clone(), None, 30)
                .await?
                .expect("remove session network", &[200, 204, 404])?;
        }
        results.into_iter().collect()
    }

    async fn remove_container(&self, id: &str) -> Result<(), DriverError> {
        // Stop first (SIGTERM, then SIGKILL after the grace period) so the
        // runtime can flush state (Chromium writes its cookies only then).
        let grace = self.settings.stop_grace_s;
        let stop = self.send(Method::Post, &format!("/containers/{}/stop", seg(id)), vec![("t".into(), grace.to_string())], None, grace + 30).await?;
        if stop.status == 404 {
            return Ok(());
        }
        self.send(Method::Delete, &format!("/containers/{}", seg(id)), vec![("force".into(), "true".into()), ("v".into(), "false".into())], None, 60)
            .await?
            .expect("remove container", &[204, 404, 409])
            .map(drop)
    }

    /// The containers of a session with their state (empty: none left).
    pub async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        let listed = self.list_containers(&session_label(session_id)).await?;
        let inspections = listed.into_iter().map(|c| async move {
            let status = self.inspect(&c.id).await?;
            Ok::<_, DriverError>(ContainerInfo { name: c.name, id: c.id, status })
        });
        join_all(inspections).await.into_iter().collect()
    }

    async fn inspect(&self, id: &str) -> Result<ContainerStatus, DriverError> {
        let r = self.get(&format!("/containers/{}/json", seg(id)), vec![]).await?;
        if r.status == 404 {
            return Ok(ContainerStatus::not_found());
        }
        let info = r.expect("inspect container", &[200])?.json()?;
        Ok(body::status(&info["State"]))
    }

    /// Sessions with objects carrying all of `labels`, grouped by session id.
    pub async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        let containers = self.list_containers(labels).await?;
        let networks = self.list_network_objects(labels).await?;
        Ok(crate::spec::group_sessions(containers.into_iter().map(|c| (c.labels.clone(), c.into_info())), networks.into_iter().map(|n| n.labels)))
    }

    /// The last `lines` lines of each container's output.
    pub async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        let containers = self.list_containers(&session_label(session_id)).await?;
        let several = containers.len() > 1;
        let mut out = String::new();
        for c in containers {
            let q = vec![("stdout".into(), "1".into()), ("stderr".into(), "1".into()), ("tail".into(), lines.to_string())];
            let r = self.get(&format!("/containers/{}/logs", seg(&c.id)), q).await?;
            match r.status {
                200 => {
                    let text = body::demux(&r.body);
                    if several {
                        for line in text.lines() {
                            out.push_str(&format!("[{}] {line}\n", c.name));
                        }
                    } else {
                        out.push_str(&text);
                    }
                }
                404 => {}
                _ => return Err(r.error("container logs")),
            }
        }
        Ok(out)
    }

    /// Freezes every container of a session (memory kept, no CPU).
    pub async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.each_container(session_id, "pause").await
    }

    /// Thaws a paused session.
    pub async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.each_container(session_id, "unpause").await
    }

    async fn each_container(&self, session_id: &str, action: &str) -> Result<(), DriverError> {
        let containers = self.list_containers(&session_label(session_id)).await?;
        if containers.is_empty() {
            return Err(DriverError::NotFound(format!("session {session_id}")));
        }
        let wanted = if action == "pause" { ContainerState::Paused } else { ContainerState::Running };
        for c in containers {
            let r = self.send(Method::Post, &format!("/containers/{}/{action}", seg(&c.id)), vec![], None, 30).await?;
            match r.status {
                200 | 204 | 304 => {}
                501 => {
                    return Err(DriverError::Unsupported(format!("{action}: {}", r.message())));
                }
                // Already in that state (Docker: 409; Podman: 500 "container
                // state improper"): fine; any other state is an error.
                409 | 500 if self.inspect(&c.id).await?.state == wanted => {}
                _ => return Err(r.error(action)),
            }
        }
        Ok(())
    }

    async fn list_containers(&self, labels: &Labels) -> Result<Vec<Listed>, DriverError> {
        let r =
            self.get("/containers/json", vec![("all".into(), "1".into()), label_filter(labels)]).await?.expect("list containers", &[200])?.json()?;
        Ok(r.as_array().map(|list| list.iter().map(Listed::from_json).collect()).unwrap_or_default())
    }

    async fn list_network_objects(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let r = self.get("/networks", vec![label_filter(labels)]).await?.expect("list networks", &[200])?.json()?;
        Ok(r.as_array()
            .map(|v| v.iter().map(|n| Named { name: n["Name"].as_str().unwrap_or_default().into(), labels: labels_of(&n["Labels"]) }).collect())
            .unwrap_or_default())
    }

    async fn list_networks(&self, labels: &Labels) -> Result<Vec<String>, DriverError> {
        Ok(self.list_network_objects(labels).await?.into_iter().map(|n| n.name).collect())
    }
}

/// A container as the list endpoint reports it.
struct Listed {
    id: String,
    name: String,
    labels: Labels,
    state: String,
}

impl Listed {
    fn from_json(c: &Value) -> Listed {
        let labels = labels_of(&c["Labels"]);
        let engine_name = c["Names"][0].as_str().unwrap_or_default().trim_start_matches('/').to_owned();
        Listed {
            id: c["Id"].as_str().unwrap_or_default().into(),
            name: labels.get(labels::CONTAINER_NAME).cloned().unwrap_or(engine_name),
            state: c["State"].as_str().unwrap_or_default().into(),
            labels,
        }
    }

    fn into_info(self) -> ContainerInfo {
        let state = ContainerState::parse(&self.state);
        ContainerInfo { name: self.name, id: self.id, status: ContainerStatus { state, exit_code: None, oom_killed: false, finished_at: None } }
    }
}

/// The query of the engine's event feed for containers carrying `labels`.
/// Exits are picked out of it by [`parse_exit_event`]: filtering on the
/// event name server-side loses them on Podman (its internal name is `died`).
pub fn exit_events_query(labels: &Labels) -> Vec<(String, String)> {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vec![("filters".into(), json!({ "type": ["container"], "label": l }).to_string())]
}

/// One event of the feed (a JSON object) as a container exit, if it is one.
/// (Podman reports no `oom` event; an OOM kill shows as an exit with 137.)
pub fn parse_exit_event(event: &[u8]) -> Option<ContainerExit> {
    let v: Value = serde_json::from_slice(event).ok()?;
    let action = v["Action"].as_str().or(v["status"].as_str())?;
    if !matches!(action, "die" | "died" | "oom") {
        return None;
    }
    Some(ContainerExit {
        container_id: v["Actor"]["ID"].as_str().or(v["id"].as_str())?.to_owned(),
        labels: labels_of(&v["Actor"]["Attributes"]),
        oom: action == "oom",
    })
}

#[cfg(test)]
mod tests;
