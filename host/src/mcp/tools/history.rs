//! Execution history: list, one entry, the last entry, annotate.

use axum::http::Method;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::sandbox_path;
use crate::mcp::args::{self, AnnotateExecution, ExecutionHistory, ExecutionRef, LastExecution};
use crate::mcp::rest::{seg, with_query};
use crate::mcp::server::BayMcp;
use crate::mcp::text::{clip, py, result, s};

fn flag(v: Option<bool>) -> Option<String> {
    v.filter(|b| *b).map(|_| "true".to_owned())
}

fn history_text(h: &Value) -> String {
    let entries = h.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
    if entries.is_empty() {
        return "No execution history found.".into();
    }
    let mut lines = vec![format!("Total: {}", py(h, "total"))];
    for e in &entries {
        lines.push(format!("- {} | {} | success={} | {}ms", s(e, "id"), s(e, "exec_type"), py(e, "success"), py(e, "execution_time_ms")));
        if !s(e, "description").is_empty() {
            lines.push(format!("  description: {}", s(e, "description")));
        }
        if !s(e, "tags").is_empty() {
            lines.push(format!("  tags: {}", s(e, "tags")));
        }
    }
    lines.join("\n")
}

fn entry_head(e: &Value) -> String {
    format!("execution_id: {}\ntype: {}\nsuccess: {}\ntime_ms: {}\n", s(e, "id"), s(e, "exec_type"), py(e, "success"), py(e, "execution_time_ms"))
}

#[tool_router(router = history_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "List a sandbox's executions (python, shell, browser), newest first, with optional filters.")]
    async fn get_execution_history(&self, Parameters(a): Parameters<ExecutionHistory>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let exec_type = args::exec_type(a.exec_type.as_deref())?;
                let limit = args::int(a.limit, 50, "limit", Some(1), Some(500))?;
                let uri = with_query(
                    &sandbox_path(id, "/history"),
                    &[
                        ("exec_type", exec_type.map(str::to_owned)),
                        ("success_only", flag(a.success_only)),
                        ("limit", Some(limit.to_string())),
                        ("tags", a.tags.clone()),
                        ("has_notes", flag(a.has_notes)),
                        ("has_description", flag(a.has_description)),
                    ],
                );
                Ok(history_text(&rest.get(&uri).await?))
            }
            .await,
        )
    }

    #[tool(description = "Show one execution of a sandbox: its code, output, error, tags, description and notes.")]
    async fn get_execution(&self, Parameters(a): Parameters<ExecutionRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let eid = args::required(&a.execution_id, "execution_id")?;
                let e = rest.get(&sandbox_path(id, &format!("/history/{}", seg(eid)))).await?;
                Ok(format!(
                    "{}tags: {}\ndescription: {}\nnotes: {}\n\ncode:\n{}\n\noutput:\n{}\n\nerror:\n{}",
                    entry_head(&e),
                    s(&e, "tags"),
                    s(&e, "description"),
                    s(&e, "notes"),
                    clip(s(&e, "code")),
                    clip(s(&e, "output")),
                    clip(s(&e, "error")),
                ))
            }
            .await,
        )
    }

    #[tool(description = "Show the latest execution of a sandbox, optionally of one kind.")]
    async fn get_last_execution(&self, Parameters(a): Parameters<LastExecution>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let exec_type = args::exec_type(a.exec_type.as_deref())?;
                let e = rest.get(&with_query(&sandbox_path(id, "/history/last"), &[("exec_type", exec_type.map(str::to_owned))])).await?;
                Ok(format!("{}code:\n{}", entry_head(&e), clip(s(&e, "code"))))
            }
            .await,
        )
    }

    #[tool(description = "Set the description, tags or notes of one execution (fields left out are kept).")]
    async fn annotate_execution(&self, Parameters(a): Parameters<AnnotateExecution>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let eid = args::required(&a.execution_id, "execution_id")?;
                let body = json!({"description": a.description, "tags": a.tags, "notes": a.notes});
                let e = rest.json(Method::PATCH, &sandbox_path(id, &format!("/history/{}", seg(eid))), Some(body)).await?;
                Ok(format!(
                    "Updated execution {}\ndescription: {}\ntags: {}\nnotes: {}",
                    s(&e, "id"),
                    s(&e, "description"),
                    s(&e, "tags"),
                    s(&e, "notes")
                ))
            }
            .await,
        )
    }
}
