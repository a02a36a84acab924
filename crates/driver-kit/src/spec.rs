//! The data of the session-shaped driver contract.
//!
//! The WIT world `driver-extension` of `bay:plugin@0.2` (`wit/bay-plugin-0.2/driver.wit`)
//! carries the same records; the host converts between the two.

use std::collections::BTreeMap;

/// Labels every Bay-managed engine object carries. Reconcile and GC find what
/// belongs to a Bay deployment (`bay.instance_id`), a sandbox or a session by
/// them, so a driver must put [`SessionSpec::labels`] on every object it
/// creates for a session and answer label queries.
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
    /// On a cargo volume: the Bay process that created it (replicas on one
    /// database tell a dead process's half-done create from a live one's).
    pub const REPLICA: &str = "bay.replica";
}

pub type Labels = BTreeMap<String, String>;

/// Container hardening, as a profile's `security` block resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    pub read_only_rootfs: bool,
    pub no_new_privileges: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub pids_limit: i64,
    /// Mount point → mount options (`rw,nosuid,size=64m`).
    pub tmpfs: BTreeMap<String, String>,
    /// `uid:gid` or a user name; `None`: the image's user.
    pub user: Option<String>,
}

/// One runtime container of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Unique within the session; the container's siblings reach it by this
    /// host name (`http://ship:8123`).
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    /// Labels of this container only, added to the session's.
    pub labels: Labels,
    pub cpus: f64,
    pub memory_bytes: u64,
    pub security: Security,
    /// The port the runtime listens on inside the container; Bay reaches it
    /// through the endpoint the launch returns.
    pub runtime_port: u16,
}

/// Everything needed to launch one session. Launching is idempotent per
/// `session_id`: launching a session that exists adopts what is there.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    pub session_id: String,
    /// Put on every engine object of the session (containers, networks, Pods).
    pub labels: Labels,
    /// The cargo volume (its `driver_ref`) and where it is mounted in every container.
    pub volume: String,
    pub mount_path: String,
    pub containers: Vec<ContainerSpec>,
}

/// A container of a launched session and where its runtime answers.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchedContainer {
    pub name: String,
    pub id: String,
    /// `http://host:port` of the runtime port.
    pub endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    /// Frozen by the engine (memory kept, no CPU).
    Paused,
    Exited,
    Removing,
    NotFound,
}

impl ContainerState {
    /// The engine's state word (`running`, `exited`, ...) as Bay reads it.
    pub fn parse(s: &str) -> ContainerState {
        match s {
            "running" | "restarting" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "created" | "configured" | "initialized" => ContainerState::Created,
            "removing" | "stopping" => ContainerState::Removing,
            _ => ContainerState::Exited,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// When it stopped (RFC 3339), if it did.
    pub finished_at: Option<String>,
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

/// One container of a session as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// The container's name within the session ([`ContainerSpec::name`]).
    pub name: String,
    pub id: String,
    pub status: ContainerStatus,
}

/// A session found on the engine by label (reconcile, GC, delete).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub session_id: String,
    /// The session's labels (as put on its objects).
    pub labels: Labels,
    /// Its containers with their state; empty when only other objects of the
    /// session are left (a network after a crash mid-launch).
    pub containers: Vec<ContainerInfo>,
}

/// Groups engine objects into sessions by their `bay.session_id` label:
/// containers (with their labels) and other objects (networks: labels only).
/// Objects without the label are skipped; sessions keep first-seen order.
pub fn group_sessions(containers: impl IntoIterator<Item = (Labels, ContainerInfo)>, others: impl IntoIterator<Item = Labels>) -> Vec<SessionInfo> {
    let mut sessions: Vec<SessionInfo> = Vec::new();
    let mut entry = |l: &Labels| -> Option<usize> {
        let id = l.get(labels::SESSION_ID)?;
        Some(match sessions.iter().position(|s| &s.session_id == id) {
            Some(i) => i,
            None => {
                sessions.push(SessionInfo { session_id: id.clone(), labels: l.clone(), containers: vec![] });
                sessions.len() - 1
            }
        })
    };
    let mut placed = Vec::new();
    for (l, c) in containers {
        if let Some(i) = entry(&l) {
            placed.push((i, c));
        }
    }
    for l in others {
        entry(&l);
    }
    for (i, c) in placed {
        sessions[i].containers.push(c);
    }
    sessions
}

/// A volume found by label.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub labels: Labels,
}

/// A session's container stopped on its own (it exited, was killed, or ran
/// out of memory), as an engine's event feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerExit {
    pub container_id: String,
    pub labels: Labels,
    pub oom: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DriverError {
    /// An image is not on the engine (and was not pulled).
    ImageMissing(String),
    NotFound(String),
    /// The driver or engine cannot do this (pausing on an engine without a
    /// freezer, for instance).
    Unsupported(String),
    /// Anything else the engine reported, or a transport failure.
    Engine(String),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::ImageMissing(i) => write!(f, "image {i:?} is not available on the engine"),
            DriverError::NotFound(m) => write!(f, "{m} not found"),
            DriverError::Unsupported(m) => write!(f, "not supported by this driver: {m}"),
            DriverError::Engine(m) => write!(f, "container engine error: {m}"),
        }
    }
}

impl std::error::Error for DriverError {}
