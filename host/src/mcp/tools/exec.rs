//! execute_python and execute_shell.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::{execution_suffix, sandbox_path};
use crate::mcp::args::{self, ExecutePython, ExecuteShell};
use crate::mcp::rest::CallResult;
use crate::mcp::server::BayMcp;
use crate::mcp::text::{self, clip, error_text};

/// PNG figures (matplotlib) in a Python result, as MCP image content.
fn images(r: &Value) -> Vec<ContentBlock> {
    let list = r.pointer("/data/output/images").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|img| img.get("image/png").and_then(Value::as_str))
        .map(|b64| ContentBlock::image(b64, "image/png"))
        .collect()
}

fn python_text(r: &Value, include_code: bool) -> String {
    if r.get("success").and_then(Value::as_bool) == Some(true) {
        let output = r.get("output").and_then(Value::as_str).filter(|o| !o.is_empty()).unwrap_or("(no output)");
        let mut suffix = execution_suffix(r, true);
        if let Some(code) = r.get("code").and_then(Value::as_str).filter(|c| include_code && !c.is_empty()) {
            suffix.push_str(&format!("\n\ncode:\n{}", clip(code)));
        }
        format!("**Execution successful**\n\n```\n{}\n```{suffix}", clip(output))
    } else {
        let error = r.get("error").and_then(Value::as_str).filter(|e| !e.is_empty()).unwrap_or("Unknown error");
        format!("**Execution failed**\n\n```\n{}\n```{}", clip(error), execution_suffix(r, false))
    }
}

fn shell_text(r: &Value, include_code: bool) -> String {
    let success = r.get("success").and_then(Value::as_bool) == Some(true);
    let output = r.get("output").and_then(Value::as_str).filter(|o| !o.is_empty()).unwrap_or("(no output)");
    let exit_code = r.get("exit_code").and_then(Value::as_i64).map(|c| c.to_string()).unwrap_or_else(|| "N/A".into());
    let mut suffix = execution_suffix(r, true);
    if let Some(cmd) = r.get("command").and_then(Value::as_str).filter(|c| include_code && !c.is_empty()) {
        suffix.push_str(&format!("\n\ncommand:\n{}", clip(cmd)));
    }
    // Bay's addition: stderr (REST `error`), which Shipyard Neo's server drops.
    if let Some(err) = r.get("error").and_then(Value::as_str).filter(|e| !e.is_empty()) {
        suffix.push_str(&format!("\n\nstderr:\n{}", clip(err)));
    }
    let status = if success { "successful" } else { "failed" };
    format!("**Command {status}** (exit code: {exit_code})\n\n```\n{}\n```{suffix}", clip(output))
}

#[tool_router(router = exec_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Run Python code in a sandbox's IPython kernel. Variables, imports and files persist across calls \
in the same sandbox session. Returns stdout and the value of the last expression, or the traceback; figures come back as images.")]
    async fn execute_python(&self, Parameters(a): Parameters<ExecutePython>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        let include_code = a.include_code.unwrap_or(false);
        let outcome: CallResult<Value> = async {
            let id = args::sandbox_id(&a.sandbox_id)?;
            let code = args::required(&a.code, "code")?;
            let timeout = args::int(a.timeout, 30, "timeout", Some(1), Some(300))?;
            let body = json!({"code": code, "timeout": timeout, "include_code": include_code, "description": a.description, "tags": a.tags});
            rest.post(&sandbox_path(id, "/python/exec"), body).await
        }
        .await;
        match outcome {
            Ok(r) => {
                let mut content = vec![ContentBlock::text(python_text(&r, include_code))];
                content.extend(images(&r));
                CallToolResult::success(content)
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(error_text(&e))]),
        }
    }

    #[tool(description = "Run a shell command (bash) in a sandbox, in /workspace unless cwd says otherwise. \
Returns the exit code, stdout and stderr.")]
    async fn execute_shell(&self, Parameters(a): Parameters<ExecuteShell>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        let include_code = a.include_code.unwrap_or(false);
        text::result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let command = args::required(&a.command, "command")?;
                let timeout = args::int(a.timeout, 30, "timeout", Some(1), Some(300))?;
                let body = json!({
                    "command": command, "timeout": timeout, "cwd": a.cwd, "include_code": include_code,
                    "description": a.description, "tags": a.tags
                });
                let r = rest.post(&sandbox_path(id, "/shell/exec"), body).await?;
                Ok(shell_text(&r, include_code))
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_like_shipyard_neo() {
        let ok = json!({"success": true, "output": "2\n", "error": null, "execution_id": "exec-1", "execution_time_ms": 5, "code": "1+1",
            "data": {"output": {"text": "2", "images": [{"image/png": "iVBO"}]}}});
        assert_eq!(python_text(&ok, false), "**Execution successful**\n\n```\n2\n\n```\n\nexecution_id: exec-1\nexecution_time_ms: 5");
        assert!(python_text(&ok, true).ends_with("\n\ncode:\n1+1"));
        assert_eq!(images(&ok).len(), 1);
        let failed = json!({"success": false, "output": "", "error": "NameError", "execution_id": "exec-2"});
        assert_eq!(python_text(&failed, false), "**Execution failed**\n\n```\nNameError\n```\n\nexecution_id: exec-2");
        let sh = json!({"success": false, "output": "", "error": "no such file", "exit_code": 2, "execution_id": "exec-3", "execution_time_ms": 7});
        assert_eq!(
            shell_text(&sh, false),
            "**Command failed** (exit code: 2)\n\n```\n(no output)\n```\n\nexecution_id: exec-3\nexecution_time_ms: 7\n\nstderr:\nno such file"
        );
    }
}
