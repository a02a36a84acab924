//! How tool results read: Markdown-ish text in the shape Shipyard Neo's MCP
//! server produces (`**Execution successful**`, `**API Error:** [code] message`,
//! truncation notes), so prompts written for it keep working.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use super::MAX_TOOL_TEXT_CHARS;
use super::rest::{CallError, CallResult};

/// Cuts `text` to `limit` characters, saying how much was hidden.
pub(crate) fn truncate(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept}\n\n...[truncated {} chars; original={total}]", total - limit)
}

/// [`truncate`] at [`MAX_TOOL_TEXT_CHARS`].
pub(crate) fn clip(text: &str) -> String {
    truncate(text, MAX_TOOL_TEXT_CHARS)
}

/// The text of a failed call.
pub(crate) fn error_text(err: &CallError) -> String {
    match err {
        CallError::Api { code, message, details } => {
            let suffix = match details {
                Some(d) => format!("\n\ndetails: {}", truncate(&d.to_string(), 1000)),
                None => String::new(),
            };
            format!("**API Error:** [{code}] {message}{suffix}")
        }
        CallError::Validation(msg) => format!("**Validation Error:** {msg}"),
        CallError::Timeout => format!("**Timeout Error:** call timed out after {}s", super::CALL_TIMEOUT_SECS),
    }
}

/// A tool's answer: its text, or the error text with `isError` set.
pub(crate) fn result(r: CallResult<String>) -> CallToolResult {
    match r {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(error_text(&e))]),
    }
}

/// A string field of a JSON answer (`""` when absent or null).
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A field rendered the way Python's `str()` renders it in Shipyard Neo's
/// server: `True`/`False`, `None`, numbers and strings as they are.
pub(crate) fn py(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "None".into(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A list of strings joined with `, `.
pub(crate) fn joined(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

/// The `containers` of a sandbox, one line each (empty when there are none).
pub(crate) fn containers(sandbox: &Value) -> String {
    let Some(list) = sandbox.get("containers").and_then(Value::as_array).filter(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut lines = vec!["**Containers:**".to_owned()];
    for c in list {
        let version = c.get("version").and_then(Value::as_str).unwrap_or("unknown");
        let health = match c.get("healthy").and_then(Value::as_bool) {
            Some(true) => "✅",
            Some(false) => "❌",
            None => "?",
        };
        lines.push(format!("  - {} ({}) v{version} {health} [{}]", s(c, "name"), s(c, "runtime_type"), joined(c, "capabilities")));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_says_what_was_cut() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("héllo wörld", 5), "héllo\n\n...[truncated 6 chars; original=11]");
    }

    #[test]
    fn errors_read_like_shipyard_neo() {
        let e = CallError::Api { code: "conflict".into(), message: "in use".into(), details: Some(serde_json::json!({"ids": ["a"]})) };
        assert_eq!(error_text(&e), "**API Error:** [conflict] in use\n\ndetails: {\"ids\":[\"a\"]}");
        assert_eq!(error_text(&CallError::validation("bad")), "**Validation Error:** bad");
        assert_eq!(error_text(&CallError::Timeout), "**Timeout Error:** call timed out after 600s");
    }

    #[test]
    fn python_style_values() {
        let v = serde_json::json!({"t": true, "f": false, "n": null, "i": 3, "s": "x"});
        assert_eq!([py(&v, "t"), py(&v, "f"), py(&v, "n"), py(&v, "i"), py(&v, "s"), py(&v, "missing")], ["True", "False", "None", "3", "x", "None"]);
    }
}
