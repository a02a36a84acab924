//! Bay: a sandbox orchestrator for AI agents.
//!
//! Agents call the REST API ([`api`]) to get sandboxes ([`sandbox`]) in which
//! they run Python, shell commands and file operations. State lives in SQL
//! ([`db`]); containers and volumes come from a driver ([`driver`]); the
//! in-container runtimes are reached through runtime-adapter plugins, which are
//! WebAssembly components ([`plugins`], interface in [`adapter`]).

pub mod adapter;
pub(crate) mod api;
pub mod auth;
pub mod cli;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod db;
pub(crate) mod driver;
pub(crate) mod error;
pub(crate) mod gc;
pub(crate) mod idempotency;
pub(crate) mod ids;
pub(crate) mod keys;
pub(crate) mod live;
pub(crate) mod mcp;
pub mod memory;
pub(crate) mod paths;
pub mod plugins;
pub(crate) mod preview;
pub(crate) mod quotas;
pub(crate) mod sandbox;
pub mod server;
pub(crate) mod skills;
pub mod telemetry;
