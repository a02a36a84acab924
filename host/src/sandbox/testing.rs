//! The test seam of the lifecycle core: a [`SandboxManager`] over the
//! in-memory driver (`crate::driver::memory`), a scriptable fake runtime
//! behind fake adapters, and an in-memory SQLite database — real lifecycle
//! code, no Docker, no WebAssembly, milliseconds per test.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::SandboxManager;
use crate::adapter::{
    AdapterError, AdapterInfo, Adapters, BrowserBatchResult, BrowserStep, Capability, CapabilityCall, CapabilityOutcome, HealthStatus,
    PythonExecResult, RuntimeAdapter, RuntimeLink, RuntimeMeta,
};
use crate::config::Config;
use crate::driver::memory::MemoryDriver;

/// What the fake runtimes do, per endpoint.
#[derive(Default)]
pub(crate) struct FakeRuntimes {
    state: Mutex<Scripts>,
}

#[derive(Default)]
struct Scripts {
    /// Calls that find nobody listening (the call never reached a runtime).
    refused: HashSet<String>,
    /// Calls that connect and then lose the connection.
    reset: HashSet<String>,
    tokens: HashMap<String, Option<String>>,
    /// Health checks answered "starting" before a runtime is healthy.
    starting_checks: usize,
    /// Held calls wait on this before answering.
    hold: Option<Arc<tokio::sync::Semaphore>>,
}

impl FakeRuntimes {
    pub(crate) fn refuse(&self, endpoint_prefix: &str) {
        self.state.lock().unwrap().refused.insert(endpoint_prefix.to_owned());
    }
    pub(crate) fn reset(&self, endpoint_prefix: &str) {
        self.state.lock().unwrap().reset.insert(endpoint_prefix.to_owned());
    }
    pub(crate) fn starting_for(&self, checks: usize) {
        self.state.lock().unwrap().starting_checks = checks;
    }
    /// Calls block until permits are added to the returned semaphore.
    pub(crate) fn hold_calls(&self) -> Arc<tokio::sync::Semaphore> {
        let s = Arc::new(tokio::sync::Semaphore::new(0));
        self.state.lock().unwrap().hold = Some(s.clone());
        s
    }
    /// The secret the last call to an endpoint carried.
    pub(crate) fn token_seen(&self, endpoint_prefix: &str) -> Option<String> {
        self.state.lock().unwrap().tokens.iter().find(|(e, _)| e.starts_with(endpoint_prefix)).and_then(|(_, t)| t.clone())
    }
}

fn matches_any(set: &HashSet<String>, endpoint: &str) -> bool {
    set.iter().any(|p| endpoint.starts_with(p.as_str()))
}

/// A runtime adapter answering from [`FakeRuntimes`].
pub(crate) struct FakeAdapter {
    info: AdapterInfo,
    runtimes: Arc<FakeRuntimes>,
}

#[async_trait]
impl RuntimeAdapter for FakeAdapter {
    fn info(&self) -> &AdapterInfo {
        &self.info
    }
    fn plugin(&self) -> String {
        "fake 0".into()
    }
    async fn health(&self, link: &RuntimeLink) -> Result<HealthStatus, AdapterError> {
        let mut s = self.runtimes.state.lock().unwrap();
        if matches_any(&s.refused, &link.endpoint) {
            return Err(AdapterError::NotConnected("connection refused".into()));
        }
        if s.starting_checks > 0 {
            s.starting_checks -= 1;
            return Ok(HealthStatus { healthy: false, detail: Some("kernel starting".into()) });
        }
        Ok(HealthStatus { healthy: true, detail: None })
    }
    async fn meta(&self, link: &RuntimeLink) -> Result<RuntimeMeta, AdapterError> {
        if matches_any(&self.runtimes.state.lock().unwrap().refused, &link.endpoint) {
            return Err(AdapterError::NotConnected("connection refused".into()));
        }
        Ok(RuntimeMeta {
            name: self.info.runtime_type.clone(),
            version: "0.0.0".into(),
            api_version: "v1".into(),
            capabilities: self.info.capabilities.iter().map(|c| c.name.clone()).collect(),
            raw: "{}".into(),
        })
    }
    async fn invoke(&self, link: &RuntimeLink, call: CapabilityCall) -> Result<CapabilityOutcome, AdapterError> {
        let hold = {
            let mut s = self.runtimes.state.lock().unwrap();
            s.tokens.insert(link.endpoint.clone(), link.token.as_deref().map(str::to_owned));
            if matches_any(&s.refused, &link.endpoint) {
                return Err(AdapterError::NotConnected("connection refused".into()));
            }
            if matches_any(&s.reset, &link.endpoint) {
                return Err(AdapterError::Unreachable("connection reset".into()));
            }
            s.hold.clone()
        };
        if let Some(h) = hold {
            h.acquire().await.expect("held").forget();
        }
        match call {
            CapabilityCall::PythonExec { code, .. } => Ok(CapabilityOutcome::PythonExec(PythonExecResult {
                success: true,
                execution_count: Some(1),
                text: format!("{} ran {code}", link.endpoint),
                images: vec![],
                error: None,
            })),
            // A browser whose commands succeed unless they start with "fail".
            CapabilityCall::BrowserBatch { commands, stop_on_error, .. } => {
                let mut results = Vec::new();
                for (i, cmd) in commands.iter().enumerate() {
                    let exit_code = if cmd.starts_with("fail") { 1 } else { 0 };
                    results.push(BrowserStep {
                        cmd: cmd.clone(),
                        stdout: format!("did {cmd}"),
                        stderr: String::new(),
                        exit_code,
                        step_index: i as u32,
                        duration_ms: 1,
                    });
                    if exit_code != 0 && stop_on_error {
                        break;
                    }
                }
                let success = results.len() == commands.len() && results.iter().all(|r| r.exit_code == 0);
                Ok(CapabilityOutcome::BrowserBatch(BrowserBatchResult {
                    total_steps: commands.len() as u32,
                    completed_steps: results.len() as u32,
                    results,
                    success,
                    duration_ms: 1,
                }))
            }
            _ => Err(AdapterError::Unsupported("the fake runtime runs python and browser batches only".into())),
        }
    }
}

pub(crate) struct FakeAdapters {
    ship: Arc<dyn RuntimeAdapter>,
}

impl Adapters for FakeAdapters {
    fn adapter(&self, runtime_type: &str) -> Option<Arc<dyn RuntimeAdapter>> {
        (runtime_type == "ship").then(|| self.ship.clone())
    }
    fn runtime_types(&self) -> Vec<String> {
        vec!["ship".into()]
    }
}

/// A lifecycle under test.
pub(crate) struct Harness {
    pub manager: Arc<SandboxManager>,
    pub driver: Arc<MemoryDriver>,
    pub runtimes: Arc<FakeRuntimes>,
    pub config: Arc<Config>,
}

/// The configuration tests start from: extra profiles appended to the list.
pub(crate) fn config(profiles: &str) -> Config {
    config_with("gc: { instance_id: unit }", profiles)
}

/// With another `gc` section.
pub(crate) fn config_with(gc: &str, profiles: &str) -> Config {
    let yaml = format!(
        "{gc}\nsessions: {{ warmup_on_create: false }}\nprofiles:\n  - {{ id: python-default, image: \"ship:latest\", capabilities: [filesystem, shell, python], idle_timeout: 60 }}\n{profiles}"
    );
    Config::from_yaml_and_env(&yaml, &[]).expect("test config").0
}

impl Harness {
    pub(crate) async fn new(config: Config) -> Harness {
        let db = crate::db::test_db().await;
        let driver = Arc::new(MemoryDriver::default());
        let runtimes = Arc::new(FakeRuntimes::default());
        Self::over(Arc::new(config), db, driver, runtimes)
    }

    /// Another Bay process on the same database and engine (a restart).
    pub(crate) fn restart(&self) -> Harness {
        Self::over(self.config.clone(), self.manager.db().clone(), self.driver.clone(), self.runtimes.clone())
    }

    fn over(config: Arc<Config>, db: crate::db::Db, driver: Arc<MemoryDriver>, runtimes: Arc<FakeRuntimes>) -> Harness {
        let info = AdapterInfo {
            runtime_type: "ship".into(),
            version: "0".into(),
            capabilities: ["python", "shell", "filesystem", "browser"].iter().map(|c| Capability { name: (*c).into(), operations: vec![] }).collect(),
        };
        let adapters = Arc::new(FakeAdapters { ship: Arc::new(FakeAdapter { info, runtimes: runtimes.clone() }) });
        let cluster = crate::cluster::Cluster::new(db.clone(), false);
        let manager = Arc::new(SandboxManager::new(config.clone(), db, driver.clone(), adapters, cluster));
        Harness { manager, driver, runtimes, config }
    }

    /// Creates a sandbox for `owner` and returns its id.
    pub(crate) async fn create(&self, owner: &str) -> String {
        let req = super::CreateSandbox { profile: "python-default".into(), cargo_id: None, ttl: None };
        self.manager.create(owner, req).await.expect("create").id
    }

    /// Runs python `code` in sandbox `id` (owner `o`): the output, or the error.
    pub(crate) async fn python(&self, id: &str, code: &str) -> Result<String, crate::error::BayError> {
        let sandbox = self.manager.find_for_call("o", id).await?;
        let profile = self.manager.profile_of(&sandbox)?.clone();
        let call = CapabilityCall::PythonExec { code: code.into(), timeout_s: 30 };
        match self.manager.call(&sandbox, &profile, call).await?.0 {
            CapabilityOutcome::PythonExec(r) => Ok(r.text),
            other => panic!("unexpected {other:?}"),
        }
    }
}
