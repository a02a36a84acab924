//! list_profiles.

use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::Value;

use crate::mcp::server::BayMcp;
use crate::mcp::text::{py, result, s};

fn caps(v: &Value) -> String {
    let list: Vec<&str> = v.get("capabilities").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

fn profiles_text(list: &Value) -> String {
    let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.is_empty() {
        return "No profiles available.".into();
    }
    let mut lines = vec![format!("**Available Profiles** ({})\n", items.len())];
    for p in &items {
        let desc = p.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()).map(|d| format!(" — {d}")).unwrap_or_default();
        lines.push(format!("- **{}**{desc}: capabilities=[{}], idle_timeout={}s", s(p, "id"), caps(p), py(p, "idle_timeout")));
        for c in p.get("containers").and_then(Value::as_array).into_iter().flatten() {
            lines.push(format!("    └ {} ({}): [{}]", s(c, "name"), s(c, "runtime_type"), caps(c)));
        }
    }
    lines.join("\n")
}

#[tool_router(router = profile_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "List the sandbox profiles: what each can do (python, shell, filesystem, browser), its containers \
and its idle timeout. Call it before create_sandbox to pick a profile.")]
    async fn list_profiles(&self, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(async { Ok(profiles_text(&rest.get("/v1/profiles?detail=true").await?)) }.await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_like_shipyard_neo() {
        let list = serde_json::json!({"items": [{"id": "browser-python", "description": "Chromium and Python", "capabilities": ["browser", "python"],
            "idle_timeout": 1800, "containers": [{"name": "ship", "runtime_type": "ship", "capabilities": ["python"]}]}]});
        assert_eq!(
            profiles_text(&list),
            "**Available Profiles** (1)\n\n- **browser-python** — Chromium and Python: capabilities=[browser, python], idle_timeout=1800s\n    └ ship (ship): [python]"
        );
    }
}
