//! Ship: the HTTP runtime inside each sandbox container. It serves Python
//! (a real Jupyter kernel), shell and filesystem operations to Bay, with the
//! same HTTP API as Shipyard Neo's Ship so the two images are interchangeable.

mod config;
mod fs;
mod kernel;
mod meta;
mod quota;
mod shell;

use std::{process::ExitCode, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    routing::{delete, get, post},
};
use runtime_common::{
    beneath::Workspace,
    error::AppError,
    limits::MAX_JSON_BODY,
    server::{self, log_request},
    token::{RuntimeToken, require_token},
};
use tracing::{info, warn};

use crate::{config::Config, kernel::KernelManager, quota::Quota, shell::ShellManager};

/// Shared handler state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub cfg: Arc<Config>,
    /// The workspace, held open: every filesystem operation goes through it.
    pub ws: Arc<Workspace>,
    pub quota: Arc<Quota>,
    pub kernel: Arc<KernelManager>,
    pub shell: Arc<ShellManager>,
}
/// After SIGTERM, how long in-flight requests get before the process exits
/// anyway (`docker stop` waits 10 s before SIGKILL).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    server::run("ship", "info,zeromq=warn", serve)
}

async fn serve(token: RuntimeToken) -> anyhow::Result<()> {
    let mut cfg = Config::from_env();
    cfg.prepare_workspace()?;
    let ws = Arc::new(Workspace::open(&cfg.workspace)?);
    startup_chores(&mut cfg, &ws);
    let cfg = Arc::new(cfg);
    let quota = Arc::new(Quota::new(ws.clone(), cfg.cargo_limit));

    let kernel = Arc::new(KernelManager::new(kernel::KernelSettings {
        python: cfg.python.clone(),
        cwd: cfg.workspace_canon.clone(),
        workspace_display: cfg.workspace.to_string_lossy().into_owned(),
        env: cfg.child_env(),
    }));
    let shell = Arc::new(ShellManager::new(cfg.clone(), ws.clone()));
    let state = AppState {
        cfg: cfg.clone(),
        ws,
        quota,
        kernel: kernel.clone(),
        shell: shell.clone(),
    };

    let (listener, addr) = server::bind(&cfg.host, cfg.port).await?;
    info!(%addr, workspace = %cfg.workspace_canon.display(), version = meta::VERSION,
        token = token.is_enabled(), cargo_limit = ?cfg.cargo_limit, "ship listening");

    // Pre-warm: the first /ipython/exec should not pay for the kernel start.
    tokio::spawn(kernel.clone().ensure_started());

    let (k2, s2) = (kernel.clone(), shell.clone());
    server::serve_until_signal(listener, router(state, token), SHUTDOWN_GRACE, move || {
        // Killing them first makes in-flight requests return right away.
        k2.kill_now();
        s2.kill_all();
    })
    .await?;
    kernel.kill_now();
    shell.kill_all();
    info!("ship stopped");
    Ok(())
}

/// Profile env file, built-in skills and matplotlib config; failures are
/// logged, not fatal (the API is still useful without them).
fn startup_chores(cfg: &mut Config, ws: &Workspace) {
    if let Err(e) = config::write_env_file(cfg, ws) {
        warn!(error = %e, "cannot write the profile env file");
    }
    match runtime_common::skills::install_skills(&cfg.skills_dir, ws) {
        Ok(n) if n > 0 => info!(count = n, "built-in skills installed"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot install built-in skills"),
    }
    match config::prepare_mplconfig(cfg) {
        Ok(dir) => cfg.mplconfig_dir = Some(dir),
        Err(e) => warn!(error = %e, "cannot prepare the matplotlib config dir"),
    }
}

fn router(state: AppState, token: RuntimeToken) -> Router {
    Router::new()
        .route("/", get(meta::root))
        .route("/health", get(meta::health))
        .route("/stat", get(meta::stat))
        .route("/meta", get(meta::meta))
        .route("/ipython/exec", post(kernel::exec_handler))
        .route("/ipython/kernel/status", get(kernel::status_handler))
        .route("/ipython/kernel/restart", post(kernel::restart_handler))
        .route("/ipython/kernel", delete(kernel::delete_handler))
        .route("/shell/exec", post(shell::exec_handler))
        .route("/shell/processes", get(shell::processes_handler))
        .route("/fs/create_file", post(fs::create_file))
        .route("/fs/read_file", post(fs::read_file))
        .route("/fs/write_file", post(fs::write_file))
        .route("/fs/edit_file", post(fs::edit_file))
        .route("/fs/delete_file", post(fs::delete_file))
        .route("/fs/list_dir", post(fs::list_dir))
        .route(
            "/fs/upload",
            post(fs::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/fs/download", get(fs::download))
        .fallback(|| async { AppError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async {
            AppError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Before any extractor runs: an unauthenticated body is never read.
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}
