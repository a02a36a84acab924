//! `bay:plugin@0.2.x` (`wit/bay-plugin-0.2`): file contents travel as
//! host-side streams in both directions, and drivers are session-shaped
//! ([`driver`]).

pub(crate) mod driver;

use wasmtime::component::{HasSelf, Linker};

use crate::adapter::{AdapterError, CapabilityCall, CapabilityOutcome, LiveOp, LiveRequest};
use crate::plugins::PluginState;
use crate::plugins::body::HostBody;

wasmtime::component::bindgen!({
    world: "runtime-adapter",
    path: "../wit/bay-plugin-0.2",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "bay:plugin/http.body": crate::plugins::body::HostBody },
});

use exports::bay::plugin::adapter as wit;

pub(crate) const PACKAGE: &str = "bay:plugin@0.2";
/// The minor version this module implements.
pub(crate) const MINOR: u64 = 2;

/// Adds the host imports of this version to a linker.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    RuntimeAdapter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    driver::add_to_linker(linker)
}

crate::plugins::imports::host_imports!();

/// This version's instantiated runtime-adapter world.
pub(crate) struct Adapter(RuntimeAdapter);

async fn prepare_call(call: CapabilityCall) -> Result<CapabilityCall, AdapterError> {
    Ok(call)
}

fn file_write(store: &mut wasmtime::Store<PluginState>, path: String, content: HostBody) -> wasmtime::Result<wit::FileWriteRequest> {
    let content = store.data_mut().table.push(content)?;
    Ok(wit::FileWriteRequest { path, content })
}

fn file_content(store: &mut wasmtime::Store<PluginState>, d: wit::Download) -> wasmtime::Result<CapabilityOutcome> {
    let content = store.data_mut().table.delete(d.content)?;
    Ok(CapabilityOutcome::FileContent { content, size: d.size })
}

async fn live_call(
    bindings: &RuntimeAdapter,
    store: &mut wasmtime::Store<PluginState>,
    op: LiveOp,
) -> wasmtime::Result<Result<LiveRequest, AdapterError>> {
    use wit::LiveOperation as O;
    let op = match op {
        LiveOp::ShellStream { command, timeout_s, cwd } => O::ShellStream(wit::ShellExecRequest { command, timeout_s, cwd }),
        LiveOp::PythonStream { code, timeout_s } => O::PythonStream(wit::PythonExecRequest { code, timeout_s }),
        LiveOp::ProcessStart { command, cwd, env, pty, cols, rows } => O::ProcessStart(wit::ProcessStart { command, cwd, env, pty, cols, rows }),
        LiveOp::ProcessList => O::ProcessList,
        LiveOp::ProcessGet { id } => O::ProcessGet(id),
        LiveOp::ProcessOutput { id, from_seq, follow } => O::ProcessOutput(wit::ProcessOutput { id, from_seq, follow }),
        LiveOp::ProcessStdin { id, data, eof } => O::ProcessStdin(wit::ProcessStdin { id, data, eof }),
        LiveOp::ProcessSignal { id, signal } => O::ProcessSignal(wit::ProcessSignal { id, signal }),
        LiveOp::ProcessResize { id, cols, rows } => O::ProcessResize(wit::ProcessResize { id, cols, rows }),
        LiveOp::Terminal { cols, rows } => O::Terminal(wit::TerminalSize { cols, rows }),
    };
    Ok(match bindings.bay_plugin_adapter().call_live(store, &op).await? {
        Ok(r) => Ok(LiveRequest { method: http_method(r.method), path: r.path, query: r.query, body: r.body }),
        Err(e) => Err(from_wit_error(e)),
    })
}

crate::plugins::convert::adapter_conversions!(file_write: file_write, file_content: file_content);
