//! The shared browser service (Shipyard Neo's `browser_service`): one Gull
//! in `GULL_MODE=shared` serves the browser calls of many sandboxes, so a
//! sandbox whose profile lists `browser` needs no browser container of its
//! own. Bay sends each call with the sandbox's id and cargo id; Gull runs a
//! browser per sandbox and reads and writes `/workspace` paths in the
//! sandbox's cargo directory, which it sees under `/cargos` — so the service
//! needs cargo bind mounts (host/src/driver/bind.rs) to share files with the
//! sandbox. Calls start no session and do not count as activity.
//!
//! Which sandboxes it serves: with the service enabled, every profile with
//! the `browser` capability except those that say `browser: isolated` or,
//! saying nothing, have a Gull container of their own (Shipyard Neo routes
//! those to the service too; docs/compatibility.md).

use std::time::Duration;

use serde_json::json;

use crate::adapter::{BrowserBatchResult, BrowserExecResult, BrowserStep, CapabilityCall, CapabilityOutcome};
use crate::config::{BrowserServiceConfig, ProfileConfig};
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};

/// What the service gets beyond a call's own timeout to answer.
const MARGIN: Duration = Duration::from_secs(10);

pub(crate) struct SharedBrowser {
    endpoint: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl SharedBrowser {
    pub(crate) fn new(config: &BrowserServiceConfig) -> Option<SharedBrowser> {
        config.enabled.then(|| SharedBrowser {
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
            token: config.token.clone().filter(|t| !t.is_empty()),
            // Never through a proxy: the service is on the operator's network.
            http: reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().unwrap_or_default(),
        })
    }

    /// Whether the service serves this profile's browser calls.
    pub(crate) fn serves(&self, profile: &ProfileConfig) -> bool {
        match profile.browser.as_deref() {
            Some("shared") => true,
            Some("isolated") => false,
            _ => profile.container_for("browser").is_none_or(|c| c.runtime_type != "gull"),
        }
    }

    fn post(&self, path: &str, timeout_s: u32, body: serde_json::Value) -> reqwest::RequestBuilder {
        let req = self.http.post(format!("{}{path}", self.endpoint)).timeout(Duration::from_secs(timeout_s.into()) + MARGIN).json(&body);
        match &self.token {
            Some(t) => req.header("X-Bay-Token", t),
            None => req,
        }
    }

    /// Runs a browser call (`BrowserExec` or `BrowserBatch`) for `sandbox`.
    /// A service that answers with an HTTP error gives a failed result
    /// carrying the status, as Shipyard Neo does; one that cannot be reached
    /// is a 502 `ship_error`.
    pub(crate) async fn call(&self, sandbox: &Sandbox, call: CapabilityCall) -> BayResult<CapabilityOutcome> {
        let unreachable = |e: reqwest::Error| BayError::ship(format!("Gull request error: {e}"));
        match call {
            CapabilityCall::BrowserExec { cmd, timeout_s } => {
                let body = json!({ "cmd": cmd, "timeout": timeout_s, "sandbox_id": sandbox.id, "cargo_id": sandbox.cargo_id });
                let resp = self.post("/exec", timeout_s, body).send().await.map_err(unreachable)?;
                let status = resp.status();
                if !status.is_success() {
                    let code = i32::from(status.as_u16());
                    return Ok(CapabilityOutcome::BrowserExec(BrowserExecResult {
                        stdout: String::new(),
                        stderr: format!("Gull returned HTTP {code}"),
                        exit_code: code,
                    }));
                }
                Ok(CapabilityOutcome::BrowserExec(resp.json::<BrowserExecResult>().await.map_err(unreachable)?))
            }
            CapabilityCall::BrowserBatch { commands, timeout_s, stop_on_error } => {
                let first = commands.first().cloned().unwrap_or_default();
                let total = commands.len() as u32;
                let body = json!({
                    "commands": commands, "timeout": timeout_s, "stop_on_error": stop_on_error,
                    "sandbox_id": sandbox.id, "cargo_id": sandbox.cargo_id,
                });
                let resp = self.post("/exec_batch", timeout_s, body).send().await.map_err(unreachable)?;
                let status = resp.status();
                if !status.is_success() {
                    let code = i32::from(status.as_u16());
                    let step = BrowserStep {
                        cmd: first,
                        stdout: String::new(),
                        stderr: format!("Gull returned HTTP {code}"),
                        exit_code: code,
                        step_index: 0,
                        duration_ms: 0,
                    };
                    return Ok(CapabilityOutcome::BrowserBatch(BrowserBatchResult {
                        results: vec![step],
                        total_steps: total,
                        completed_steps: 1,
                        success: false,
                        duration_ms: 0,
                    }));
                }
                Ok(CapabilityOutcome::BrowserBatch(resp.json::<BrowserBatchResult>().await.map_err(unreachable)?))
            }
            other => Err(BayError::internal(format!("the shared browser serves browser calls, not {}", other.capability()))),
        }
    }

    /// Ends the sandbox's browser on the service (best effort: a sandbox is
    /// deleted whether or not the service answers; its idle timeout ends a
    /// browser it missed).
    pub(crate) async fn forget(&self, sandbox_id: &str) {
        let mut req = self.http.delete(format!("{}/sessions/{sandbox_id}", self.endpoint)).timeout(Duration::from_secs(15));
        if let Some(t) = &self.token {
            req = req.header("X-Bay-Token", t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => tracing::debug!(sandbox_id, "shared browser session ended"),
            Ok(r) => tracing::warn!(sandbox_id, status = %r.status(), "the shared browser did not end the sandbox's session"),
            Err(e) => tracing::warn!(sandbox_id, error = %e, "cannot reach the shared browser to end the sandbox's session"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(yaml: &str) -> ProfileConfig {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn the_service_serves_profiles_without_a_gull_of_their_own_or_saying_shared() {
        let cfg = BrowserServiceConfig { enabled: true, endpoint: "http://g:8115/".into(), token: None };
        let s = SharedBrowser::new(&cfg).unwrap();
        assert_eq!(s.endpoint, "http://g:8115");
        // Shipyard Neo's deployed browser-python: one Ship listing browser.
        assert!(s.serves(&profile("id: a\nimage: ship\ncapabilities: [python, browser]\nbrowser: shared\n")));
        assert!(s.serves(&profile("id: a\nimage: ship\ncapabilities: [python, browser]\n")));
        let own_gull = "containers:\n  - {name: ship, image: ship, capabilities: [python]}\n  - {name: browser, image: gull, runtime_type: gull, runtime_port: 8115, capabilities: [browser]}\n";
        assert!(!s.serves(&profile(&format!("id: a\n{own_gull}"))));
        assert!(s.serves(&profile(&format!("id: a\nbrowser: shared\n{own_gull}"))));
        assert!(!s.serves(&profile("id: a\nimage: ship\ncapabilities: [browser]\nbrowser: isolated\n")));
        assert!(SharedBrowser::new(&BrowserServiceConfig { enabled: false, ..cfg }).is_none());
    }
}
