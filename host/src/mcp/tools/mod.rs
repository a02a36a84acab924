//! The tools, grouped as the REST API is. Each tool checks its arguments as
//! Shipyard Neo's server does, makes one REST call through
//! [`super::rest::Rest`] and renders the answer as text ([`super::text`]).
//! Every group is an rmcp `#[tool_router]` on [`super::server::BayMcp`];
//! `BayMcp::tools` adds them up.

mod browser;
mod cargos;
mod exec;
mod files;
mod history;
mod profiles;
mod sandboxes;
mod skills;

use super::rest::seg;

/// `/v1/sandboxes/{id}{tail}`.
fn sandbox_path(id: &str, tail: &str) -> String {
    format!("/v1/sandboxes/{}{tail}", seg(id))
}

/// The `execution_id` / `execution_time_ms` lines under an execution result.
fn execution_suffix(v: &serde_json::Value, with_time: bool) -> String {
    let mut suffix = String::new();
    if let Some(id) = v.get("execution_id").and_then(serde_json::Value::as_str).filter(|s| !s.is_empty()) {
        suffix.push_str(&format!("\n\nexecution_id: {id}"));
    }
    if with_time && let Some(ms) = v.get("execution_time_ms").and_then(serde_json::Value::as_i64) {
        suffix.push_str(&format!("\nexecution_time_ms: {ms}"));
    }
    suffix
}
