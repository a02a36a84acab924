//! End-to-end tests: the REST API of a real Bay, the Docker engine, the Ship
//! runtime image and the ship-adapter WebAssembly plugin, nothing mocked.
//! Prerequisites (`./dev test` does all of it): the plugins in
//! `target/plugins/` and the `ship:latest` image.

mod api;
mod attacks;
mod browser;
mod builtin;
mod cargo_bind;
mod errors;
mod files;
mod import;
mod isolation;
mod lifecycle;
mod lite;
mod live;
mod mcp;
mod multi;
mod pause;
mod plugins;
mod previews;
mod pull;
mod python;
mod recovery;
mod replicas;
mod shared_browser;
mod shell;
mod ship_api;
mod skills;
mod upstream;
mod v1;
mod warm;
