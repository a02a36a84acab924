//! The runtime-adapter interface as the rest of the host sees it.
//!
//! Runtime adapters are WebAssembly plugins (see [`crate::plugins`]), but
//! handlers and the session manager only know this version-independent trait
//! and its types: each supported WIT version converts to and from them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{BayError, ErrorCode};
use crate::plugins::body::HostBody;

#[derive(Debug, Clone, Serialize)]
pub struct Capability {
    pub name: String,
    pub operations: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    pub runtime_type: String,
    pub version: String,
    pub capabilities: Vec<Capability>,
}

#[derive(Debug, Clone)]
pub struct HealthStatus {
    pub healthy: bool,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RuntimeMeta {
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub capabilities: Vec<String>,
    pub raw: String,
}

/// Where one runtime container answers, and the secret it requires
/// (`X-Bay-Token`, added by the host to every request an adapter sends there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLink {
    pub endpoint: String,
    pub token: Option<Arc<str>>,
}

impl RuntimeLink {
    pub fn new(endpoint: impl Into<String>, token: Option<&str>) -> RuntimeLink {
        RuntimeLink { endpoint: endpoint.into(), token: token.map(Arc::from) }
    }
}

/// One capability call, as Bay asks a runtime to perform it. Paths are
/// already validated and normalised (relative to the workspace).
#[derive(Debug)]
pub enum CapabilityCall {
    PythonExec {
        code: String,
        timeout_s: u32,
    },
    ShellExec {
        command: String,
        timeout_s: u32,
        cwd: Option<String>,
    },
    FileRead {
        path: String,
    },
    /// `content` is the file's bytes (UTF-8 text), streamed from the request.
    FileWrite {
        path: String,
        content: HostBody,
    },
    FileList {
        path: String,
    },
    FileDelete {
        path: String,
    },
    FileUpload {
        path: String,
        content: HostBody,
    },
    FileDownload {
        path: String,
    },
    BrowserExec {
        cmd: String,
        timeout_s: u32,
    },
    BrowserBatch {
        commands: Vec<String>,
        timeout_s: u32,
        stop_on_error: bool,
    },
    Custom {
        capability: String,
        operation: String,
        payload: String,
    },
}

impl CapabilityCall {
    /// A copy for a retry; `None` for calls carrying a stream (it is consumed).
    pub fn try_clone(&self) -> Option<CapabilityCall> {
        use CapabilityCall as C;
        Some(match self {
            C::PythonExec { code, timeout_s } => C::PythonExec { code: code.clone(), timeout_s: *timeout_s },
            C::ShellExec { command, timeout_s, cwd } => C::ShellExec { command: command.clone(), timeout_s: *timeout_s, cwd: cwd.clone() },
            C::FileRead { path } => C::FileRead { path: path.clone() },
            C::FileWrite { path, content } => C::FileWrite { path: path.clone(), content: content.try_clone()? },
            C::FileList { path } => C::FileList { path: path.clone() },
            C::FileDelete { path } => C::FileDelete { path: path.clone() },
            C::FileUpload { .. } => return None,
            C::FileDownload { path } => C::FileDownload { path: path.clone() },
            C::BrowserExec { cmd, timeout_s } => C::BrowserExec { cmd: cmd.clone(), timeout_s: *timeout_s },
            C::BrowserBatch { commands, timeout_s, stop_on_error } => {
                C::BrowserBatch { commands: commands.clone(), timeout_s: *timeout_s, stop_on_error: *stop_on_error }
            }
            C::Custom { capability, operation, payload } => {
                C::Custom { capability: capability.clone(), operation: operation.clone(), payload: payload.clone() }
            }
        })
    }

    /// The capability key the call needs (`python`, `shell`, `filesystem`, ...).
    pub fn capability(&self) -> &str {
        match self {
            CapabilityCall::PythonExec { .. } => "python",
            CapabilityCall::ShellExec { .. } => "shell",
            CapabilityCall::FileRead { .. }
            | CapabilityCall::FileWrite { .. }
            | CapabilityCall::FileList { .. }
            | CapabilityCall::FileDelete { .. }
            | CapabilityCall::FileUpload { .. }
            | CapabilityCall::FileDownload { .. } => "filesystem",
            CapabilityCall::BrowserExec { .. } | CapabilityCall::BrowserBatch { .. } => "browser",
            CapabilityCall::Custom { capability, .. } => capability,
        }
    }

    /// The wall-clock budget of the whole plugin call: the operation's own
    /// timeout plus a margin for the runtime to answer.
    pub fn deadline(&self) -> Duration {
        let secs = match self {
            // The first Python call of a session also starts its kernel.
            CapabilityCall::PythonExec { timeout_s, .. } => u64::from(*timeout_s) + 135,
            CapabilityCall::ShellExec { timeout_s, .. }
            | CapabilityCall::BrowserExec { timeout_s, .. }
            | CapabilityCall::BrowserBatch { timeout_s, .. } => u64::from(*timeout_s) + 15,
            // Large transfers are streamed; give them time.
            CapabilityCall::FileUpload { .. }
            | CapabilityCall::FileDownload { .. }
            | CapabilityCall::FileRead { .. }
            | CapabilityCall::FileWrite { .. } => 3600,
            _ => 60,
        };
        Duration::from_secs(secs)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PythonExecResult {
    pub success: bool,
    pub execution_count: Option<i64>,
    pub text: String,
    /// `(mime type, base64 data)`.
    pub images: Vec<(String, String)>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShellExecResult {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub path: String,
    pub is_file: bool,
    pub is_dir: bool,
    pub size: Option<u64>,
    pub modified_time: f64,
}

/// Also Gull's `/exec` answer (the shared Gull's, read directly).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BrowserExecResult {
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    pub exit_code: i32,
}

/// Gull's `/exec_batch` step as well (`host/src/sandbox/shared_browser.rs`
/// reads it straight from the shared Gull).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BrowserStep {
    pub cmd: String,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    pub exit_code: i32,
    pub step_index: u32,
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BrowserBatchResult {
    pub results: Vec<BrowserStep>,
    pub total_steps: u32,
    pub completed_steps: u32,
    pub success: bool,
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Debug)]
pub enum CapabilityOutcome {
    PythonExec(PythonExecResult),
    ShellExec(ShellExecResult),
    /// A file's bytes (the host checks they are UTF-8 and bounds their size).
    FileContent {
        content: HostBody,
        size: Option<u64>,
    },
    Done,
    FileList(Vec<FileEntry>),
    Uploaded {
        path: String,
        size: u64,
    },
    Downloaded {
        content: HostBody,
        size: Option<u64>,
    },
    BrowserExec(BrowserExecResult),
    BrowserBatch(BrowserBatchResult),
    Custom(String),
}

/// A live operation: work whose bytes the host pumps itself (streamed
/// execution, background processes, the terminal). The adapter only maps it
/// onto a request on its runtime (`bay:plugin@0.2`'s `live`).
#[derive(Debug, Clone, PartialEq)]
pub enum LiveOp {
    ShellStream { command: String, timeout_s: u32, cwd: Option<String> },
    PythonStream { code: String, timeout_s: u32 },
    ProcessStart { command: String, cwd: Option<String>, env: Vec<(String, String)>, pty: bool, cols: u16, rows: u16 },
    ProcessList,
    ProcessGet { id: String },
    ProcessOutput { id: String, from_seq: u64, follow: bool },
    ProcessStdin { id: String, data: Vec<u8>, eof: bool },
    ProcessSignal { id: String, signal: String },
    ProcessResize { id: String, cols: u16, rows: u16 },
    Terminal { cols: u16, rows: u16 },
}

impl LiveOp {
    /// The capability the operation belongs to.
    pub fn capability(&self) -> &'static str {
        match self {
            LiveOp::PythonStream { .. } => "python",
            _ => "shell",
        }
    }
}

/// The request on a runtime that performs a live operation.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRequest {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// A JSON document.
    pub body: Option<String>,
}

/// Why an adapter call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{message}")]
    Runtime { status: u16, message: String, body: String },
    #[error("{0}")]
    Unreachable(String),
    /// The runtime could not be connected to at all: the call never reached it.
    #[error("{0}")]
    NotConnected(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// A payload over a limit of the adapter or the runtime (413).
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    BadResponse(String),
    /// The plugin itself failed: it trapped, ran out of its CPU or memory
    /// budget, or broke the contract.
    #[error("{0}")]
    Plugin(String),
}

impl From<AdapterError> for BayError {
    fn from(err: AdapterError) -> BayError {
        match err {
            AdapterError::Unsupported(m) => BayError::new(ErrorCode::CapabilityNotSupported, m),
            // The runtime refused a payload (over its read limit, or the
            // cargo's size limit): the client's request was too large.
            AdapterError::Runtime { status: 413, message, body } => {
                let detail = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["detail"].as_str().or(v["error"].as_str()).map(str::to_owned))
                    .unwrap_or(message);
                BayError::new(ErrorCode::PayloadTooLarge, detail).with("runtime_status", 413)
            }
            AdapterError::TooLarge(m) => BayError::new(ErrorCode::PayloadTooLarge, m),
            AdapterError::Runtime { status, message, body } => {
                let mut e = BayError::ship(message).with("runtime_status", status);
                if !body.is_empty() {
                    e = e.with("runtime_response", body);
                }
                e
            }
            AdapterError::Unreachable(m) | AdapterError::NotConnected(m) | AdapterError::BadResponse(m) => BayError::ship(m),
            AdapterError::Timeout(m) => BayError::timeout(m),
            AdapterError::NotFound(m) => BayError::new(ErrorCode::FileNotFound, m),
            AdapterError::InvalidRequest(m) => BayError::validation(m),
            AdapterError::Plugin(m) => BayError::internal(m),
        }
    }
}

/// A runtime adapter bound to no endpoint: every call names the runtime it
/// serves, and may reach only that runtime's endpoint.
#[async_trait]
pub trait RuntimeAdapter: Send + Sync {
    fn info(&self) -> &AdapterInfo;
    /// The plugin's name and version, for diagnostics.
    fn plugin(&self) -> String;
    async fn health(&self, link: &RuntimeLink) -> Result<HealthStatus, AdapterError>;
    async fn meta(&self, link: &RuntimeLink) -> Result<RuntimeMeta, AdapterError>;
    async fn invoke(&self, link: &RuntimeLink, call: CapabilityCall) -> Result<CapabilityOutcome, AdapterError>;
    /// The runtime request that performs a live operation (no I/O). Adapters
    /// of `bay:plugin@0.1` have none.
    async fn live(&self, op: LiveOp) -> Result<LiveRequest, AdapterError> {
        Err(AdapterError::Unsupported(format!("this runtime adapter has no live operations ({op:?})")))
    }
}

/// Where the lifecycle finds the adapter serving a runtime type: the plugin
/// host (`crate::plugins::PluginHost`), or a scripted fake in unit tests.
pub trait Adapters: Send + Sync {
    fn adapter(&self, runtime_type: &str) -> Option<Arc<dyn RuntimeAdapter>>;
    /// Runtime types with an adapter, for error messages.
    fn runtime_types(&self) -> Vec<String>;
    /// What was loaded, for `GET /v1/admin/plugins`.
    fn records(&self) -> Vec<crate::plugins::PluginRecord> {
        vec![]
    }
}

impl Adapters for crate::plugins::PluginHost {
    fn adapter(&self, runtime_type: &str) -> Option<Arc<dyn RuntimeAdapter>> {
        crate::plugins::PluginHost::adapter(self, runtime_type)
    }
    fn runtime_types(&self) -> Vec<String> {
        crate::plugins::PluginHost::runtime_types(self)
    }
    fn records(&self) -> Vec<crate::plugins::PluginRecord> {
        crate::plugins::PluginHost::records(self)
    }
}
