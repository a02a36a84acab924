//! Driver extensions: the [`DriverExtension`] trait and its export glue.
//!
//! A driver extension runs sessions on an engine Bay does not build in. The
//! contract (`wit/bay-plugin-0.2/driver.wit`) is shaped after sessions: a
//! session is the compute of one sandbox — one or more runtime containers
//! sharing the sandbox's cargo volume and reaching each other by name, and
//! nothing of other sessions. Launching is idempotent per session id, and a
//! driver keeps no state between calls: it finds everything again on the
//! engine (by label), so any Bay process can adopt, list or destroy any
//! session.
//!
//! The engine is reached only through [`crate::http::send`], whose paths
//! resolve against the endpoint the operator configured
//! (`driver.plugin.endpoint`); the operator's `driver.plugin.settings` are
//! read with [`setting`].

use std::marker::PhantomData;

use crate::bindings::driver_extension::bay::plugin::settings;
use crate::bindings::driver_extension::exports::bay::plugin::driver::Guest;
pub use crate::bindings::driver_extension::exports::bay::plugin::driver::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, DriverError, DriverInfo, Labels, LaunchedContainer, Named, Security, SessionInfo,
    SessionSpec,
};

/// The operator's setting `key` (`driver.plugin.settings` in Bay's config).
pub fn setting(key: &str) -> Option<String> {
    settings::get(key)
}

impl DriverInfo {
    pub fn new(name: &str, version: &str) -> DriverInfo {
        DriverInfo { name: name.into(), version: version.into() }
    }
}

fn unsupported(what: &str) -> DriverError {
    DriverError::Unsupported(format!("this driver does not support {what}"))
}

/// A driver extension. `describe`, the lifecycle of a session (launch,
/// status, listing, destruction) and the cargo volumes are required; logs,
/// pausing and resuming default to `unsupported` (Bay then goes without
/// start-failure logs, and does not pause idle sessions).
///
/// Every call runs in a fresh instance: keep no state in the plugin, find the
/// session's objects on the engine by the labels of its [`SessionSpec`].
///
/// ```no_run
/// use bay_plugin_sdk::http::{self, Method, Request};
/// use bay_plugin_sdk::prelude::*;
///
/// /// An engine with a small REST API of its own: `PUT /sessions/{id}`
/// /// answers `[{"name", "id", "url"}]`, `DELETE /sessions/{id}` removes one.
/// struct Toy;
///
/// fn engine(req: Request) -> Result<http::Response, DriverError> {
///     let r = http::send(req).map_err(|e| DriverError::Engine(e.to_string()))?;
///     match r.status {
///         200..=299 => Ok(r),
///         404 => Err(DriverError::NotFound(r.text())),
///         _ => Err(DriverError::Engine(r.text())),
///     }
/// }
///
/// impl DriverExtension for Toy {
///     fn describe() -> DriverInfo {
///         DriverInfo::new("toy", env!("CARGO_PKG_VERSION"))
///     }
///     fn launch_session(spec: SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
///         let images: Vec<&str> = spec.containers.iter().map(|c| c.image.as_str()).collect();
///         let body = json!({ "labels": spec.labels, "volume": spec.volume, "images": images });
///         let r = engine(Request::new(Method::Put, &format!("/sessions/{}", spec.session_id)).json(&body))?;
///         let v: Vec<Value> = serde_json::from_slice(&r.body).map_err(|e| DriverError::Engine(e.to_string()))?;
///         let field = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_owned();
///         Ok(v.iter().map(|c| LaunchedContainer { name: field(c, "name"), id: field(c, "id"), endpoint: field(c, "url") }).collect())
///     }
///     fn destroy_session(session_id: String) -> Result<(), DriverError> {
///         match engine(Request::new(Method::Delete, &format!("/sessions/{session_id}"))) {
///             Ok(_) | Err(DriverError::NotFound(_)) => Ok(()),
///             Err(e) => Err(e),
///         }
///     }
///     // session_status, list_sessions and the volume operations alike.
/// #   fn session_status(_: String) -> Result<Vec<ContainerInfo>, DriverError> { Ok(vec![]) }
/// #   fn list_sessions(_: Labels) -> Result<Vec<SessionInfo>, DriverError> { Ok(vec![]) }
/// #   fn create_volume(name: String, _: Labels) -> Result<String, DriverError> { Ok(name) }
/// #   fn delete_volume(_: String) -> Result<(), DriverError> { Ok(()) }
/// #   fn volume_exists(_: String) -> Result<bool, DriverError> { Ok(true) }
/// #   fn list_volumes(_: Labels) -> Result<Vec<Named>, DriverError> { Ok(vec![]) }
/// }
///
/// bay_plugin_sdk::register_driver!(Toy);
/// ```
pub trait DriverExtension {
    /// The driver's name (what `driver.plugin.name` selects; it must match
    /// the manifest's `[driver] name`) and version. Must not do I/O.
    fn describe() -> DriverInfo;

    /// Launches a session (or adopts what exists of it) and starts its
    /// containers; answers where each runtime listens. On an error, what was
    /// created may remain: the host calls `destroy_session`.
    fn launch_session(spec: SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError>;
    /// Removes everything of a session; what is already gone is not an error.
    fn destroy_session(session_id: String) -> Result<(), DriverError>;
    /// The session's containers with their state (empty: nothing left).
    fn session_status(session_id: String) -> Result<Vec<ContainerInfo>, DriverError>;
    /// Sessions whose objects carry all of `labels`.
    fn list_sessions(labels: Labels) -> Result<Vec<SessionInfo>, DriverError>;
    /// The last `lines` lines of the session's output.
    fn session_logs(_session_id: String, _lines: u32) -> Result<String, DriverError> {
        Err(unsupported("session logs"))
    }
    /// Freezes a session, memory kept.
    fn pause_session(_session_id: String) -> Result<(), DriverError> {
        Err(unsupported("pausing sessions"))
    }
    fn resume_session(_session_id: String) -> Result<(), DriverError> {
        Err(unsupported("resuming sessions"))
    }

    /// Creates (or adopts, if it exists) a volume; returns its driver ref.
    fn create_volume(name: String, labels: Labels) -> Result<String, DriverError>;
    /// Deletes a volume; a missing volume is not an error.
    fn delete_volume(driver_ref: String) -> Result<(), DriverError>;
    fn volume_exists(driver_ref: String) -> Result<bool, DriverError>;
    /// Volumes carrying all of `labels`.
    fn list_volumes(labels: Labels) -> Result<Vec<Named>, DriverError>;
}

/// Glue between the generated export trait and a [`DriverExtension`]; used
/// by [`register_driver!`](crate::register_driver).
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: DriverExtension> Guest for Export<T> {
    fn describe() -> DriverInfo {
        T::describe()
    }
    fn launch_session(spec: SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        T::launch_session(spec)
    }
    fn destroy_session(session_id: String) -> Result<(), DriverError> {
        T::destroy_session(session_id)
    }
    fn session_status(session_id: String) -> Result<Vec<ContainerInfo>, DriverError> {
        T::session_status(session_id)
    }
    fn list_sessions(labels: Labels) -> Result<Vec<SessionInfo>, DriverError> {
        T::list_sessions(labels)
    }
    fn session_logs(session_id: String, lines: u32) -> Result<String, DriverError> {
        T::session_logs(session_id, lines)
    }
    fn pause_session(session_id: String) -> Result<(), DriverError> {
        T::pause_session(session_id)
    }
    fn resume_session(session_id: String) -> Result<(), DriverError> {
        T::resume_session(session_id)
    }
    fn create_volume(name: String, labels: Labels) -> Result<String, DriverError> {
        T::create_volume(name, labels)
    }
    fn delete_volume(driver_ref: String) -> Result<(), DriverError> {
        T::delete_volume(driver_ref)
    }
    fn volume_exists(driver_ref: String) -> Result<bool, DriverError> {
        T::volume_exists(driver_ref)
    }
    fn list_volumes(labels: Labels) -> Result<Vec<Named>, DriverError> {
        T::list_volumes(labels)
    }
}

/// Exports a [`DriverExtension`] implementation as the plugin's component.
#[macro_export]
macro_rules! register_driver {
    ($driver:ty) => {
        type __BayDriverExtensionExport = $crate::driver::Export<$driver>;
        $crate::bindings::driver_extension::__export_driver_extension!(
            __BayDriverExtensionExport with_types_in $crate::bindings::driver_extension
        );
    };
}
