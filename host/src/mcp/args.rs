//! Tool arguments: one struct per argument list, with the JSON Schema rmcp
//! publishes in `tools/list` (derived by schemars; doc comments become the
//! descriptions), and the checks Shipyard Neo's server makes before calling
//! Bay (same rules, same messages).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::rest::{CallError, CallResult};

/// `sandbox_id` alone (delete, stop, keepalive, get).
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SandboxRef {
    /// The sandbox ID (from create_sandbox or list_sandboxes).
    pub sandbox_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateSandbox {
    /// Profile to create the sandbox from (see list_profiles). Defaults to 'python-default'.
    #[schemars(extend("default" = "python-default"))]
    pub profile: Option<String>,
    /// Time-to-live in seconds; 0 means no expiry. Defaults to 3600.
    #[schemars(range(min = 0), extend("default" = 3600))]
    pub ttl: Option<i64>,
    /// Attach an existing cargo (from create_cargo) as /workspace instead of a new one. Bay extension.
    pub cargo_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExtendTtl {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Seconds to add to the sandbox's expiry (counted from now if it is already due).
    #[schemars(range(min = 1))]
    pub extend_by: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PreviewPort {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// The port a server in the sandbox listens on (127.0.0.1 or ::1), 1..65535.
    pub port: i64,
    /// How long the URL works, in seconds (1..604800). Defaults to 3600.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListSandboxes {
    /// Page size, 1..200. Defaults to 50.
    #[schemars(range(min = 1, max = 200), extend("default" = 50))]
    pub limit: Option<i64>,
    /// next_cursor of the previous page.
    pub cursor: Option<String>,
    /// Only sandboxes in this state: idle, starting, ready, failed or expired.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecutePython {
    /// The sandbox ID to run in.
    pub sandbox_id: String,
    /// Python source to run in the sandbox's IPython kernel.
    pub code: String,
    /// Seconds before the cell is interrupted, 1..300. Defaults to 30.
    #[schemars(range(min = 1, max = 300), extend("default" = 30))]
    pub timeout: Option<i64>,
    /// Echo the code and execution metadata in the result.
    #[schemars(extend("default" = false))]
    pub include_code: Option<bool>,
    /// A description stored with the execution history entry.
    pub description: Option<String>,
    /// Comma-separated tags stored with the execution history entry.
    pub tags: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecuteShell {
    /// The sandbox ID to run in.
    pub sandbox_id: String,
    /// Shell command line (bash).
    pub command: String,
    /// Working directory relative to /workspace. Defaults to /workspace.
    pub cwd: Option<String>,
    /// Seconds before the command is killed, 1..300. Defaults to 30.
    #[schemars(range(min = 1, max = 300), extend("default" = 30))]
    pub timeout: Option<i64>,
    /// Echo the command and execution metadata in the result.
    #[schemars(extend("default" = false))]
    pub include_code: Option<bool>,
    /// A description stored with the execution history entry.
    pub description: Option<String>,
    /// Comma-separated tags stored with the execution history entry.
    pub tags: Option<String>,
}

/// `sandbox_id` and a workspace path (read_file, delete_file).
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct FilePath {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Path relative to /workspace.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct WriteFile {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Path relative to /workspace; missing parent directories are created.
    pub path: String,
    /// Text to write (UTF-8), at most 5 MiB. For binary data use upload_file.
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListFiles {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Directory relative to /workspace. Defaults to '.' (the workspace itself).
    #[schemars(extend("default" = "."))]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct UploadFile {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Target path relative to /workspace; missing parent directories are created.
    pub sandbox_path: String,
    /// The file's bytes, base64-encoded (standard alphabet, padding optional); at most 50 MiB decoded.
    pub content_base64: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct DownloadFile {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// File path relative to /workspace (at most 50 MiB).
    pub sandbox_path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecutionHistory {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Only this kind of execution: python, shell, browser or browser_batch.
    pub exec_type: Option<String>,
    /// Only successful executions.
    #[schemars(extend("default" = false))]
    pub success_only: Option<bool>,
    /// At most this many entries, 1..500. Defaults to 50.
    #[schemars(range(min = 1, max = 500), extend("default" = 50))]
    pub limit: Option<i64>,
    /// Comma-separated tags; entries with any of them.
    pub tags: Option<String>,
    /// Only entries that have notes.
    #[schemars(extend("default" = false))]
    pub has_notes: Option<bool>,
    /// Only entries that have a description.
    #[schemars(extend("default" = false))]
    pub has_description: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecutionRef {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// The execution ID (execution_id of an execute_* result).
    pub execution_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct LastExecution {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// Only this kind of execution: python, shell, browser or browser_batch.
    pub exec_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct AnnotateExecution {
    /// The sandbox ID.
    pub sandbox_id: String,
    /// The execution ID.
    pub execution_id: String,
    /// New description.
    pub description: Option<String>,
    /// New comma-separated tags.
    pub tags: Option<String>,
    /// New notes (for agents reading the history later).
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateSkillPayload {
    /// The payload: a JSON object or array.
    #[schemars(schema_with = "object_or_array")]
    pub payload: Value,
    /// Payload kind. Defaults to 'generic'.
    #[schemars(extend("default" = "generic"))]
    pub kind: Option<String>,
}

fn object_or_array(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The payload: a JSON object or array.",
        "anyOf": [{"type": "object"}, {"type": "array", "items": {}}]
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SkillPayloadRef {
    /// The payload reference, e.g. blob:blob-0123456789ab.
    pub payload_ref: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateSkillCandidate {
    /// Skill identifier.
    pub skill_key: String,
    /// IDs of the executions this skill was learned from (at least one).
    #[schemars(length(min = 1))]
    pub source_execution_ids: Vec<String>,
    /// Scenario key.
    pub scenario_key: Option<String>,
    /// A payload reference (from create_skill_payload).
    pub payload_ref: Option<String>,
    /// What the skill does, for people and agents.
    pub summary: Option<String>,
    /// How to use it.
    pub usage_notes: Option<String>,
    /// What must hold before the skill runs (a JSON object).
    pub preconditions: Option<Map<String, Value>>,
    /// What holds after it ran (a JSON object).
    pub postconditions: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct EvaluateSkillCandidate {
    /// The skill candidate ID.
    pub candidate_id: String,
    /// Whether the evaluation passed.
    pub passed: bool,
    /// Evaluation score.
    pub score: Option<f64>,
    /// Benchmark ID.
    pub benchmark_id: Option<String>,
    /// Evaluation report.
    pub report: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PromoteSkillCandidate {
    /// The skill candidate ID (it needs a passing evaluation).
    pub candidate_id: String,
    /// Release stage: canary or stable. Defaults to canary.
    #[schemars(extend("default" = "canary"))]
    pub stage: Option<String>,
    /// The release this promotion upgrades.
    pub upgrade_of_release_id: Option<String>,
    /// Why it is upgraded.
    pub upgrade_reason: Option<String>,
    /// What changed, for people and agents.
    pub change_summary: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListSkillCandidates {
    /// Only candidates in this status.
    pub status: Option<String>,
    /// Only candidates of this skill.
    pub skill_key: Option<String>,
    /// At most this many, 1..500. Defaults to 50.
    #[schemars(range(min = 1, max = 500), extend("default" = 50))]
    pub limit: Option<i64>,
    /// Skip this many. Defaults to 0.
    #[schemars(range(min = 0), extend("default" = 0))]
    pub offset: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListSkillReleases {
    /// Only releases of this skill.
    pub skill_key: Option<String>,
    /// Only active releases.
    #[schemars(extend("default" = false))]
    pub active_only: Option<bool>,
    /// Only releases in this stage: canary or stable.
    pub stage: Option<String>,
    /// At most this many, 1..500. Defaults to 50.
    #[schemars(range(min = 1, max = 500), extend("default" = 50))]
    pub limit: Option<i64>,
    /// Skip this many. Defaults to 0.
    #[schemars(range(min = 0), extend("default" = 0))]
    pub offset: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct DeleteSkillRelease {
    /// The release ID.
    pub release_id: String,
    /// Why, for the audit trail.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct DeleteSkillCandidate {
    /// The candidate ID.
    pub candidate_id: String,
    /// Why, for the audit trail.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SkillReleaseRef {
    /// The active release to roll back from.
    pub release_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecuteBrowser {
    /// The sandbox ID to run in (its profile needs the browser capability).
    pub sandbox_id: String,
    /// An agent-browser command without the 'agent-browser' prefix, e.g. 'open https://example.com', 'snapshot -i', 'click @e1'.
    pub cmd: String,
    /// Seconds before the command is stopped, 1..300. Defaults to 30.
    #[schemars(range(min = 1, max = 300), extend("default" = 30))]
    pub timeout: Option<i64>,
    /// A description stored with the execution history entry.
    pub description: Option<String>,
    /// Comma-separated tags stored with the execution history entry.
    pub tags: Option<String>,
    /// Feed this execution to the skill-learning pipeline.
    #[schemars(extend("default" = false))]
    pub learn: Option<bool>,
    /// Store a step trace and return its trace_ref.
    #[schemars(extend("default" = false))]
    pub include_trace: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecuteBrowserBatch {
    /// The sandbox ID to run in (its profile needs the browser capability).
    pub sandbox_id: String,
    /// agent-browser commands without the 'agent-browser' prefix, run in order, e.g. ['open https://example.com', 'wait --load networkidle', 'snapshot -i'].
    #[schemars(length(min = 1))]
    pub commands: Vec<String>,
    /// Seconds for the whole batch, 1..600. Defaults to 60.
    #[schemars(range(min = 1, max = 600), extend("default" = 60))]
    pub timeout: Option<i64>,
    /// Stop at the first failing command. Defaults to true.
    #[schemars(extend("default" = true))]
    pub stop_on_error: Option<bool>,
    /// A description stored with the execution history entry.
    pub description: Option<String>,
    /// Comma-separated tags stored with the execution history entry.
    pub tags: Option<String>,
    /// Feed this execution to the skill-learning pipeline.
    #[schemars(extend("default" = false))]
    pub learn: Option<bool>,
    /// Store a step trace and return its trace_ref.
    #[schemars(extend("default" = false))]
    pub include_trace: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateCargo {
    /// Size limit in MiB, 1..65536. Defaults to the server's cargo.default_size_limit_mb.
    #[schemars(range(min = 1, max = 65536))]
    pub size_limit_mb: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListCargos {
    /// Page size, 1..200. Defaults to 50.
    #[schemars(range(min = 1, max = 200), extend("default" = 50))]
    pub limit: Option<i64>,
    /// next_cursor of the previous page.
    pub cursor: Option<String>,
    /// true: only cargos managed by a sandbox; false or absent: only cargos created with create_cargo.
    pub managed: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CargoRef {
    /// The cargo ID (ws-…).
    pub cargo_id: String,
}

// ---------------------------------------------------------------- checks

/// A required string must not be blank.
pub(crate) fn required<'a>(value: &'a str, field: &str) -> CallResult<&'a str> {
    if value.trim().is_empty() { Err(CallError::validation(format!("missing required field: {field}"))) } else { Ok(value) }
}

/// `^[a-zA-Z0-9_-]{1,128}$`, as Shipyard Neo's server checks it.
pub(crate) fn sandbox_id(value: &str) -> CallResult<&str> {
    required(value, "sandbox_id")?;
    if value.len() > 128 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(CallError::validation("invalid sandbox_id format: must be 1-128 alphanumeric/hyphen/underscore characters"));
    }
    Ok(value)
}

/// A workspace-relative path: not empty, not absolute, no `..` (Bay checks
/// it again, authoritatively).
pub(crate) fn relative_path<'a>(value: &'a str, field: &str) -> CallResult<&'a str> {
    if value.trim().is_empty() {
        return Err(CallError::validation(format!("field '{field}' must be a non-empty string")));
    }
    if value.starts_with('/') {
        return Err(CallError::validation("invalid path: absolute paths are not allowed"));
    }
    if value.split('/').any(|p| p == "..") {
        return Err(CallError::validation("invalid path: path traversal ('..') is not allowed"));
    }
    Ok(value)
}

/// An optional integer with its default, inside `[min, max]`.
pub(crate) fn int(value: Option<i64>, default: i64, field: &str, min: Option<i64>, max: Option<i64>) -> CallResult<i64> {
    let v = value.unwrap_or(default);
    if let Some(min) = min.filter(|m| v < *m) {
        return Err(CallError::validation(format!("field '{field}' must be >= {min}")));
    }
    if let Some(max) = max.filter(|m| v > *m) {
        return Err(CallError::validation(format!("field '{field}' must be <= {max}")));
    }
    Ok(v)
}

/// `python`, `shell`, `browser` or `browser_batch`.
pub(crate) fn exec_type(value: Option<&str>) -> CallResult<Option<&str>> {
    match value {
        None | Some("python" | "shell" | "browser" | "browser_batch") => Ok(value),
        Some(_) => Err(CallError::validation("field 'exec_type' must be one of: python, shell, browser, browser_batch")),
    }
}

/// `canary` or `stable`.
pub(crate) fn stage(value: Option<&str>) -> CallResult<Option<&str>> {
    match value {
        None | Some("canary" | "stable") => Ok(value),
        Some(_) => Err(CallError::validation("field 'stage' must be one of: canary, stable")),
    }
}

/// A non-empty list of non-blank strings.
pub(crate) fn string_list<'a>(value: &'a [String], field: &str) -> CallResult<&'a [String]> {
    if value.is_empty() || value.iter().any(|s| s.trim().is_empty()) {
        return Err(CallError::validation(format!("field '{field}' must be a non-empty array of strings")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: std::fmt::Debug>(r: CallResult<T>) -> String {
        match r {
            Err(CallError::Validation(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checks_match_shipyard_neo() {
        assert_eq!(sandbox_id("sandbox-0123456789ab").unwrap(), "sandbox-0123456789ab");
        assert!(msg(sandbox_id("a/b")).starts_with("invalid sandbox_id format"));
        assert_eq!(msg(sandbox_id(" ")), "missing required field: sandbox_id");
        assert!(sandbox_id(&"a".repeat(129)).is_err());
        assert_eq!(relative_path("a/b.txt", "path").unwrap(), "a/b.txt");
        assert_eq!(msg(relative_path("/etc/passwd", "path")), "invalid path: absolute paths are not allowed");
        assert_eq!(msg(relative_path("a/../../x", "path")), "invalid path: path traversal ('..') is not allowed");
        assert_eq!(int(None, 30, "timeout", Some(1), Some(300)).unwrap(), 30);
        assert_eq!(msg(int(Some(301), 30, "timeout", Some(1), Some(300))), "field 'timeout' must be <= 300");
        assert_eq!(msg(int(Some(0), 30, "timeout", Some(1), Some(300))), "field 'timeout' must be >= 1");
        assert!(exec_type(Some("python")).is_ok() && exec_type(Some("java")).is_err());
        assert!(stage(Some("stable")).is_ok() && stage(Some("beta")).is_err());
        assert!(string_list(&[], "commands").is_err());
    }
}
