//! Sandbox lifecycle: create, delete (Shipyard Neo's), and stop, keepalive,
//! extend_ttl, get, list (Bay's additions).

use axum::http::Method;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::sandbox_path;
use crate::mcp::args::{self, CreateSandbox, ExtendTtl, ListSandboxes, PreviewPort, SandboxRef};
use crate::mcp::rest::with_query;
use crate::mcp::server::BayMcp;
use crate::mcp::text::{containers, joined, py, result, s};
use crate::mcp::{DEFAULT_PROFILE, DEFAULT_TTL_SECS};

fn or_never(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).map(|t| format!("{t} (UTC)")).unwrap_or_else(|| "never".into())
}

#[tool_router(router = sandbox_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Create a new sandbox (an isolated container with Python, a shell and a /workspace volume). \
Returns its sandbox_id, which every other sandbox tool takes. Use list_profiles to see the available profiles.")]
    async fn create_sandbox(&self, Parameters(a): Parameters<CreateSandbox>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let profile = a.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
                if profile.trim().is_empty() {
                    return Err(crate::mcp::rest::CallError::validation("field 'profile' must be a non-empty string"));
                }
                let ttl = args::int(a.ttl, DEFAULT_TTL_SECS, "ttl", Some(0), None)?;
                let mut body = json!({"profile": profile, "ttl": ttl});
                if let Some(cargo) = a.cargo_id.as_deref() {
                    body["cargo_id"] = json!(args::required(cargo, "cargo_id")?);
                }
                let sb = rest.post("/v1/sandboxes", body).await?;
                Ok(format!(
                    "Sandbox created successfully.\n\n**Sandbox ID:** `{}`\n**Profile:** {}\n**Status:** {}\n**Capabilities:** {}\n**TTL:** {ttl} seconds\n{}\nUse this sandbox_id for subsequent operations.",
                    s(&sb, "id"),
                    s(&sb, "profile"),
                    s(&sb, "status"),
                    joined(&sb, "capabilities"),
                    containers(&sb),
                ))
            }
            .await,
        )
    }

    #[tool(description = "Delete a sandbox: its containers go, and so does its workspace volume unless it was created from an existing cargo.")]
    async fn delete_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                rest.json(Method::DELETE, &sandbox_path(id, ""), None).await?;
                Ok(format!("Sandbox `{id}` deleted successfully."))
            }
            .await,
        )
    }

    #[tool(description = "Stop a sandbox's containers now to free resources. Files in /workspace are kept; the next call \
starts a fresh session (Python variables are lost). The sandbox itself stays until deleted or expired.")]
    async fn stop_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                rest.json(Method::POST, &sandbox_path(id, "/stop"), None).await?;
                Ok(format!("Sandbox `{id}` stopped. Files in /workspace are kept; the next call starts a new session."))
            }
            .await,
        )
    }

    #[tool(description = "Pause a sandbox's running session: its processes are frozen with their memory kept (Python variables, \
open browser pages) and use no CPU. The next call, or resume_sandbox, resumes it. Fails when no session runs.")]
    async fn pause_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                rest.json(Method::POST, &sandbox_path(id, "/pause"), None).await?;
                Ok(format!("Sandbox `{id}` paused. Its memory is kept; the next call resumes it."))
            }
            .await,
        )
    }

    #[tool(description = "Resume a paused sandbox now (any call on it also does). A running sandbox is left as it is.")]
    async fn resume_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let sb = rest.json(Method::POST, &sandbox_path(id, "/resume"), None).await?;
                Ok(format!("Sandbox `{id}` resumed.\n**Status:** {}", s(&sb, "status")))
            }
            .await,
        )
    }

    #[tool(description = "Make a URL that shows a server running in the sandbox (a web app on a port, e.g. started with \
execute_shell and `nohup python3 -m http.server 8000 &`) in a browser, HTTP and WebSocket, without an API key. \
The URL expires after ttl_seconds and stops working when the sandbox is deleted.")]
    async fn preview_port(&self, Parameters(a): Parameters<PreviewPort>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let port = args::int(Some(a.port), 0, "port", Some(1), Some(65_535))?;
                let ttl = args::int(a.ttl_seconds, 3600, "ttl_seconds", Some(1), Some(604_800))?;
                let t = rest.post(&sandbox_path(id, &format!("/ports/{port}/token")), json!({"ttl_seconds": ttl})).await?;
                let url = t.get("url").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("<Bay's base URL>{}", s(&t, "path")));
                Ok(format!("Preview of port {port} in sandbox `{id}`:\n\n{url}\n\n**Expires:** {} (UTC)", s(&t, "expires_at")))
            }
            .await,
        )
    }

    #[tool(description = "Reset a sandbox's idle timer so its session is not reclaimed for being idle. Does not start a session or change the TTL.")]
    async fn keepalive_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                rest.json(Method::POST, &sandbox_path(id, "/keepalive"), None).await?;
                Ok(format!("Sandbox `{id}` kept alive (idle timer reset)."))
            }
            .await,
        )
    }

    #[tool(description = "Extend a sandbox's time-to-live by extend_by seconds. Fails for sandboxes without expiry and for expired ones.")]
    async fn extend_ttl(&self, Parameters(a): Parameters<ExtendTtl>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let by = args::int(Some(a.extend_by), 0, "extend_by", Some(1), None)?;
                let sb = rest.post(&sandbox_path(id, "/extend_ttl"), json!({"extend_by": by})).await?;
                Ok(format!("TTL of sandbox `{id}` extended by {by} seconds.\n**Expires at:** {}", or_never(&sb, "expires_at")))
            }
            .await,
        )
    }

    #[tool(
        description = "Show one sandbox: profile, status (idle, starting, ready, failed, expired), capabilities, cargo, expiry, and its containers when running."
    )]
    async fn get_sandbox(&self, Parameters(a): Parameters<SandboxRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let sb = rest.get(&sandbox_path(id, "")).await?;
                Ok(format!(
                    "**Sandbox ID:** `{}`\n**Profile:** {}\n**Status:** {}\n**Capabilities:** {}\n**Cargo:** `{}`\n**Created at:** {} (UTC)\n**Expires at:** {}\n**Idle expires at:** {}\n{}",
                    s(&sb, "id"),
                    s(&sb, "profile"),
                    s(&sb, "status"),
                    joined(&sb, "capabilities"),
                    s(&sb, "cargo_id"),
                    s(&sb, "created_at"),
                    or_never(&sb, "expires_at"),
                    or_never(&sb, "idle_expires_at"),
                    containers(&sb),
                )
                .trim_end()
                .to_owned())
            }
            .await,
        )
    }

    #[tool(
        description = "List your sandboxes (oldest id first), optionally only those in one status. Pass next_cursor back as cursor for the next page."
    )]
    async fn list_sandboxes(&self, Parameters(a): Parameters<ListSandboxes>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let limit = args::int(a.limit, 50, "limit", Some(1), Some(200))?;
                let uri = with_query("/v1/sandboxes", &[("limit", Some(limit.to_string())), ("cursor", a.cursor), ("status", a.status)]);
                let page = rest.get(&uri).await?;
                let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                if items.is_empty() {
                    return Ok("No sandboxes found.".into());
                }
                let mut lines = vec![format!("**Sandboxes** ({})\n", items.len())];
                for sb in &items {
                    lines.push(format!("- `{}` | {} | {} | expires_at={}", s(sb, "id"), s(sb, "profile"), s(sb, "status"), py(sb, "expires_at")));
                }
                if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
                    lines.push(format!("\nnext_cursor: {next}"));
                }
                Ok(lines.join("\n"))
            }
            .await,
        )
    }
}
