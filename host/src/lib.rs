//! Bay: a sandbox orchestrator for AI agents.
//!
//! Agents call the REST API ([`api`]) to get sandboxes ([`sandbox`]) in which
//! they run Python, shell commands and file operations. State lives in SQL
//! ([`db`]); containers and volumes come from a driver ([`driver`]); the
//! in-container runtimes are reached through runtime-adapter plugins, which are
//! WebAssembly components ([`plugins`], interface in [`adapter`]).

pub mod adapter;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod driver;
pub mod error;
pub mod gc;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub(crate) mod live;
pub(crate) mod mcp;
pub mod memory;
pub mod paths;
pub mod plugins;
pub(crate) mod quotas;
pub mod sandbox;
pub mod server;
pub mod skills;
pub mod telemetry;
