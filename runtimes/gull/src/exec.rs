//! `POST /exec` and `POST /exec_batch`: agent-browser commands as strings.

use std::time::Duration;

use axum::{Json, extract::State};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::time::Instant;
use tracing::info;

use runtime_common::{
    error::{ApiJson, AppError},
    text::split_command,
};

use crate::{
    AppState,
    browser::{Browser, RunOutput},
    config::Config,
    shared::{self, SandboxTarget},
};

/// Exit code for a command Gull could not even turn into an argv.
pub const INVALID_COMMAND_EXIT: i32 = 2;

fn default_exec_timeout() -> i64 {
    30
}
fn default_batch_timeout() -> i64 {
    60
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct ExecRequest {
    pub cmd: String,
    #[serde(default = "default_exec_timeout", deserialize_with = "lax_int")]
    pub timeout: i64,
    /// Shared mode: the sandbox (its own browser session) and its cargo
    /// (`<GULL_CARGOS_DIR>/bay-cargo-<cargo_id>`). Ignored in single mode,
    /// where a Gull container serves exactly one sandbox.
    #[serde(default)]
    pub sandbox_id: Option<String>,
    #[serde(default)]
    pub cargo_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    pub commands: Vec<String>,
    #[serde(default = "default_batch_timeout", deserialize_with = "lax_int")]
    pub timeout: i64,
    #[serde(default = "default_true")]
    pub stop_on_error: bool,
    #[serde(default)]
    pub sandbox_id: Option<String>,
    #[serde(default)]
    pub cargo_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchStep {
    pub cmd: String,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    pub step_index: usize,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    pub results: Vec<BatchStep>,
    pub total_steps: usize,
    pub completed_steps: usize,
    pub success: bool,
    pub duration_ms: u64,
}

/// An int the way pydantic (lax mode) takes one: `30`, `30.0` or `"30"`.
fn lax_int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| D::Error::custom(format!("Input should be a valid integer, got {v}")))
}

fn check_range(field: &str, v: i64, min: i64, max: i64) -> Result<(), AppError> {
    if v < min {
        return Err(AppError::unprocessable(format!("{field}: Input should be greater than or equal to {min}")));
    }
    if v > max {
        return Err(AppError::unprocessable(format!("{field}: Input should be less than or equal to {max}")));
    }
    Ok(())
}

/// The argv for agent-browser (after Gull's own `--session`): the command
/// split like a shell would, without running one. A leading `agent-browser`
/// is tolerated (agents often write it).
pub fn parse_command(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = split_command(cmd).map_err(|e| format!("Invalid command: {e} (the command is split like a shell line; check its quotes)"))?;
    if words.first().map(String::as_str) == Some("agent-browser") {
        words.remove(0);
    }
    if words.is_empty() {
        return Err("Empty command: give an agent-browser command such as `open about:blank` or `snapshot -i`".into());
    }
    Ok(words)
}

/// The sandbox a request is for: always `None` in single mode; in shared
/// mode see [`shared::resolve_target`] (an error is an exit code 2 answer).
pub fn target_for(cfg: &Config, sandbox_id: Option<&str>, cargo_id: Option<&str>) -> Result<Option<SandboxTarget>, String> {
    match &cfg.shared {
        None => Ok(None),
        Some(sh) => shared::resolve_target(sh, sandbox_id, cargo_id),
    }
}

/// Runs one command string; an unparsable one, or one shared mode refuses
/// for a sandbox, gives exit code 2 without running anything.
pub async fn run_command(browser: &dyn Browser, target: Option<&SandboxTarget>, cmd: &str, timeout: Duration) -> RunOutput {
    let checked = parse_command(cmd).and_then(|args| match target {
        Some(t) => shared::check_args(args, &t.cargo_dir),
        None => Ok(args),
    });
    match checked {
        Ok(args) => {
            let verb = args[0].clone();
            let t = std::time::Instant::now();
            let out = browser.run(target, args, timeout).await;
            info!(command = %verb, sandbox = target.map(|t| t.sandbox_id.as_str()), exit_code = out.exit_code, ms = t.elapsed().as_millis() as u64, "agent-browser");
            out
        }
        Err(e) => RunOutput::failed(INVALID_COMMAND_EXIT, e),
    }
}

/// Runs the commands in order within one shared time budget: each step gets
/// what is left of it, and no step starts once it is used up. A failing step
/// is part of `results` and, with `stop_on_error`, the last one. `success`
/// means every requested step ran and exited 0.
pub async fn run_batch(
    browser: &dyn Browser,
    target: Option<&SandboxTarget>,
    commands: &[String],
    budget: Duration,
    stop_on_error: bool,
) -> BatchResponse {
    let start = Instant::now();
    let mut results = Vec::with_capacity(commands.len());
    for (i, cmd) in commands.iter().enumerate() {
        let remaining = budget.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            break;
        }
        let t = Instant::now();
        let out = run_command(browser, target, cmd, remaining).await;
        let failed = out.exit_code != 0;
        results.push(BatchStep {
            cmd: cmd.clone(),
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
            step_index: i,
            duration_ms: t.elapsed().as_millis() as u64,
        });
        if failed && stop_on_error {
            break;
        }
    }
    BatchResponse {
        total_steps: commands.len(),
        completed_steps: results.len(),
        success: results.len() == commands.len() && results.iter().all(|r| r.exit_code == 0),
        duration_ms: start.elapsed().as_millis() as u64,
        results,
    }
}

pub async fn exec_handler(State(st): State<AppState>, ApiJson(req): ApiJson<ExecRequest>) -> Result<Json<RunOutput>, AppError> {
    check_range("timeout", req.timeout, 1, 300)?;
    let target = match target_for(&st.cfg, req.sandbox_id.as_deref(), req.cargo_id.as_deref()) {
        Ok(t) => t,
        Err(e) => return Ok(Json(RunOutput::failed(INVALID_COMMAND_EXIT, e))),
    };
    Ok(Json(run_command(st.browser.as_ref(), target.as_ref(), &req.cmd, Duration::from_secs(req.timeout as u64)).await))
}

pub async fn batch_handler(State(st): State<AppState>, ApiJson(req): ApiJson<BatchRequest>) -> Result<Json<BatchResponse>, AppError> {
    if req.commands.is_empty() {
        return Err(AppError::unprocessable("commands: List should have at least 1 item after validation, not 0"));
    }
    check_range("timeout", req.timeout, 1, 600)?;
    let target = match target_for(&st.cfg, req.sandbox_id.as_deref(), req.cargo_id.as_deref()) {
        Ok(t) => t,
        // Nothing can run: the first step carries the error.
        Err(e) => {
            let step = BatchStep {
                cmd: req.commands[0].clone(),
                stdout: String::new(),
                stderr: e,
                exit_code: INVALID_COMMAND_EXIT,
                step_index: 0,
                duration_ms: 0,
            };
            return Ok(Json(BatchResponse {
                results: vec![step],
                total_steps: req.commands.len(),
                completed_steps: 1,
                success: false,
                duration_ms: 0,
            }));
        }
    };
    let budget = Duration::from_secs(req.timeout as u64);
    Ok(Json(run_batch(st.browser.as_ref(), target.as_ref(), &req.commands, budget, req.stop_on_error).await))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::BrowserStatus;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Each command takes `step` of (paused tokio) time, or its whole
    /// timeout when it is `hang`; `nonexistent-subcommand` fails like the
    /// real CLI does.
    struct Fake {
        step: Duration,
        calls: Mutex<Vec<(Vec<String>, Duration)>>,
    }

    impl Fake {
        fn new(step_ms: u64) -> Self {
            Self { step: Duration::from_millis(step_ms), calls: Mutex::new(Vec::new()) }
        }
        fn timeouts(&self) -> Vec<Duration> {
            self.calls.lock().unwrap().iter().map(|(_, t)| *t).collect()
        }
    }

    #[async_trait]
    impl Browser for Fake {
        async fn run(&self, _target: Option<&SandboxTarget>, args: Vec<String>, timeout: Duration) -> RunOutput {
            self.calls.lock().unwrap().push((args.clone(), timeout));
            if args[0] == "hang" || self.step > timeout {
                tokio::time::sleep(timeout).await;
                return RunOutput::failed(-1, format!("Command timed out after {}s", timeout.as_secs_f64()));
            }
            tokio::time::sleep(self.step).await;
            match args[0].as_str() {
                "nonexistent-subcommand" => RunOutput::failed(1, "✗ Unknown command: nonexistent-subcommand"),
                _ => RunOutput { stdout: format!("ran {}", args.join(" ")), stderr: String::new(), exit_code: 0 },
            }
        }
        async fn close(&self, _session: &str) -> RunOutput {
            RunOutput::default()
        }
        fn status(&self) -> BrowserStatus {
            BrowserStatus::default()
        }
    }

    fn cmds(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failing_step_is_included_and_stops_the_batch() {
        let fake = Fake::new(100);
        let r = run_batch(&fake, None, &cmds(&["open about:blank", "nonexistent-subcommand", "get title"]), Duration::from_secs(60), true).await;
        assert_eq!((r.total_steps, r.completed_steps, r.results.len(), r.success), (3, 2, 2, false));
        let last = r.results.last().unwrap();
        assert_eq!((last.cmd.as_str(), last.step_index), ("nonexistent-subcommand", 1));
        assert_ne!(last.exit_code, 0);
        assert_eq!(r.results[0].stdout, "ran open about:blank");
        assert_eq!(r.results[0].duration_ms, 100);
        assert_eq!(r.duration_ms, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn without_stop_on_error_all_steps_run() {
        let fake = Fake::new(10);
        let r = run_batch(&fake, None, &cmds(&["open about:blank", "nonexistent-subcommand", "get title"]), Duration::from_secs(60), false).await;
        assert_eq!((r.total_steps, r.completed_steps, r.success), (3, 3, false));
        assert_eq!(r.results.iter().map(|s| s.step_index).collect::<Vec<_>>(), [0, 1, 2]);
        let ok = run_batch(&fake, None, &cmds(&["open about:blank", "get title"]), Duration::from_secs(60), true).await;
        assert!(ok.success);
    }

    #[tokio::test(start_paused = true)]
    async fn steps_share_the_budget() {
        // 3 s budget, 1 s steps: each step gets what is left.
        let fake = Fake::new(1000);
        let r = run_batch(&fake, None, &cmds(&["a", "b", "c", "d"]), Duration::from_secs(3), true).await;
        assert_eq!(fake.timeouts(), [Duration::from_secs(3), Duration::from_secs(2), Duration::from_secs(1)]);
        // The budget ran out exactly after the third step: the fourth never starts.
        assert_eq!((r.completed_steps, r.total_steps, r.success), (3, 4, false));
        assert!(r.results.iter().all(|s| s.exit_code == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_step_uses_up_the_budget() {
        let fake = Fake::new(500);
        let r = run_batch(&fake, None, &cmds(&["a", "hang", "c"]), Duration::from_secs(2), false).await;
        assert_eq!(fake.timeouts(), [Duration::from_secs(2), Duration::from_millis(1500)]);
        assert_eq!(r.completed_steps, 2);
        assert_eq!(r.results[1].exit_code, -1);
        assert_eq!(r.duration_ms, 2000);
        assert!(!r.success);
    }

    #[tokio::test(start_paused = true)]
    async fn unparsable_and_empty_commands_exit_2_without_running() {
        let fake = Fake::new(10);
        let r = run_batch(&fake, None, &cmds(&["open about:blank", "fill @e1 \"oops", "get title"]), Duration::from_secs(60), true).await;
        assert_eq!(r.completed_steps, 2);
        assert_eq!(r.results[1].exit_code, INVALID_COMMAND_EXIT);
        assert!(r.results[1].stderr.contains("No closing quotation"), "{}", r.results[1].stderr);
        assert_eq!(fake.calls.lock().unwrap().len(), 1);
        let out = run_command(&fake, None, "  ", Duration::from_secs(1)).await;
        assert_eq!(out.exit_code, INVALID_COMMAND_EXIT);
        // A leading `agent-browser` is dropped; quotes group words.
        let out = run_command(&fake, None, "agent-browser fill @e2 'hello world'", Duration::from_secs(1)).await;
        assert_eq!(out.stdout, "ran fill @e2 hello world");
        assert_eq!(fake.calls.lock().unwrap()[1].0, ["fill", "@e2", "hello world"]);
    }

    #[test]
    fn request_parsing_is_lax_like_pydantic() {
        let r: ExecRequest = serde_json::from_str(r#"{"cmd":"get title"}"#).unwrap();
        assert_eq!(r.timeout, 30);
        let r: ExecRequest = serde_json::from_str(r#"{"cmd":"x","timeout":"12","sandbox_id":"s"}"#).unwrap();
        assert_eq!(r.timeout, 12);
        let r: ExecRequest = serde_json::from_str(r#"{"cmd":"x","timeout":5.0}"#).unwrap();
        assert_eq!(r.timeout, 5);
        assert!(serde_json::from_str::<ExecRequest>(r#"{"cmd":"x","timeout":5.5}"#).is_err());
        assert!(serde_json::from_str::<ExecRequest>(r#"{"timeout":5}"#).is_err());
        let b: BatchRequest = serde_json::from_str(r#"{"commands":["a"]}"#).unwrap();
        assert_eq!((b.timeout, b.stop_on_error), (60, true));
        assert!(check_range("timeout", 0, 1, 300).is_err());
        assert!(check_range("timeout", 301, 1, 300).is_err());
        assert!(check_range("timeout", 300, 1, 300).is_ok());
    }
}
