//! Browser automation (agent-browser in the sandbox's Gull container).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::sandbox_path;
use crate::mcp::args::{self, ExecuteBrowser, ExecuteBrowserBatch};
use crate::mcp::server::BayMcp;
use crate::mcp::text::{clip, py, result, s, truncate};

fn browser_text(r: &Value) -> String {
    let success = r.get("success").and_then(Value::as_bool) == Some(true);
    let output = r.get("output").and_then(Value::as_str).filter(|o| !o.is_empty()).unwrap_or("(no output)");
    let exit_code = r.get("exit_code").and_then(Value::as_i64).map(|c| c.to_string()).unwrap_or_else(|| "N/A".into());
    let mut suffix = super::execution_suffix(r, true);
    if let Some(t) = r.get("trace_ref").and_then(Value::as_str) {
        suffix.push_str(&format!("\ntrace_ref: {t}"));
    }
    if let Some(err) = r.get("error").and_then(Value::as_str).filter(|e| !success && !e.is_empty()) {
        suffix.push_str(&format!("\n\nstderr:\n{}", clip(err)));
    }
    let status = if success { "successful" } else { "failed" };
    format!("**Browser command {status}** (exit code: {exit_code})\n\n```\n{}\n```{suffix}", clip(output))
}

fn batch_text(r: &Value) -> String {
    let status = if r.get("success").and_then(Value::as_bool) == Some(true) { "completed" } else { "failed" };
    let mut lines =
        vec![format!("**Batch execution {status}** ({}/{} steps, {}ms)\n", py(r, "completed_steps"), py(r, "total_steps"), py(r, "duration_ms"))];
    if !s(r, "execution_id").is_empty() {
        lines.push(format!("execution_id: {}", s(r, "execution_id")));
    }
    if let Some(ms) = r.get("execution_time_ms").and_then(Value::as_i64) {
        lines.push(format!("execution_time_ms: {ms}"));
    }
    if let Some(t) = r.get("trace_ref").and_then(Value::as_str) {
        lines.push(format!("trace_ref: {t}"));
    }
    for step in r.get("results").and_then(Value::as_array).into_iter().flatten() {
        let exit = step.get("exit_code").and_then(Value::as_i64).unwrap_or(-1);
        let icon = if exit == 0 { "✅" } else { "❌" };
        lines.push(format!("{icon} Step {}: `{}` (exit={exit}, {}ms)", py(step, "step_index"), s(step, "cmd"), py(step, "duration_ms")));
        for stream in ["stdout", "stderr"] {
            let text = s(step, stream).trim();
            if !text.is_empty() {
                lines.push(format!("   {stream}: {}", truncate(text, 500)));
            }
        }
    }
    lines.join("\n")
}

#[tool_router(router = browser_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Run one browser automation command (agent-browser) in a sandbox whose profile has the browser \
capability, e.g. 'open https://example.com', 'snapshot -i', 'click @e1', 'fill @e2 \"text\"'. Leave out the 'agent-browser' prefix.")]
    async fn execute_browser(&self, Parameters(a): Parameters<ExecuteBrowser>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let cmd = args::required(&a.cmd, "cmd")?;
                let timeout = args::int(a.timeout, 30, "timeout", Some(1), Some(300))?;
                let body = json!({
                    "cmd": cmd, "timeout": timeout, "description": a.description, "tags": a.tags,
                    "learn": a.learn.unwrap_or(false), "include_trace": a.include_trace.unwrap_or(false)
                });
                Ok(browser_text(&rest.post(&sandbox_path(id, "/browser/exec"), body).await?))
            }
            .await,
        )
    }

    #[tool(description = "Run several browser automation commands in order in one call, for fixed sequences that need no \
decision in between (open, fill, click, wait). Use execute_browser step by step when the next command depends on what the \
page shows. Leave out the 'agent-browser' prefix.")]
    async fn execute_browser_batch(&self, Parameters(a): Parameters<ExecuteBrowserBatch>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let commands = args::string_list(&a.commands, "commands")?;
                let timeout = args::int(a.timeout, 60, "timeout", Some(1), Some(600))?;
                let body = json!({
                    "commands": commands, "timeout": timeout, "stop_on_error": a.stop_on_error.unwrap_or(true),
                    "description": a.description, "tags": a.tags, "learn": a.learn.unwrap_or(false),
                    "include_trace": a.include_trace.unwrap_or(false)
                });
                Ok(batch_text(&rest.post(&sandbox_path(id, "/browser/exec_batch"), body).await?))
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_results_read_like_shipyard_neo() {
        let r = json!({"success": false, "completed_steps": 2, "total_steps": 3, "duration_ms": 40, "execution_id": "exec-1",
            "execution_time_ms": 50, "trace_ref": null, "results": [
                {"cmd": "open about:blank", "stdout": "ok\n", "stderr": "", "exit_code": 0, "step_index": 0, "duration_ms": 30},
                {"cmd": "nope", "stdout": "", "stderr": "unknown", "exit_code": 1, "step_index": 1, "duration_ms": 10}]});
        assert_eq!(
            batch_text(&r),
            "**Batch execution failed** (2/3 steps, 40ms)\n\nexecution_id: exec-1\nexecution_time_ms: 50\n✅ Step 0: `open about:blank` (exit=0, 30ms)\n   stdout: ok\n❌ Step 1: `nope` (exit=1, 10ms)\n   stderr: unknown"
        );
        let one = json!({"success": true, "output": "Example", "exit_code": 0, "execution_id": "exec-2", "execution_time_ms": 9, "trace_ref": "blob:blob-1"});
        assert_eq!(
            browser_text(&one),
            "**Browser command successful** (exit code: 0)\n\n```\nExample\n```\n\nexecution_id: exec-2\nexecution_time_ms: 9\ntrace_ref: blob:blob-1"
        );
    }
}
