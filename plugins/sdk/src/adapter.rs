//! Runtime adapters: the [`RuntimeAdapter`] trait and its export glue.

use std::marker::PhantomData;

use crate::bindings::runtime_adapter::exports::bay::plugin::adapter::Guest;
use crate::http::{self, Body};
use crate::{
    AdapterError, AdapterInfo, BrowserBatchRequest, BrowserBatchResult, BrowserExecRequest, BrowserExecResult, Capability, CapabilityRequest,
    CapabilityResponse, CustomRequest, Download, FileEntry, FileUploadRequest, HealthStatus, LiveOperation, LiveRequest, PythonExecRequest,
    PythonExecResult, RuntimeMeta, ShellExecRequest, ShellExecResult, UploadResult,
};

impl AdapterInfo {
    pub fn new(runtime_type: &str, version: &str) -> AdapterInfo {
        AdapterInfo { runtime_type: runtime_type.into(), version: version.into(), capabilities: vec![] }
    }

    /// Adds a capability and the operations of it the adapter serves.
    pub fn capability(mut self, name: &str, operations: &[&str]) -> AdapterInfo {
        self.capabilities.push(Capability { name: name.into(), operations: operations.iter().map(|s| s.to_string()).collect() });
        self
    }
}

fn unsupported(what: &str) -> AdapterError {
    AdapterError::Unsupported(format!("this runtime does not support {what}"))
}

/// A runtime adapter. Only [`describe`](RuntimeAdapter::describe) is required;
/// every other operation defaults to `unsupported` (health and meta default to
/// the common `GET /health` / `GET /meta` conventions of Ship and Gull).
///
/// File contents are [`Body`] handles: bytes that stay on the host and move
/// from the agent's request to the runtime (a write, an upload) or from the
/// runtime's response to the agent (a read, a download) without passing
/// through the plugin. [`Request::stream`](crate::Request::stream),
/// [`FormPart::file`](crate::http::FormPart::file),
/// [`Runtime::upload`](crate::Runtime::upload) and
/// [`Runtime::download`](crate::Runtime::download) cover the usual shapes of
/// a runtime's file API.
///
/// ```no_run
/// use bay_plugin_sdk::prelude::*;
///
/// const RUNTIME: Runtime = Runtime::new("Echo");
/// struct Echo;
///
/// impl RuntimeAdapter for Echo {
///     fn describe() -> AdapterInfo {
///         AdapterInfo::new("echo", env!("CARGO_PKG_VERSION"))
///             .capability("shell", &["exec"])
///             .capability("filesystem", &["read", "write"])
///     }
///
///     fn shell_exec(req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
///         let out: Value = RUNTIME.post_json("/run", &json!({ "cmd": req.command }), req.timeout_s + 5)?;
///         let exit_code = out["code"].as_i64().map(|c| c as i32);
///         let stdout = out["stdout"].as_str().unwrap_or_default().to_owned();
///         Ok(ShellExecResult { success: exit_code == Some(0), exit_code, stdout, stderr: String::new(), error: None })
///     }
///
///     // `PUT /files?path=…` takes the raw bytes; `GET /files?path=…` answers them.
///     fn file_write(path: String, content: Body) -> Result<(), AdapterError> {
///         RUNTIME.upload(Request::new(Method::Put, "/files").query("path", &path).stream(content)).map(drop)
///     }
///
///     fn file_read(path: String) -> Result<Download, AdapterError> {
///         RUNTIME.download(Request::new(Method::Get, "/files").query("path", &path), &path)
///     }
/// }
///
/// bay_plugin_sdk::register_adapter!(Echo);
/// ```
pub trait RuntimeAdapter {
    /// The runtime type served and the capabilities offered. Must not do I/O.
    fn describe() -> AdapterInfo;

    /// Healthy when `GET /health` answers 200.
    fn health() -> Result<HealthStatus, AdapterError> {
        http::default_health()
    }

    /// Parses `GET /meta` as `{"runtime": {"name", "version", "api_version"},
    /// "capabilities": {"<key>": ...}}`.
    fn meta() -> Result<RuntimeMeta, AdapterError> {
        http::default_meta()
    }

    fn python_exec(_req: PythonExecRequest) -> Result<PythonExecResult, AdapterError> {
        Err(unsupported("python exec"))
    }
    fn shell_exec(_req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
        Err(unsupported("shell exec"))
    }
    /// The file's raw bytes. The host decodes them as UTF-8 (invalid
    /// sequences become U+FFFD), normalises newlines and bounds the size;
    /// a missing file is [`AdapterError::NotFound`].
    fn file_read(_path: String) -> Result<Download, AdapterError> {
        Err(unsupported("reading files"))
    }
    /// Writes `content` (UTF-8 text from the write API) to `path`, replacing
    /// the file and creating missing parent directories.
    fn file_write(_path: String, _content: Body) -> Result<(), AdapterError> {
        Err(unsupported("writing files"))
    }
    fn file_list(_path: String) -> Result<Vec<FileEntry>, AdapterError> {
        Err(unsupported("listing directories"))
    }
    fn file_delete(_path: String) -> Result<(), AdapterError> {
        Err(unsupported("deleting files"))
    }
    fn file_upload(_req: FileUploadRequest) -> Result<UploadResult, AdapterError> {
        Err(unsupported("uploads"))
    }
    fn file_download(_path: String) -> Result<Download, AdapterError> {
        Err(unsupported("downloads"))
    }
    fn browser_exec(_req: BrowserExecRequest) -> Result<BrowserExecResult, AdapterError> {
        Err(unsupported("browser commands"))
    }
    fn browser_batch(_req: BrowserBatchRequest) -> Result<BrowserBatchResult, AdapterError> {
        Err(unsupported("browser batches"))
    }
    fn custom(req: CustomRequest) -> Result<String, AdapterError> {
        Err(unsupported(&format!("{}/{}", req.capability, req.operation)))
    }
    /// The runtime request performing a live operation (streamed execution,
    /// background processes, the terminal); the host sends it and pumps the
    /// bytes itself. Must not do I/O. Streams answer NDJSON in Bay's live
    /// protocol (`docs/plugins.md`).
    fn live(_op: LiveOperation) -> Result<LiveRequest, AdapterError> {
        Err(unsupported("live operations (streams, processes, terminals)"))
    }
}

/// Glue between the generated export trait and a [`RuntimeAdapter`]; used by
/// [`register_adapter!`](crate::register_adapter).
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: RuntimeAdapter> Guest for Export<T> {
    fn describe() -> AdapterInfo {
        T::describe()
    }

    fn health() -> Result<HealthStatus, AdapterError> {
        T::health()
    }

    fn meta() -> Result<RuntimeMeta, AdapterError> {
        T::meta()
    }

    fn invoke(req: CapabilityRequest) -> Result<CapabilityResponse, AdapterError> {
        use CapabilityRequest as Rq;
        use CapabilityResponse as Rs;
        Ok(match req {
            Rq::PythonExec(r) => Rs::PythonExec(T::python_exec(r)?),
            Rq::ShellExec(r) => Rs::ShellExec(T::shell_exec(r)?),
            Rq::FileRead(p) => Rs::FileContent(T::file_read(p)?),
            Rq::FileWrite(r) => {
                T::file_write(r.path, r.content)?;
                Rs::Done
            }
            Rq::FileList(p) => Rs::FileList(T::file_list(p)?),
            Rq::FileDelete(p) => {
                T::file_delete(p)?;
                Rs::Done
            }
            Rq::FileUpload(r) => Rs::Uploaded(T::file_upload(r)?),
            Rq::FileDownload(p) => Rs::Downloaded(T::file_download(p)?),
            Rq::BrowserExec(r) => Rs::BrowserExec(T::browser_exec(r)?),
            Rq::BrowserBatch(r) => Rs::BrowserBatch(T::browser_batch(r)?),
            Rq::Custom(r) => Rs::Custom(T::custom(r)?),
        })
    }

    fn live(op: LiveOperation) -> Result<LiveRequest, AdapterError> {
        T::live(op)
    }
}

/// Exports a [`RuntimeAdapter`] implementation as the plugin's component.
#[macro_export]
macro_rules! register_adapter {
    ($adapter:ty) => {
        type __BayRuntimeAdapterExport = $crate::Export<$adapter>;
        $crate::bindings::runtime_adapter::__export_runtime_adapter!(
            __BayRuntimeAdapterExport with_types_in $crate::bindings::runtime_adapter
        );
    };
}
