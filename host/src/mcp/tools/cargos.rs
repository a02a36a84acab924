//! Cargos (persistent /workspace volumes): create, list, delete. Bay's
//! additions; a cargo is attached with create_sandbox's `cargo_id`.

use axum::http::Method;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use crate::mcp::args::{self, CargoRef, CreateCargo, ListCargos};
use crate::mcp::rest::{seg, with_query};
use crate::mcp::server::BayMcp;
use crate::mcp::text::{py, result, s};

#[tool_router(router = cargo_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Create a cargo: a persistent workspace volume that outlives sandboxes. Pass its ID as \
create_sandbox's cargo_id to mount it as /workspace; delete it with delete_cargo when no sandbox uses it.")]
    async fn create_cargo(&self, Parameters(a): Parameters<CreateCargo>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let mut body = json!({});
                if let Some(mb) = a.size_limit_mb {
                    body["size_limit_mb"] = json!(args::int(Some(mb), 0, "size_limit_mb", Some(1), Some(65536))?);
                }
                let c = rest.post("/v1/cargos", body).await?;
                Ok(format!(
                    "Cargo created successfully.\n\n**Cargo ID:** `{}`\n**Size limit:** {} MB\n\nPass it as cargo_id to create_sandbox to use it as /workspace.",
                    s(&c, "id"),
                    py(&c, "size_limit_mb")
                ))
            }
            .await,
        )
    }

    #[tool(description = "List your cargos: by default those made with create_cargo; managed=true lists the ones sandboxes \
created for themselves. Pass next_cursor back as cursor for the next page.")]
    async fn list_cargos(&self, Parameters(a): Parameters<ListCargos>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let limit = args::int(a.limit, 50, "limit", Some(1), Some(200))?;
                let uri = with_query(
                    "/v1/cargos",
                    &[("limit", Some(limit.to_string())), ("cursor", a.cursor.clone()), ("managed", a.managed.map(|m| m.to_string()))],
                );
                let page = rest.get(&uri).await?;
                let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                if items.is_empty() {
                    return Ok("No cargos found.".into());
                }
                let mut lines = vec![format!("**Cargos** ({})\n", items.len())];
                for c in &items {
                    lines.push(format!(
                        "- `{}` | managed={} | managed_by_sandbox_id={} | size_limit_mb={} | created_at={}",
                        s(c, "id"),
                        py(c, "managed"),
                        py(c, "managed_by_sandbox_id"),
                        py(c, "size_limit_mb"),
                        s(c, "created_at")
                    ));
                }
                if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
                    lines.push(format!("\nnext_cursor: {next}"));
                }
                Ok(lines.join("\n"))
            }
            .await,
        )
    }

    #[tool(description = "Delete a cargo and its data. Refused while a sandbox still uses it.")]
    async fn delete_cargo(&self, Parameters(a): Parameters<CargoRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.cargo_id, "cargo_id")?;
                rest.json(Method::DELETE, &format!("/v1/cargos/{}", seg(id)), None).await?;
                Ok(format!("Cargo `{id}` deleted successfully."))
            }
            .await,
        )
    }
}
