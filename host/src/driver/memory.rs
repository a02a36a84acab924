//! A driver that runs sessions nowhere: an in-memory engine for unit tests of
//! the lifecycle core (`crate::sandbox`, `crate::gc`). It keeps what a real
//! engine would (sessions with their labels and containers, volumes), can be
//! told to fail a launch or to kill a session's containers, and counts what
//! it was asked. Endpoints are `mem://<session>/<container>`, which the fake
//! adapters of `crate::sandbox::testing` answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{ContainerInfo, ContainerState, ContainerStatus, Driver, DriverError, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};

#[derive(Default)]
struct Engine {
    sessions: BTreeMap<String, (Labels, Vec<ContainerInfo>)>,
    volumes: BTreeMap<String, Labels>,
    fail_next_launch: Option<DriverError>,
}

#[derive(Default)]
pub(crate) struct MemoryDriver {
    engine: Mutex<Engine>,
    pub launches: AtomicUsize,
    pub destroys: AtomicUsize,
}

fn running(id: String, name: String) -> ContainerInfo {
    ContainerInfo { name, id, status: ContainerStatus { state: ContainerState::Running, exit_code: None, oom_killed: false, finished_at: None } }
}

impl MemoryDriver {
    /// The next launch fails with `err`.
    pub(crate) fn fail_next_launch(&self, err: DriverError) {
        self.engine.lock().unwrap().fail_next_launch = Some(err);
    }

    /// Every container of the session exits (as if killed) now.
    pub(crate) fn kill(&self, session_id: &str) {
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
        if let Some((_, containers)) = self.engine.lock().unwrap().sessions.get_mut(session_id) {
            for c in containers {
                c.status = ContainerStatus { state: ContainerState::Exited, exit_code: Some(137), oom_killed: false, finished_at: Some(now.clone()) };
            }
        }
    }

    /// Every container of the session in `state` (pause, resume).
    fn set_state(&self, session_id: &str, state: ContainerState) -> Result<(), DriverError> {
        let mut engine = self.engine.lock().unwrap();
        let (_, containers) = engine.sessions.get_mut(session_id).ok_or_else(|| DriverError::NotFound(format!("session {session_id}")))?;
        for c in containers {
            c.status.state = state;
        }
        Ok(())
    }

    /// Sessions the engine has (ids).
    pub(crate) fn session_ids(&self) -> Vec<String> {
        self.engine.lock().unwrap().sessions.keys().cloned().collect()
    }

    pub(crate) fn volume_names(&self) -> Vec<String> {
        self.engine.lock().unwrap().volumes.keys().cloned().collect()
    }

    /// Puts a session on the engine behind Bay's back (an orphan).
    pub(crate) fn plant(&self, session_id: &str, labels: Labels) {
        let c = running(format!("{session_id}-c"), "ship".into());
        self.engine.lock().unwrap().sessions.insert(session_id.to_owned(), (labels, vec![c]));
    }
}

fn matches(have: &Labels, want: &Labels) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

#[async_trait]
impl Driver for MemoryDriver {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        let mut engine = self.engine.lock().unwrap();
        if let Some(e) = engine.fail_next_launch.take() {
            return Err(e);
        }
        if !engine.volumes.contains_key(&spec.volume) {
            return Err(DriverError::NotFound(format!("volume {}", spec.volume)));
        }
        let containers = spec.containers.iter().map(|c| running(format!("{}-{}", spec.session_id, c.name), c.name.clone())).collect::<Vec<_>>();
        let entry = engine.sessions.entry(spec.session_id.clone()).or_insert_with(|| (spec.labels.clone(), containers));
        Ok(entry
            .1
            .iter()
            .map(|c| LaunchedContainer { name: c.name.clone(), id: c.id.clone(), endpoint: format!("mem://{}/{}", spec.session_id, c.name) })
            .collect())
    }

    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.destroys.fetch_add(1, Ordering::SeqCst);
        self.engine.lock().unwrap().sessions.remove(session_id);
        Ok(())
    }

    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        Ok(self.engine.lock().unwrap().sessions.get(session_id).map(|(_, c)| c.clone()).unwrap_or_default())
    }

    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        Ok(self
            .engine
            .lock()
            .unwrap()
            .sessions
            .iter()
            .filter(|(_, (l, _))| matches(l, labels))
            .map(|(id, (l, c))| SessionInfo { session_id: id.clone(), labels: l.clone(), containers: c.clone() })
            .collect())
    }

    async fn session_logs(&self, session_id: &str, _lines: u32) -> Result<String, DriverError> {
        Ok(format!("logs of {session_id}"))
    }

    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.set_state(session_id, ContainerState::Paused)
    }

    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.set_state(session_id, ContainerState::Running)
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        self.engine.lock().unwrap().volumes.entry(name.to_owned()).or_insert_with(|| labels.clone());
        Ok(name.to_owned())
    }

    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        let mut engine = self.engine.lock().unwrap();
        if engine.sessions.values().any(|(l, _)| l.get(super::labels::CARGO_ID).is_some_and(|c| driver_ref.ends_with(c.as_str()))) {
            return Err(DriverError::Engine(format!("volume {driver_ref} is in use")));
        }
        engine.volumes.remove(driver_ref);
        Ok(())
    }

    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        Ok(self.engine.lock().unwrap().volumes.contains_key(driver_ref))
    }

    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        Ok(self
            .engine
            .lock()
            .unwrap()
            .volumes
            .iter()
            .filter(|(_, l)| matches(l, labels))
            .map(|(n, l)| Named { name: n.clone(), labels: l.clone() })
            .collect())
    }
}
