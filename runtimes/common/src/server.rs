//! The process and HTTP server scaffolding both runtimes share: `main`
//! ([`run`]), binding ([`bind`]), serving until a signal with a grace period
//! ([`serve_until_signal`]), and the request log.

use std::{fmt::Display, future::Future, net::SocketAddr, process::ExitCode, time::Duration};

use axum::{Router, extract::Request, middleware::Next, response::Response};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::{pid1, token::RuntimeToken};

/// The whole of a runtime's `main`: takes the token out of the environment
/// and becomes the PID-1 supervisor while the process has a single thread,
/// then runs `serve` on a multi-threaded tokio runtime.
pub fn run<F, Fut, E>(name: &str, default_filter: &str, serve: F) -> ExitCode
where
    F: FnOnce(RuntimeToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    // First, while this is the only thread: no child may inherit the secret.
    let token = RuntimeToken::take_from_env();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)))
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
    match runtime.block_on(serve(token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Binds `host:port` (an IPv6 host may come without brackets).
pub async fn bind(host: &str, port: u16) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok((tokio::net::TcpListener::bind(addr).await?, addr))
}

/// Serves `app` until SIGTERM/SIGINT/SIGHUP. On the signal `on_signal` runs
/// first (killing running work makes in-flight requests return right away),
/// then in-flight requests get `grace` to finish (`docker stop` waits 10 s
/// in all before SIGKILL).
pub async fn serve_until_signal(
    listener: tokio::net::TcpListener,
    app: Router,
    grace: Duration,
    on_signal: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    // A token, unlike Notify, cannot miss a signal that arrives before
    // anyone waits.
    let stop = CancellationToken::new();
    let stop_for_signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested");
        on_signal();
        stop_for_signal.cancel();
    });
    // Streamed answers are many small writes: without TCP_NODELAY each
    // waits for the previous one's ACK (~40 ms on Linux).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
    tokio::select! {
        r = server => r?,
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        } => warn!("in-flight requests did not finish in time"),
    }
    Ok(())
}

/// One debug line per request (`RUST_LOG=runtime_common=debug`), a warning
/// for every 5xx.
pub async fn log_request(req: Request, next: Next) -> Response {
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

/// Resolves on SIGTERM, SIGINT or SIGHUP.
pub async fn wait_for_signal() {
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
