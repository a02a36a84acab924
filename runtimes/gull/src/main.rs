//! Gull: the HTTP runtime inside a sandbox's browser container. It drives a
//! real headless Chromium for agents through the `agent-browser` CLI, with
//! the same HTTP API as Shipyard Neo's Gull so the two are interchangeable.

mod browser;
mod config;
mod exec;
mod loopback;
mod meta;
mod shared;
mod staging;

use std::{process::ExitCode, sync::Arc, time::Duration};

use axum::{
    Router,
    http::StatusCode,
    middleware,
    routing::{delete, get, post},
};
use runtime_common::{
    error::AppError,
    server::{self, log_request},
    token::{RuntimeToken, require_token},
};
use tracing::{info, warn};

use crate::{
    browser::{AgentBrowser, Browser},
    config::Config,
};

/// Shared handler state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub cfg: Arc<Config>,
    pub browser: Arc<dyn Browser>,
}

/// After SIGTERM, how long in-flight requests get before the server stops
/// waiting for them (their CLI processes are killed right away). The browser
/// is closed after that; `docker stop` waits 10 s in all before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    server::run("gull", "info", serve)
}

async fn serve(token: RuntimeToken) -> anyhow::Result<()> {
    let cfg = Config::from_env().map_err(anyhow::Error::msg)?;
    if cfg.shared.is_some() && !token.is_enabled() {
        // One Gull serves every sandbox: without the secret, any of them (or
        // a page in any sandbox's browser) could call it for another.
        anyhow::bail!("GULL_MODE=shared needs BAY_RUNTIME_TOKEN (the same value as Bay's browser_service.token)");
    }
    let ws = Arc::new(cfg.prepare_dirs()?);
    match runtime_common::skills::install_skills(&cfg.skills_dir, &ws) {
        Ok(n) if n > 0 => info!(count = n, "built-in skills installed"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot install built-in skills"),
    }
    let cfg = Arc::new(cfg);
    let browser = Arc::new(AgentBrowser::new(cfg.clone(), ws));
    if browser.daemon_pid(&cfg.session).is_none() {
        // A new container: whatever Chromium left in the profile belongs to
        // a host that no longer exists.
        browser.remove_stale_locks();
    }
    if !config::is_executable(&cfg.agent_browser) {
        warn!(path = %cfg.agent_browser.display(), "agent-browser is not executable; /health reports unhealthy");
    }
    if !config::is_executable(&cfg.chromium) {
        let health = if cfg.shared.is_some() { "healthy (shared mode)" } else { "degraded" };
        warn!(path = %cfg.chromium.display(), health, "Chromium is not executable; browsers will not start");
    }
    let state = AppState { cfg: cfg.clone(), browser: browser.clone() };

    let (listener, addr) = server::bind(&cfg.host, cfg.port).await?;
    if let Some(sh) = &cfg.shared {
        info!(cargos = %sh.cargos_dir.display(), max_sessions = sh.max_sessions, run_dir = %sh.run_dir.display(), "shared mode: one browser session per sandbox");
    }
    info!(
        %addr,
        session = %cfg.session,
        profile = %cfg.profile_dir.display(),
        agent_browser = %cfg.agent_browser.display(),
        chromium = %cfg.chromium.display(),
        version = meta::VERSION,
        token = token.is_enabled(),
        "gull listening (the browser starts with the first command)"
    );

    let b2 = browser.clone();
    server::serve_until_signal(listener, router(state, token), SHUTDOWN_GRACE, move || {
        // In-flight commands return at once; their daemon keeps running.
        b2.kill_inflight();
    })
    .await?;
    // Chromium writes cookies and storage to the profile when it closes.
    browser.shutdown().await;
    info!("gull stopped");
    Ok(())
}

fn router(state: AppState, token: RuntimeToken) -> Router {
    Router::new()
        .route("/", get(meta::root))
        .route("/health", get(meta::health))
        .route("/meta", get(meta::meta))
        .route("/exec", post(exec::exec_handler))
        .route("/exec_batch", post(exec::batch_handler))
        .route("/sessions/{sandbox_id}", delete(meta::delete_session))
        .fallback(|| async { AppError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async { AppError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::{BrowserStatus, RunOutput};
    use axum::body::Body;
    use serde_json::Value;
    use tower::ServiceExt;

    struct Fake;

    #[async_trait::async_trait]
    impl Browser for Fake {
        async fn run(&self, target: Option<&crate::shared::SandboxTarget>, args: Vec<String>, _t: Duration) -> RunOutput {
            let prefix = target.map(|t| format!("[{}] ", t.sandbox_id)).unwrap_or_default();
            RunOutput { stdout: format!("{prefix}{}", args.join(" ")), stderr: String::new(), exit_code: 0 }
        }
        async fn close(&self, _s: &str) -> RunOutput {
            RunOutput::default()
        }
        fn status(&self) -> BrowserStatus {
            BrowserStatus { active: true, ready: false }
        }
    }

    async fn call(method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        call_with(RuntimeToken::default(), None, method, uri, body).await
    }

    async fn call_with(token: RuntimeToken, presented: Option<&str>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let vars = [("GULL_AGENT_BROWSER_BIN", "/bin/sh"), ("GULL_CHROMIUM_BIN", "/nonexistent"), ("BAY_SANDBOX_ID", "sb")];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
        call_cfg(cfg, token, presented, method, uri, body).await
    }

    async fn call_cfg(cfg: Config, token: RuntimeToken, presented: Option<&str>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let app = router(AppState { cfg: Arc::new(cfg), browser: Arc::new(Fake) }, token);
        let mut req = axum::http::Request::builder().method(method).uri(uri).header("content-type", "application/json");
        if let Some(t) = presented {
            req = req.header("X-Bay-Token", t);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn endpoints() {
        let (s, v) = call("GET", "/", "").await;
        assert_eq!((s, v["message"].as_str()), (StatusCode::OK, Some("Gull API is running")));
        let (s, v) = call("POST", "/exec", r#"{"cmd":"fill @e1 'a b'"}"#).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"stdout": "fill @e1 a b", "stderr": "", "exit_code": 0}));
        let (s, v) = call("POST", "/exec", r#"{"cmd":"x","timeout":301}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(v["detail"].as_str().unwrap().contains("300"));
        let (s, _) = call("POST", "/exec", r#"{"timeout":3}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = call("POST", "/exec_batch", r#"{"commands":[]}"#).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, v) = call("POST", "/exec_batch", r#"{"commands":["a","b 'c"],"timeout":600}"#).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!((v["total_steps"].as_u64(), v["completed_steps"].as_u64(), v["success"].as_bool()), (Some(2), Some(2), Some(false)));
        assert_eq!(v["results"][1]["exit_code"], 2);
        let (_, v) = call("GET", "/health", "").await;
        // /bin/sh stands in for agent-browser; Chromium is missing.
        assert_eq!(
            v,
            serde_json::json!({"status": "degraded", "browser_active": true, "browser_ready": false, "session": "sb", "version": meta::VERSION})
        );
        let (s, v) = call("DELETE", "/sessions/sb", "").await;
        assert_eq!((s, v), (StatusCode::OK, serde_json::json!({"sandbox_id": "sb", "destroyed": true})));
        let (s, v) = call("GET", "/nope", "").await;
        assert_eq!((s, v["detail"].as_str()), (StatusCode::NOT_FOUND, Some("Not Found")));
        let (s, _) = call("GET", "/exec", "").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn shared_mode_requests() {
        let d = tempfile::tempdir().unwrap();
        let cargos = d.path().join("cargos");
        std::fs::create_dir_all(cargos.join("bay-cargo-c1")).unwrap();
        let vars = [
            ("GULL_MODE", "shared".to_string()),
            ("GULL_AGENT_BROWSER_BIN", "/bin/sh".into()),
            // Missing Chromium: shared mode is still healthy (browsers
            // start per sandbox on demand).
            ("GULL_CHROMIUM_BIN", "/nonexistent".into()),
            ("GULL_CARGOS_DIR", cargos.to_string_lossy().into_owned()),
            ("GULL_RUN_DIR", d.path().join("run").to_string_lossy().into_owned()),
        ];
        let call = |method: &'static str, uri: &'static str, body: String| {
            let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
            async move { call_cfg(cfg, RuntimeToken::default(), None, method, uri, &body).await }
        };
        let exec = |cmd: &str, ids: &str| call("POST", "/exec", format!(r#"{{"cmd":{},{ids}}}"#, serde_json::json!(cmd)));
        let ids = r#""sandbox_id":"sb-1","cargo_id":"c1""#;
        let c1 = cargos.join("bay-cargo-c1").display().to_string();
        // The sandbox's session, its path translated (the fake echoes argv).
        let (s, v) = exec("screenshot /workspace/a.png", ids).await;
        assert_eq!((s, v["exit_code"].as_i64()), (StatusCode::OK, Some(0)));
        assert_eq!(v["stdout"], format!("[sb-1] screenshot {c1}/a.png"));
        // Without ids: refused (it would run in no sandbox's confinement).
        let (s, v) = exec("open file:///workspace/x.html", r#""timeout":5"#).await;
        assert_eq!((s, v["exit_code"].as_i64()), (StatusCode::OK, Some(2)), "{v}");
        assert!(v["stderr"].as_str().unwrap().contains("needs sandbox_id and cargo_id"), "{v}");
        // Refusals: HTTP 200, exit code 2, nothing run.
        for (cmd, ids, err) in [
            ("get title", r#""sandbox_id":"sb-1""#, "go together"),
            ("get title", r#""sandbox_id":"../x","cargo_id":"c1""#, "Invalid sandbox_id"),
            ("get title", r#""sandbox_id":"sb-1","cargo_id":"""#, "Invalid cargo_id"),
            ("get title", r#""sandbox_id":"sb-1","cargo_id":"c9""#, "cargo c9 is not mounted at"),
            ("--cdp 9222 snapshot", ids, "`--cdp` is refused"),
            ("get title --session=other", ids, "`--session` is refused"),
            ("session list", ids, "`session` is refused"),
            ("open FILE:///cargos/bay-cargo-c2/secret", ids, "file: URLs are refused"),
            ("open 127.0.0.1:9222/json/list", ids, "loopback address"),
            ("screenshot /workspace/../bay-cargo-c2/x.png", ids, "refused in shared mode"),
            ("upload @e1 /etc/passwd", ids, "refused in shared mode"),
        ] {
            let (s, v) = exec(cmd, ids).await;
            assert_eq!((s, v["exit_code"].as_i64(), v["stdout"].as_str()), (StatusCode::OK, Some(2), Some("")), "{cmd} {ids}");
            assert!(v["stderr"].as_str().unwrap().contains(err), "{cmd}: {v}");
        }
        let (s, v) = call("POST", "/exec_batch", r#"{"commands":["get title","get url"],"sandbox_id":"sb-1","cargo_id":"nope"}"#.into()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!((v["total_steps"].as_u64(), v["completed_steps"].as_u64(), v["success"].as_bool()), (Some(2), Some(1), Some(false)));
        assert_eq!(v["results"][0]["exit_code"], 2);
        let (_, v) = call("POST", "/exec_batch", format!(r#"{{"commands":["pdf r.pdf","inspect","get url"],{ids}}}"#)).await;
        assert_eq!(v["results"][0]["stdout"], format!("[sb-1] pdf {c1}/r.pdf"));
        assert_eq!((v["completed_steps"].as_u64(), v["results"][1]["exit_code"].as_i64()), (Some(2), Some(2)));
        let (_, v) = call("GET", "/health", String::new()).await;
        assert_eq!((v["status"].as_str(), v["session"].as_str()), (Some("healthy"), Some("shared")));
        let (s, v) = call("DELETE", "/sessions/sb-1", String::new()).await;
        assert_eq!((s, v), (StatusCode::OK, serde_json::json!({"sandbox_id": "sb-1", "destroyed": true})));
        let (s, v) = call("DELETE", "/sessions/a.b", String::new()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["detail"].as_str().unwrap().starts_with("Invalid sandbox_id"));
    }

    #[tokio::test]
    async fn token_guards_everything_but_health() {
        let t = || RuntimeToken::new(Some("tok"));
        let (s, v) = call_with(t(), None, "POST", "/exec", r#"{"cmd":"x"}"#).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(v, serde_json::json!({"detail": "Missing or invalid X-Bay-Token header"}));
        let (s, _) = call_with(t(), Some("nope"), "DELETE", "/sessions/sb", "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = call_with(t(), Some("tok"), "POST", "/exec", r#"{"cmd":"x"}"#).await;
        assert_eq!((s, v["stdout"].as_str()), (StatusCode::OK, Some("x")));
        let (s, _) = call_with(t(), None, "GET", "/health", "").await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = call_with(t(), None, "GET", "/meta", "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}
