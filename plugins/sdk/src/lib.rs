//! Write Bay plugins — runtime adapters and driver extensions — as
//! WebAssembly components (`bay:plugin@0.2`, `wit/bay-plugin-0.2/`).
//!
//! - A **runtime adapter** translates Bay's capability calls (python exec,
//!   shell exec, file operations, browser commands, ...) into the HTTP API of
//!   one runtime type: implement [`RuntimeAdapter`] and register it with
//!   [`register_adapter!`].
//! - A **driver extension** runs sessions on an engine Bay does not build in:
//!   implement [`driver::DriverExtension`] and register it with
//!   [`register_driver!`].
//!
//! Either way the plugin never calls `wit_bindgen::generate!` itself: the SDK
//! owns the generated bindings and hides them behind its traits (they stay
//! reachable in [`bindings`] for advanced use). Build a plugin with
//! `cargo build --target wasm32-wasip2 --release`; the output is a component
//! Bay loads from its plugins directory (see `plugin.toml` in
//! `docs/plugins.md`).
//!
//! Each call runs in a fresh instance. An adapter's call is bound to one
//! runtime container: paths given to [`Runtime`] resolve against that
//! container's endpoint. A driver's call is bound to the engine endpoint the
//! operator configured: paths given to [`http::send`] resolve against it. The
//! host refuses any other destination.
//!
//! # Changes from `bay:plugin@0.1`
//!
//! File contents travel as host-side [`Body`] streams in both directions:
//! [`RuntimeAdapter::file_write`] takes one and [`RuntimeAdapter::file_read`]
//! answers a [`Download`], so a file of any size never passes through the
//! plugin's memory. Driver extensions are session-shaped
//! ([`driver::DriverExtension`]). Plugins built against 0.1 keep loading.

extern crate self as bay_plugin_sdk;

mod adapter;
pub mod driver;
pub mod http;

/// The generated bindings of `bay:plugin@0.2` (for advanced use: the traits
/// of this crate cover what plugins normally need).
pub mod bindings {
    /// The `runtime-adapter` world.
    pub mod runtime_adapter {
        wit_bindgen::generate!({
            world: "runtime-adapter",
            path: "../../wit/bay-plugin-0.2",
            pub_export_macro: true,
            export_macro_name: "__export_runtime_adapter",
            default_bindings_module: "bay_plugin_sdk::bindings::runtime_adapter",
            runtime_path: "bay_plugin_sdk::__private::wit_bindgen::rt",
        });
    }

    /// The `driver-extension` world; it shares the `http` and `log`
    /// interfaces (and their types) with [`runtime_adapter`].
    pub mod driver_extension {
        wit_bindgen::generate!({
            world: "driver-extension",
            path: "../../wit/bay-plugin-0.2",
            with: {
                "bay:plugin/http@0.2.0": crate::bindings::runtime_adapter::bay::plugin::http,
                "bay:plugin/log@0.2.0": crate::bindings::runtime_adapter::bay::plugin::log,
            },
            pub_export_macro: true,
            export_macro_name: "__export_driver_extension",
            default_bindings_module: "bay_plugin_sdk::bindings::driver_extension",
            runtime_path: "bay_plugin_sdk::__private::wit_bindgen::rt",
        });
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

pub use adapter::{Export, RuntimeAdapter};
pub use bindings::runtime_adapter::bay::plugin::http::Body;
pub use bindings::runtime_adapter::bay::plugin::log::Level;
pub use bindings::runtime_adapter::bay::plugin::types::{AdapterError, AdapterInfo, Capability, RuntimeFailure};
pub use bindings::runtime_adapter::exports::bay::plugin::adapter::{
    BrowserBatchRequest, BrowserBatchResult, BrowserExecRequest, BrowserExecResult, BrowserStep, CapabilityRequest, CapabilityResponse,
    CustomRequest, Download, FileEntry, FileUploadRequest, HealthStatus, Image, LiveOperation, LiveRequest, ProcessOutput, ProcessResize,
    ProcessSignal, ProcessStart, ProcessStdin, PythonExecRequest, PythonExecResult, RuntimeMeta, ShellExecRequest, ShellExecResult, TerminalSize,
    UploadResult,
};
pub use http::{Method, Request, Response, Runtime};

/// Everything an adapter or a driver usually needs.
pub mod prelude {
    pub use super::driver::{
        ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, DriverError, DriverExtension, DriverInfo, Labels, LaunchedContainer, Named,
        SessionInfo, SessionSpec, setting,
    };
    pub use super::{
        AdapterError, AdapterInfo, Body, BrowserBatchRequest, BrowserBatchResult, BrowserExecRequest, BrowserExecResult, BrowserStep, Capability,
        CustomRequest, Download, FileEntry, FileUploadRequest, HealthStatus, Image, Level, LiveOperation, LiveRequest, PythonExecRequest,
        PythonExecResult, RuntimeAdapter, RuntimeFailure, RuntimeMeta, ShellExecRequest, ShellExecResult, UploadResult, log,
    };
    pub use crate::http::{FormPart, Method, Request, Response, Runtime};
    pub use serde_json::{Value, json};
}

/// Sends a diagnostic message to Bay's log, tagged with this plugin.
pub fn log(level: Level, message: &str) {
    bindings::runtime_adapter::bay::plugin::log::log(level, message);
}
