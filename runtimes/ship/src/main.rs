//! Ship: the HTTP runtime inside each sandbox container. It serves Python
//! (a real Jupyter kernel), shell and filesystem operations to Bay, with the
//! same HTTP API as Shipyard Neo's Ship so the two images are interchangeable.

mod config;
mod error;
mod fs;
mod kernel;
mod meta;
mod paths;
mod shell;

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
    extract::{DefaultBodyLimit, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::{delete, get, post},
};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::{config::Config, error::AppError, kernel::KernelManager, shell::ShellManager};

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub kernel: Arc<KernelManager>,
    pub shell: Arc<ShellManager>,
}

/// JSON bodies (write_file content) may be large; uploads have no limit.
const JSON_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// After SIGTERM, how long in-flight requests get before the process exits
/// anyway (`docker stop` waits 10 s before SIGKILL).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,zeromq=warn"))).init();

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
            error!(error = %e, "ship failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let mut cfg = Config::from_env();
    cfg.prepare_workspace()?;
    startup_chores(&mut cfg);
    let cfg = Arc::new(cfg);

    let kernel = Arc::new(KernelManager::new(kernel::KernelSettings {
        python: cfg.python.clone(),
        cwd: cfg.workspace_canon.clone(),
        workspace_display: cfg.workspace.to_string_lossy().into_owned(),
        env: cfg.child_env(),
    }));
    let shell = Arc::new(ShellManager::new(cfg.clone()));
    let state = AppState { cfg: cfg.clone(), kernel: kernel.clone(), shell: shell.clone() };

    let addr: SocketAddr = format!("{}:{}", cfg.host, cfg.port).parse().or_else(|_| format!("[{}]:{}", cfg.host, cfg.port).parse())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(%addr, workspace = %cfg.workspace_canon.display(), version = meta::VERSION, "ship listening");

    // Pre-warm: the first /ipython/exec should not pay for the kernel start.
    tokio::spawn(kernel.clone().ensure_started());

    // Cancelled on SIGTERM/SIGINT/SIGHUP (a token, unlike Notify, cannot
    // miss a signal that arrives before anyone waits).
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_for_signal = stop.clone();
    let (k2, s2) = (kernel.clone(), shell.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested; stopping kernel and commands");
        // Killing them first makes in-flight requests return right away.
        k2.kill_now();
        s2.kill_all();
        stop_for_signal.cancel();
    });

    let server = axum::serve(listener, router(state)).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::select! {
        r = server => r?,
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => warn!("in-flight requests did not finish in time; exiting anyway"),
    }
    kernel.kill_now();
    shell.kill_all();
    info!("ship stopped");
    Ok(())
}

/// Profile env file, built-in skills and matplotlib config; failures are
/// logged, not fatal (the API is still useful without them).
fn startup_chores(cfg: &mut Config) {
    if let Err(e) = config::write_env_file(cfg) {
        warn!(error = %e, "cannot write the profile env file");
    }
    match config::install_skills(cfg) {
        Ok(n) if n > 0 => info!(count = n, "built-in skills installed"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot install built-in skills"),
    }
    match config::prepare_mplconfig(cfg) {
        Ok(dir) => cfg.mplconfig_dir = Some(dir),
        Err(e) => warn!(error = %e, "cannot prepare the matplotlib config dir"),
    }
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
        .route("/fs/upload", post(fs::upload).layer(DefaultBodyLimit::disable()))
        .route("/fs/download", get(fs::download))
        .fallback(|| async { AppError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async { AppError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One debug line per request (RUST_LOG=ship=debug), warn for 5xx.
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
/// and (b) inherits every orphan: processes started in the background by
/// shell commands are reparented to it and must be reaped or they stay
/// zombies. A tiny supervisor keeps these concerns out of the server.
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
