//! Plugins built into the `bay` binary: the first-party runtime adapters
//! (Ship, Gull), so a bare `bay serve` runs sandboxes with no plugins
//! directory at all. A plugin in the plugins directory serving the same
//! runtime type takes precedence.
//!
//! `host/build.rs` embeds them from the staged plugins (`./dev plugins` puts
//! them in `target/plugins/`, or `BAY_BUILTIN_PLUGINS_DIR`); a host built
//! before the plugins has none and says so at build time.

/// One embedded plugin: its manifest and its component.
pub(crate) struct Builtin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
