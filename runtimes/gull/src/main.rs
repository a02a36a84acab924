//! Gull: the HTTP runtime inside a sandbox's browser container. It drives a
//! real headless Chromium for agents through the `agent-browser` CLI, with
//! the same HTTP API as Shipyard Neo's Gull so the two are interchangeable.

mod browser;
mod config;
mod error;
mod exec;
mod meta;
mod text;

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::{delete, get, post},
};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::{
    browser::{AgentBrowser, Browser},
    config::Config,
    error::AppError,
};

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub browser: Arc<dyn Browser>,
}

/// After SIGTERM, how long in-flight requests get before the server stops
/// waiting for them (their CLI processes are killed right away). The browser
/// is closed after that; `docker stop` waits 10 s in all before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        // Colours only for a terminal, not in `docker logs`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    // Must happen before any thread exists (fork in a multi-threaded
    // process is unsafe), i.e. before the tokio runtime is built.
    pid1::supervise_if_pid1();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "gull failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let cfg = Config::from_env();
    cfg.prepare_dirs()?;
    match config::install_skills(&cfg.skills_dir, &cfg.workspace) {
        Ok(n) if n > 0 => info!(count = n, "built-in skills installed"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot install built-in skills"),
    }
    let cfg = Arc::new(cfg);
    let browser = Arc::new(AgentBrowser::new(cfg.clone()));
    if browser.daemon_pid(&cfg.session).is_none() {
        // A new container: whatever Chromium left in the profile belongs to
        // a host that no longer exists.
        browser.remove_stale_locks();
    }
    if !config::is_executable(&cfg.agent_browser) {
        warn!(path = %cfg.agent_browser.display(), "agent-browser is not executable; /health reports unhealthy");
    }
    if !config::is_executable(&cfg.chromium) {
        warn!(path = %cfg.chromium.display(), "Chromium is not executable; /health reports degraded");
    }
    let state = AppState { cfg: cfg.clone(), browser: browser.clone() };

    let addr: SocketAddr = format!("{}:{}", cfg.host, cfg.port).parse().or_else(|_| format!("[{}]:{}", cfg.host, cfg.port).parse())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(
        %addr,
        session = %cfg.session,
        profile = %cfg.profile_dir.display(),
        agent_browser = %cfg.agent_browser.display(),
        chromium = %cfg.chromium.display(),
        version = meta::VERSION,
        "gull listening (the browser starts with the first command)"
    );

    let stop = tokio_util::sync::CancellationToken::new();
    let stop_for_signal = stop.clone();
    let b2 = browser.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested");
        // In-flight commands return at once; their daemon keeps running.
        b2.kill_inflight();
        stop_for_signal.cancel();
    });

    let server = axum::serve(listener, router(state)).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::select! {
        r = server => r?,
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => warn!("in-flight requests did not finish in time"),
    }
    // Chromium writes cookies and storage to the profile when it closes.
    browser.shutdown().await;
    info!("gull stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
        _ = hup.recv() => {},
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(meta::root))
        .route("/health", get(meta::health))
        .route("/meta", get(meta::meta))
        .route("/exec", post(exec::exec_handler))
        .route("/exec_batch", post(exec::batch_handler))
        .route("/sessions/{sandbox_id}", delete(meta::delete_session))
        .fallback(|| async { AppError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async { AppError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One debug line per request (RUST_LOG=gull=debug), warn for 5xx.
async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let t = std::time::Instant::now();
    let resp = next.run(req).await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if resp.status().is_server_error() {
        warn!(%method, %path, status = resp.status().as_u16(), ms, "request failed");
    } else {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), ms, "request");
    }
    resp
}

/// PID 1 duty. In a container the server is PID 1, which (a) receives no
/// default-action signals, so SIGTERM would be ignored without a handler,
/// and (b) inherits every orphan: agent-browser's daemon (its CLI exits
/// right after starting it) and Chromium's processes are reparented to it
/// and must be reaped or they stay zombies. A tiny supervisor keeps these
/// concerns out of the server.
mod pid1 {
    use super::*;

    static CHILD: AtomicI32 = AtomicI32::new(0);

    extern "C" fn forward(sig: libc::c_int) {
        let child = CHILD.load(Ordering::SeqCst);
        if child > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe {
                libc::kill(child, sig);
            }
        }
    }

    /// Returns immediately unless this process is PID 1. As PID 1 it forks:
    /// the child returns and runs the server; the parent never returns.
    pub fn supervise_if_pid1() {
        // SAFETY: plain syscalls; no threads exist yet.
        unsafe {
            if libc::getpid() != 1 {
                return;
            }
            let child = libc::fork();
            if child < 0 {
                error!("fork failed; running without a PID 1 supervisor");
                return;
            }
            if child == 0 {
                return;
            }
            CHILD.store(child, Ordering::SeqCst);
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = forward as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            loop {
                let mut status: libc::c_int = 0;
                let pid = libc::waitpid(-1, &mut status, 0);
                if pid == child {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        1
                    };
                    std::process::exit(code);
                }
                if pid < 0 {
                    let err = std::io::Error::last_os_error();
                    if err.raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    // ECHILD: the server is gone without us noticing.
                    std::process::exit(1);
                }
                // Any other pid: a reaped orphan.
            }
        }
    }
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
        async fn run(&self, args: Vec<String>, _t: Duration) -> RunOutput {
            RunOutput { stdout: args.join(" "), stderr: String::new(), exit_code: 0 }
        }
        async fn close(&self, _s: &str) -> RunOutput {
            RunOutput::default()
        }
        fn status(&self) -> BrowserStatus {
            BrowserStatus { active: true, ready: false }
        }
    }

    async fn call(method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let vars = [("GULL_AGENT_BROWSER_BIN", "/bin/sh"), ("GULL_CHROMIUM_BIN", "/nonexistent"), ("BAY_SANDBOX_ID", "sb")];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        let app = router(AppState { cfg: Arc::new(cfg), browser: Arc::new(Fake) });
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
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
}
