//! Runtime adapter for Gull (headless Chromium driven by agent-browser), as a
//! WebAssembly component. Speaks Gull's HTTP API (Shipyard Neo's contract, docs/compatibility.md).

use bay_plugin_sdk::prelude::*;
use serde::Deserialize;

const GULL: Runtime = Runtime::new("Gull");

struct Gull;

#[derive(Deserialize)]
struct ExecResult {
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    exit_code: i32,
}

#[derive(Deserialize)]
struct Step {
    cmd: String,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    exit_code: i32,
    step_index: u32,
    #[serde(default)]
    duration_ms: u64,
}

#[derive(Deserialize)]
struct BatchResult {
    results: Vec<Step>,
    total_steps: u32,
    completed_steps: u32,
    success: bool,
    #[serde(default)]
    duration_ms: u64,
}

impl RuntimeAdapter for Gull {
    fn describe() -> AdapterInfo {
        AdapterInfo::new("gull", env!("CARGO_PKG_VERSION")).capability("browser", &["exec", "exec_batch"])
    }

    /// Gull always answers 200; it is healthy when it says so.
    fn health() -> Result<HealthStatus, AdapterError> {
        let resp = GULL.send_raw(Request::new(Method::Get, "/health").timeout_secs(5))?;
        let doc: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok(HealthStatus { healthy: resp.status == 200 && doc["status"] == "healthy", detail: Some(resp.text()) })
    }

    fn browser_exec(req: BrowserExecRequest) -> Result<BrowserExecResult, AdapterError> {
        let r: ExecResult = GULL.post_json("/exec", &json!({ "cmd": req.cmd, "timeout": req.timeout_s }), req.timeout_s + 5)?;
        Ok(BrowserExecResult { stdout: r.stdout, stderr: r.stderr, exit_code: r.exit_code })
    }

    fn browser_batch(req: BrowserBatchRequest) -> Result<BrowserBatchResult, AdapterError> {
        let r: BatchResult = GULL.post_json(
            "/exec_batch",
            &json!({ "commands": req.commands, "timeout": req.timeout_s, "stop_on_error": req.stop_on_error }),
            req.timeout_s + 10,
        )?;
        Ok(BrowserBatchResult {
            results: r
                .results
                .into_iter()
                .map(|s| BrowserStep {
                    cmd: s.cmd,
                    stdout: s.stdout,
                    stderr: s.stderr,
                    exit_code: s.exit_code,
                    step_index: s.step_index,
                    duration_ms: s.duration_ms,
                })
                .collect(),
            total_steps: r.total_steps,
            completed_steps: r.completed_steps,
            success: r.success,
            duration_ms: r.duration_ms,
        })
    }
}

bay_plugin_sdk::register_adapter!(Gull);
