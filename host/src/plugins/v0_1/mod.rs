//! `bay:plugin@0.1.x` (`wit/bay-plugin-0.1`): the first contract, kept so
//! plugins built against it keep loading.
//!
//! Its runtime adapters take and return file contents as strings in guest
//! memory, so a write or read through one is bounded by [`LEGACY_TEXT_LIMIT`]
//! (0.2 streams them); its drivers are container-shaped and run behind the
//! shim in [`driver`].

pub(crate) mod driver;

use wasmtime::component::{HasSelf, Linker};

use crate::adapter::{AdapterError, CapabilityCall, CapabilityOutcome};
use crate::plugins::PluginState;
use crate::plugins::body::{BodyError, HostBody};

wasmtime::component::bindgen!({
    world: "runtime-adapter",
    path: "../wit/bay-plugin-0.1",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "bay:plugin/http.body": crate::plugins::body::HostBody },
});

use exports::bay::plugin::adapter as wit;

pub(crate) const PACKAGE: &str = "bay:plugin@0.1";
/// The minor version this module implements.
pub(crate) const MINOR: u64 = 1;

/// The largest file content a 0.1 adapter is given or may answer: it passes
/// through the plugin's memory (and is copied there more than once).
pub(crate) const LEGACY_TEXT_LIMIT: u64 = 16 << 20;

/// Adds the host imports of this version to a linker.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    RuntimeAdapter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    driver::add_to_linker(linker)
}

crate::plugins::imports::host_imports!();

/// This version's instantiated runtime-adapter world.
pub(crate) struct Adapter(RuntimeAdapter);

/// A file write's content arrives as a stream; 0.1 takes a string.
async fn prepare_call(call: CapabilityCall) -> Result<CapabilityCall, AdapterError> {
    match call {
        CapabilityCall::FileWrite { path, content } => {
            let bytes = content.read_to_vec(LEGACY_TEXT_LIMIT).await.map_err(|e| match e {
                BodyError::TooLarge(n) => AdapterError::TooLarge(format!(
                    "this runtime's adapter ({PACKAGE}) takes file contents through its memory: at most {n} bytes; use the upload endpoint"
                )),
                BodyError::Io(e) => AdapterError::InvalidRequest(format!("reading the file content: {e}")),
            })?;
            Ok(CapabilityCall::FileWrite { path, content: HostBody::from_bytes(bytes) })
        }
        other => Ok(other),
    }
}

fn file_write(_: &mut wasmtime::Store<PluginState>, path: String, content: HostBody) -> wasmtime::Result<wit::FileWriteRequest> {
    // `prepare_call` made it an in-memory body of UTF-8 text.
    let bytes = content.in_memory().unwrap_or_default();
    let content = String::from_utf8(bytes.to_vec()).map_err(|_| wasmtime::Error::msg("file content is not UTF-8"))?;
    Ok(wit::FileWriteRequest { path, content })
}

fn file_content(_: &mut wasmtime::Store<PluginState>, text: String) -> wasmtime::Result<CapabilityOutcome> {
    let size = text.len() as u64;
    Ok(CapabilityOutcome::FileContent { content: HostBody::from_bytes(text), size: Some(size) })
}

/// 0.1 has no live operations.
async fn live_call(
    _: &RuntimeAdapter,
    _: &mut wasmtime::Store<PluginState>,
    op: crate::adapter::LiveOp,
) -> wasmtime::Result<Result<crate::adapter::LiveRequest, AdapterError>> {
    Ok(Err(AdapterError::Unsupported(format!("adapters of {PACKAGE} have no live operations ({})", op.capability()))))
}

crate::plugins::convert::adapter_conversions!(file_write: file_write, file_content: file_content);
