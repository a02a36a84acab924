//! Write Bay runtime adapters as WebAssembly components.
//!
//! A runtime adapter translates Bay's capability calls (python exec, shell
//! exec, file operations, browser commands, ...) into the HTTP API of one
//! runtime type. Implement [`RuntimeAdapter`] — every operation has a default
//! that answers `unsupported`, so implement only what your runtime serves —
//! and register it:
//!
//! ```ignore
//! use bay_plugin_sdk::prelude::*;
//!
//! struct Echo;
//! impl RuntimeAdapter for Echo {
//!     fn describe() -> AdapterInfo {
//!         AdapterInfo::new("echo", env!("CARGO_PKG_VERSION")).capability("shell", &["exec"])
//!     }
//!     fn shell_exec(req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
//!         let resp = Runtime::new("Echo").post_json("/run", &req_json(&req), req.timeout_s + 5)?;
//!         resp.json()
//!     }
//! }
//! bay_plugin_sdk::register_adapter!(Echo);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the output is a
//! component Bay loads from its plugins directory (see `plugin.toml`).
//!
//! Each call runs in a fresh instance bound to one runtime container: paths
//! given to [`Runtime`] resolve against that container's endpoint, and the
//! host refuses any other destination.

extern crate self as bay_plugin_sdk;

pub mod http;

/// The generated bindings of `bay:plugin@0.1` (for advanced use).
pub mod bindings {
    wit_bindgen::generate!({
        world: "runtime-adapter",
        path: "../../wit/bay-plugin-0.1",
        pub_export_macro: true,
        export_macro_name: "__export_runtime_adapter",
        default_bindings_module: "bay_plugin_sdk::bindings",
        runtime_path: "bay_plugin_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

use std::marker::PhantomData;

pub use bindings::bay::plugin::http::Body;
pub use bindings::bay::plugin::log::Level;
pub use bindings::bay::plugin::types::{AdapterError, AdapterInfo, Capability, RuntimeFailure};
pub use bindings::exports::bay::plugin::adapter::{
    BrowserBatchRequest, BrowserBatchResult, BrowserExecRequest, BrowserExecResult, BrowserStep, CapabilityRequest, CapabilityResponse,
    CustomRequest, Download, FileEntry, FileUploadRequest, FileWriteRequest, HealthStatus, Image, PythonExecRequest, PythonExecResult, RuntimeMeta,
    ShellExecRequest, ShellExecResult, UploadResult,
};
pub use http::{Method, Request, Response, Runtime};

/// Everything an adapter usually needs.
pub mod prelude {
    pub use super::{
        AdapterError, AdapterInfo, Body, BrowserBatchRequest, BrowserBatchResult, BrowserExecRequest, BrowserExecResult, BrowserStep, Capability,
        CustomRequest, Download, FileEntry, FileUploadRequest, FileWriteRequest, HealthStatus, Image, PythonExecRequest, PythonExecResult,
        RuntimeAdapter, RuntimeFailure, RuntimeMeta, ShellExecRequest, ShellExecResult, UploadResult, log,
    };
    pub use crate::http::{Method, Request, Response, Runtime};
    pub use serde_json::{Value, json};
}

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

/// Sends a diagnostic message to Bay's log, tagged with this plugin.
pub fn log(level: Level, message: &str) {
    bindings::bay::plugin::log::log(level, message);
}

fn unsupported(what: &str) -> AdapterError {
    AdapterError::Unsupported(format!("this runtime does not support {what}"))
}

/// A runtime adapter. Only [`describe`](RuntimeAdapter::describe) is required;
/// every other operation defaults to `unsupported` (health and meta default to
/// the common `GET /health` / `GET /meta` conventions of Ship and Gull).
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
    fn file_read(_path: String) -> Result<String, AdapterError> {
        Err(unsupported("reading files"))
    }
    fn file_write(_req: FileWriteRequest) -> Result<(), AdapterError> {
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
}

/// Glue between the generated export trait and a [`RuntimeAdapter`]; used by
/// [`register_adapter!`].
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: RuntimeAdapter> bindings::exports::bay::plugin::adapter::Guest for Export<T> {
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
                T::file_write(r)?;
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
}

/// Exports a [`RuntimeAdapter`] implementation as the plugin's component.
#[macro_export]
macro_rules! register_adapter {
    ($adapter:ty) => {
        type __BayRuntimeAdapterExport = $crate::Export<$adapter>;
        $crate::bindings::__export_runtime_adapter!(__BayRuntimeAdapterExport with_types_in $crate::bindings);
    };
}
