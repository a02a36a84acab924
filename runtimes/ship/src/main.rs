//! Ship: the HTTP runtime inside each sandbox container. It serves Python
//! (an IPython kernel, see `kernel.rs`), shell and filesystem operations to Bay, with the
//! same HTTP API as Shipyard Neo's Ship so the two images are interchangeable.

mod config;
mod fs;
mod kernel;
mod meta;
mod processes;
mod pty;
mod quota;
mod shell;
mod stream;
mod terminal;
#[cfg(test)]
mod testutil;
mod tunnel;

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

use crate::{config::Config, kernel::KernelManager, processes::ProcessManager, quota::Quota, shell::ShellManager};

/// Shared handler state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub cfg: Arc<Config>,
    /// The workspace, held open: every filesystem operation goes through it.
    pub ws: Arc<Workspace>,
    pub quota: Arc<Quota>,
    pub kernel: Arc<KernelManager>,
    pub shell: Arc<ShellManager>,
    /// Background processes with scrollback (`processes.rs`).
    pub processes: Arc<ProcessManager>,
}
/// After SIGTERM, how long in-flight requests get before the process exits
/// anyway (`docker stop` waits 10 s before SIGKILL).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    server::run("ship", "info", serve)
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
    let processes = Arc::new(ProcessManager::new(shell.clone(), cfg.scrollback_bytes));
    let state = AppState { cfg: cfg.clone(), ws, quota, kernel: kernel.clone(), shell: shell.clone(), processes };

    let (listener, addr) = server::bind(&cfg.host, cfg.port).await?;
    info!(%addr, workspace = %cfg.workspace_canon.display(), version = meta::VERSION,
        token = token.is_enabled(), cargo_limit = ?cfg.cargo_limit, "ship listening");

    // The kernel starts with the first /ipython/exec, unless the host asks
    // for it now (a warm-pool sandbox, whose first exec should not wait):
    // an idle sandbox then costs only this server's memory.
    if cfg.kernel_prewarm {
        kernel.prewarm();
    }

    let (k2, s2) = (kernel.clone(), shell.clone());
    server::serve_until_signal(listener, router(state, token), SHUTDOWN_GRACE, move || {
        // Killing them first makes in-flight requests return right away
        // (streamed commands, background processes and terminals are
        // tracked by the shell manager too).
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
        .route("/ipython/exec/stream", post(stream::python_stream_handler))
        .route("/ipython/kernel/status", get(kernel::status_handler))
        .route("/ipython/kernel/restart", post(kernel::restart_handler))
        .route("/ipython/kernel", delete(kernel::delete_handler))
        .route("/shell/exec", post(shell::exec_handler))
        .route("/shell/processes", get(shell::processes_handler))
        // Bay's live exec (`stream.rs`).
        .route("/shell/exec/stream", post(stream::exec_stream_handler))
        .route("/processes", get(processes::list_handler).post(processes::start_handler))
        .route("/processes/{id}", get(processes::get_handler))
        .route("/processes/{id}/output", get(processes::output_handler))
        .route("/processes/{id}/stdin", post(processes::stdin_handler))
        .route("/processes/{id}/signal", post(processes::signal_handler))
        .route("/processes/{id}/resize", post(processes::resize_handler))
        .route("/term/ws", get(terminal::ws_handler))
        .route("/proxy/tcp/{port}", get(tunnel::tcp_handler))
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
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Before any extractor runs: an unauthenticated body is never read.
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use runtime_common::limits::{MAX_PYTHON_CODE, MAX_SHELL_COMMAND, MAX_TEXT_FILE};
    use serde_json::{Value, json};
    use std::path::Path;
    use tower::ServiceExt;

    /// The real router and state on a temp workspace (the kernel is not
    /// started until a cell runs).
    fn app(dir: &Path, vars: &[(&str, &str)], token: RuntimeToken) -> Router {
        app_with_kernel(dir, vars, token, &[]).0
    }

    /// [`app`], with variables for the kernel's environment, and its kernel.
    fn app_with_kernel(dir: &Path, vars: &[(&str, &str)], token: RuntimeToken, kernel_env: &[(&str, &str)]) -> (Router, Arc<KernelManager>) {
        let state = crate::testutil::state_with(dir, vars, kernel_env);
        let kernel = state.kernel.clone();
        (router(state, token), kernel)
    }

    async fn send(app: &Router, req: axum::http::Request<Body>) -> (u16, Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(app: &Router, uri: &str, body: Value) -> (u16, Value) {
        let req = axum::http::Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
        send(app, req).await
    }

    async fn upload(app: &Router, path: &str, data: &[u8]) -> (u16, Value) {
        let b = "ship-test-boundary";
        let mut body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file_path\"\r\n\r\n{path}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        let req = axum::http::Request::post("/fs/upload")
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(Body::from(body))
            .unwrap();
        send(app, req).await
    }

    #[tokio::test]
    async fn token_guards_the_api() {
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[], RuntimeToken::new(Some("t0k")));
        let list = |token: Option<&'static str>| {
            let mut r = axum::http::Request::post("/fs/list_dir").header("content-type", "application/json");
            if let Some(t) = token {
                r = r.header("x-bay-token", t);
            }
            r.body(Body::from("{}")).unwrap()
        };
        assert_eq!(send(&a, list(None)).await, (401, json!({"detail": "Missing or invalid X-Bay-Token header"})));
        assert_eq!(send(&a, list(Some("t0"))).await.0, 401);
        assert_eq!(send(&a, list(Some("t0k"))).await.0, 200);
        let health = axum::http::Request::get("/health").body(Body::empty()).unwrap();
        assert_eq!(send(&a, health).await.0, 200);
        // Unset: as before.
        let a = app(d.path(), &[], RuntimeToken::default());
        assert_eq!(send(&a, list(None)).await.0, 200);
    }

    #[tokio::test]
    async fn cargo_limit_refuses_api_writes() {
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[("BAY_CARGO_LIMIT_BYTES", "1000")], RuntimeToken::default());
        let write = |p: &str, n: usize| json!({"path": p, "content": "x".repeat(n)});
        assert_eq!(post(&a, "/fs/write_file", write("a.txt", 600)).await.0, 200);
        assert_eq!(
            post(&a, "/fs/write_file", write("b.txt", 500)).await,
            (413, json!({"detail": "Cargo size limit exceeded: 600 + 500 > 1000 bytes"}))
        );
        assert!(!d.path().join("b.txt").exists());
        // Replacing a.txt: its old 600 bytes do not count.
        assert_eq!(post(&a, "/fs/write_file", write("a.txt", 900)).await.0, 200);
        // Appending does count them.
        let mut app100 = write("a.txt", 101);
        app100["mode"] = json!("a");
        assert_eq!(post(&a, "/fs/write_file", app100).await.0, 413);
        let (s, v) = post(&a, "/fs/edit_file", json!({"path": "a.txt", "old_string": "x", "new_string": "yy", "replace_all": true})).await;
        assert_eq!((s, v["detail"].as_str()), (413, Some("Cargo size limit exceeded: 0 + 1800 > 1000 bytes")));
        assert_eq!(std::fs::read_to_string(d.path().join("a.txt")).unwrap(), "x".repeat(900));
        let (s, _) = post(&a, "/fs/create_file", json!({"path": "c.txt", "content": "x".repeat(101)})).await;
        assert_eq!(s, 413);
        assert!(!d.path().join("c.txt").exists());
        // An upload is cut off once it crosses the limit, its part file gone.
        let (s, v) = upload(&a, "up/big.bin", &[7u8; 5000]).await;
        assert_eq!(s, 413, "{v}");
        assert!(v["detail"].as_str().unwrap().starts_with("Cargo size limit exceeded: 900 + "));
        assert!(!d.path().join("up/big.bin").exists());
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("up")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let (s, v) = upload(&a, "up/small.bin", &[7u8; 100]).await;
        assert_eq!((s, v["size"].as_u64()), (200, Some(100)));
        // User code is not held to the limit (documented in quota.rs).
        let (s, v) = post(&a, "/shell/exec", json!({"command": "head -c 5000 /dev/zero > big"})).await;
        assert_eq!((s, v["success"].as_bool()), (200, Some(true)));
    }

    /// The filesystem API end to end, with the path contract: links inside
    /// the workspace work, links out of it are 403 (listings skip them), a
    /// deleted link leaves its target alone.
    #[tokio::test]
    async fn filesystem_api_keeps_its_contract() {
        let tmp = tempfile::tempdir().unwrap();
        let (d, outside) = (tmp.path().join("ws"), tmp.path().join("etc"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("passwd"), "SECRET").unwrap();
        let a = app(&d, &[], RuntimeToken::default());
        let canon = d.canonicalize().unwrap();
        let w = json!({"path": "dir/sub/a.txt", "content": "one\r\ntwo\n"});
        let (s, v) = post(&a, "/fs/write_file", w).await;
        assert_eq!((s, v["path"].as_str()), (200, canon.join("dir/sub/a.txt").to_str()));
        std::os::unix::fs::symlink("dir/sub", canon.join("alias")).unwrap();
        std::os::unix::fs::symlink(&outside, canon.join("out")).unwrap();
        let (s, v) = post(&a, "/fs/read_file", json!({"path": "alias/a.txt"})).await;
        assert_eq!((s, v["content"].as_str()), (200, Some("one\ntwo\n")));
        assert_eq!(v["path"].as_str(), canon.join("dir/sub/a.txt").to_str());
        for (uri, body) in [
            ("/fs/read_file", json!({"path": "out/passwd"})),
            ("/fs/write_file", json!({"path": "out/new", "content": "x"})),
            ("/fs/list_dir", json!({"path": "out"})),
            ("/fs/read_file", json!({"path": "/etc/passwd"})),
            ("/fs/read_file", json!({"path": "../etc/passwd"})),
        ] {
            let (s, v) = post(&a, uri, body.clone()).await;
            assert_eq!(s, 403, "{uri} {body}: {v}");
        }
        let (s, v) = post(&a, "/fs/edit_file", json!({"path": "alias/a.txt", "old_string": "two", "new_string": "2"})).await;
        assert_eq!((s, v["replacements"].as_u64()), (200, Some(1)));
        let (s, v) = post(&a, "/fs/list_dir", json!({"path": "."})).await;
        assert_eq!(s, 200);
        let names: Vec<_> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["path"].as_str().unwrap().to_string()))
            .collect();
        let sub = canon.join("dir/sub").to_string_lossy().into_owned();
        assert_eq!(names, [("alias".to_string(), sub), ("dir".to_string(), canon.join("dir").to_string_lossy().into_owned())]);
        let (s, _) = post(&a, "/fs/create_file", json!({"path": "dir/c.sh", "mode": 0o755})).await;
        assert_eq!(s, 200);
        let mode = std::fs::metadata(canon.join("dir/c.sh")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o755);
        assert_eq!(post(&a, "/fs/create_file", json!({"path": "dir/c.sh"})).await.0, 400);
        let (s, v) = upload(&a, "alias/up.bin", b"\x00\x01bytes").await;
        assert_eq!((s, v["file_path"].as_str()), (200, canon.join("dir/sub/up.bin").to_str()));
        let get = axum::http::Request::get("/fs/download?file_path=alias/up.bin").body(Body::empty()).unwrap();
        let resp = a.clone().oneshot(get).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..], b"\x00\x01bytes");
        let get = axum::http::Request::get("/fs/download?file_path=out/passwd").body(Body::empty()).unwrap();
        assert_eq!(send(&a, get).await.0, 403);
        // Deleting links removes the links only.
        assert_eq!(post(&a, "/fs/delete_file", json!({"path": "out"})).await.0, 200);
        assert_eq!(post(&a, "/fs/delete_file", json!({"path": "alias"})).await.0, 200);
        assert!(outside.join("passwd").exists() && canon.join("dir/sub/a.txt").exists());
        let (s, v) = post(&a, "/fs/delete_file", json!({"path": "dir"})).await;
        assert_eq!((s, v["message"].as_str()), (200, Some("Directory deleted: dir")));
        assert_eq!(post(&a, "/fs/delete_file", json!({"path": "dir"})).await.0, 404);
        assert_eq!(post(&a, "/fs/delete_file", json!({"path": "."})).await.0, 400);
        assert_eq!(post(&a, "/fs/read_file", json!({"path": "nope"})).await.0, 404);
    }

    #[tokio::test]
    async fn text_reads_up_to_64_mib() {
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[], RuntimeToken::default());
        // Plain letters: a file of NULs would be six times as much JSON.
        let mut f = std::fs::File::create(d.path().join("big.txt")).unwrap();
        std::io::Write::write_all(&mut f, &vec![b'a'; MAX_TEXT_FILE as usize]).unwrap();
        let (s, v) = post(&a, "/fs/read_file", json!({"path": "big.txt"})).await;
        assert_eq!(s, 200);
        assert_eq!(v["size"].as_u64(), Some(MAX_TEXT_FILE));
        assert_eq!(v["content"].as_str().map(str::len), Some(MAX_TEXT_FILE as usize));
        std::io::Write::write_all(&mut f, b"a").unwrap();
        let (s, v) = post(&a, "/fs/read_file", json!({"path": "big.txt"})).await;
        assert_eq!((s, v["detail"].as_str()), (413, Some("File is too large to read as text (67108865 bytes > 67108864 bytes); use /fs/download")));
    }

    #[tokio::test]
    async fn oversized_code_and_commands_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[], RuntimeToken::default());
        let (s, v) = post(&a, "/ipython/exec", json!({"code": "#".repeat(MAX_PYTHON_CODE + 1)})).await;
        assert_eq!(s, 413, "{v}");
        let (s, _) = post(&a, "/shell/exec", json!({"command": "#".repeat(MAX_SHELL_COMMAND + 1)})).await;
        assert_eq!(s, 413);
        // Exactly at the limit it runs.
        let cmd = format!("#{}\necho ok", "x".repeat(MAX_SHELL_COMMAND - 9));
        assert_eq!(cmd.len(), MAX_SHELL_COMMAND);
        let (s, v) = post(&a, "/shell/exec", json!({"command": cmd})).await;
        assert_eq!((s, v["stdout"].as_str()), (200, Some("ok")));
    }

    /// A Python that can run the kernel (IPython installed):
    /// `SHIP_TEST_PYTHON`, else `python3`, else `/usr/bin/python3`. The
    /// kernel tests are skipped without one; the ship image has one (run the
    /// test binary inside it: see runtimes/ship/src/kernel.rs).
    fn kernel_python() -> Option<String> {
        let found = std::env::var("SHIP_TEST_PYTHON")
            .into_iter()
            .chain(["python3".to_string(), "/usr/bin/python3".to_string()])
            .find(|python| std::process::Command::new(python).args(["-c", "import IPython"]).output().is_ok_and(|o| o.status.success()));
        if found.is_none() {
            eprintln!("skipped: no Python with IPython (set SHIP_TEST_PYTHON)");
        }
        found
    }

    fn python_has(python: &str, module: &str) -> bool {
        std::process::Command::new(python).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
    }

    async fn status(app: &Router) -> String {
        let req = axum::http::Request::get("/ipython/kernel/status").body(Body::empty()).unwrap();
        send(app, req).await.1["status"].as_str().unwrap().to_string()
    }

    async fn exec(app: &Router, code: &str) -> Value {
        let (s, v) = post(app, "/ipython/exec", json!({"code": code})).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// A 4 MiB cell runs in a real kernel.
    #[tokio::test]
    async fn python_cells_up_to_4_mib_run() {
        let Some(python) = kernel_python() else { return };
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[("SHIP_PYTHON", &python)], RuntimeToken::default());
        let head = "s = '";
        let tail = "'\nprint(len(s))";
        let code = format!("{head}{}{tail}", "a".repeat(MAX_PYTHON_CODE - head.len() - tail.len()));
        assert_eq!(code.len(), MAX_PYTHON_CODE);
        let (s, v) = post(&a, "/ipython/exec", json!({"code": code, "timeout": 120})).await;
        assert_eq!(s, 200);
        assert_eq!(v["success"], json!(true), "{}", v["error"]);
        let n = MAX_PYTHON_CODE - head.len() - tail.len();
        assert_eq!(v["output"]["text"], json!(n.to_string()));
        // And the kernel does not see the runtime token.
        let (_, v) = post(&a, "/ipython/exec", json!({"code": "import os; print(os.environ.get('BAY_RUNTIME_TOKEN', 'unset'))"})).await;
        assert_eq!(v["output"]["text"], json!("unset"));
    }

    /// The kernel starts with the first exec, which waits for it; a second
    /// exec sent meanwhile waits too and runs after it in the same kernel.
    #[tokio::test]
    async fn exec_waits_for_a_lazily_started_kernel() {
        let Some(python) = kernel_python() else { return };
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[("SHIP_PYTHON", &python)], RuntimeToken::default());
        assert_eq!(status(&a).await, "not_started");
        let (first, second) = tokio::join!(exec(&a, "x = 1; 1 + 1"), exec(&a, "x + 41"));
        assert_eq!((&first["success"], &first["output"]["text"]), (&json!(true), &json!("2")), "{first}");
        assert_eq!((&second["success"], &second["output"]["text"]), (&json!(true), &json!("42")), "{second}");
        let mut counts = [first["execution_count"].as_i64(), second["execution_count"].as_i64()];
        counts.sort();
        assert_eq!(counts, [Some(1), Some(2)]);
        assert_eq!(status(&a).await, "alive");
    }

    /// Shell and filesystem calls are answered while the kernel is still
    /// starting (held at start-up by a PYTHONSTARTUP file until the test
    /// lets it go).
    #[tokio::test]
    async fn shell_is_answered_while_the_kernel_starts() {
        let Some(python) = kernel_python() else { return };
        let d = tempfile::tempdir().unwrap();
        let (ws, gate) = (d.path().join("ws"), d.path().join("go"));
        let startup = d.path().join("hold.py");
        std::fs::write(&startup, format!("import os, time\nwhile not os.path.exists({:?}):\n    time.sleep(0.01)\n", gate.to_str().unwrap()))
            .unwrap();
        let (a, kernel) = app_with_kernel(&ws, &[("SHIP_PYTHON", &python)], RuntimeToken::default(), &[("PYTHONSTARTUP", startup.to_str().unwrap())]);
        kernel.prewarm();
        assert_eq!(status(&a).await, "starting");
        let pending = tokio::spawn({
            let a = a.clone();
            async move { exec(&a, "1 + 1").await }
        });
        let (s, v) = post(&a, "/shell/exec", json!({"command": "echo hi"})).await;
        assert_eq!((s, v["stdout"].as_str()), (200, Some("hi")), "{v}");
        let (s, _) = post(&a, "/fs/write_file", json!({"path": "f.txt", "content": "x"})).await;
        assert_eq!(s, 200);
        let health = axum::http::Request::get("/health").body(Body::empty()).unwrap();
        assert_eq!(send(&a, health).await.0, 200);
        // Still held: the answers above did not wait for the kernel.
        assert_eq!(status(&a).await, "starting");
        assert!(!pending.is_finished());
        std::fs::write(&gate, "").unwrap();
        let v = pending.await.unwrap();
        assert_eq!((&v["success"], &v["output"]["text"]), (&json!(true), &json!("2")), "{v}");
        assert_eq!(status(&a).await, "alive");
    }

    /// What users rely on from the kernel: the order of printed text and
    /// results, tracebacks, magics, `!cmd`, and interrupting a cell (here
    /// at its timeout) with the kernel's state kept.
    #[tokio::test]
    async fn kernel_behaves_like_ipykernel() {
        let Some(python) = kernel_python() else { return };
        let d = tempfile::tempdir().unwrap();
        let a = app(d.path(), &[("SHIP_PYTHON", &python)], RuntimeToken::default());
        let ws = d.path().canonicalize().unwrap();

        let v = exec(&a, "import sys, os\nprint('a')\nprint('b', file=sys.stderr)\nos.system('echo c')\n42").await;
        assert_eq!((&v["success"], &v["output"]["text"], &v["execution_count"]), (&json!(true), &json!("a\nb\nc\n42"), &json!(1)), "{v}");

        let v = exec(&a, "%pwd").await;
        assert_eq!(v["output"]["text"], json!(format!("'{}'", ws.display())), "{v}");
        let v = exec(&a, "%timeit -n1 -r1 pass").await;
        assert!(v["output"]["text"].as_str().unwrap().contains("per loop"), "{v}");
        let v = exec(&a, "!echo hi").await;
        assert_eq!((&v["success"], v["output"]["text"].as_str().map(str::trim)), (&json!(true), Some("hi")), "{v}");

        let v = exec(&a, "def f():\n    return 1/0\nf()").await;
        assert_eq!(v["success"], json!(false));
        let err = v["error"].as_str().unwrap();
        // "Cell In [5], line 3" (IPython 8.5, Debian 12) or "Cell In[5], line 3" (later ones).
        assert!(err.contains("ZeroDivisionError") && err.contains("5], line 3") && err.contains("----> 2     return 1/0"), "{err}");
        let v = exec(&a, "input()").await;
        assert!(v["error"].as_str().unwrap().contains("StdinNotImplementedError"), "{v}");

        // Interrupted at its timeout; the variables survive.
        let v = exec(&a, "x = 41").await;
        assert_eq!(v["success"], json!(true));
        let (_, v) = post(&a, "/ipython/exec", json!({"code": "while True: pass", "timeout": 1})).await;
        assert_eq!((&v["success"], &v["error"]), (&json!(false), &json!("Code execution timed out after 1 seconds")), "{v}");
        let v = exec(&a, "x + 1").await;
        assert_eq!((&v["success"], &v["output"]["text"], &v["execution_count"]), (&json!(true), &json!("42"), &json!(9)), "{v}");

        // exit() ends the kernel, as with ipykernel; the next call gets a new one.
        let v = exec(&a, "exit()").await;
        assert_eq!(v["success"], json!(true), "{v}");
        let v = exec(&a, "'x' in dir()").await;
        assert_eq!(v["output"]["text"], json!("False"), "{v}");
    }

    /// A matplotlib figure comes back as a PNG; matplotlib is not imported
    /// before a cell does it.
    #[tokio::test]
    async fn matplotlib_figures_are_png_images() {
        let Some(python) = kernel_python() else { return };
        if !python_has(&python, "matplotlib_inline") {
            eprintln!("skipped: {python} has no matplotlib_inline");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let mpl = d.path().join("mpl");
        let (a, _) =
            app_with_kernel(&d.path().join("ws"), &[("SHIP_PYTHON", &python)], RuntimeToken::default(), &[("MPLCONFIGDIR", mpl.to_str().unwrap())]);
        let v = exec(&a, "import sys; 'matplotlib' in sys.modules").await;
        assert_eq!(v["output"]["text"], json!("False"), "{v}");
        let v = exec(&a, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('t')\nprint('drawn')").await;
        assert_eq!((&v["success"], &v["output"]["text"]), (&json!(true), &json!("drawn")), "{v}");
        let images = v["output"]["images"].as_array().unwrap();
        assert_eq!(images.len(), 1, "{v}");
        // base64 of the PNG signature.
        assert!(images[0]["image/png"].as_str().unwrap().starts_with("iVBORw0KGgo"), "{v}");
        // Rich display of any object with a PNG repr.
        let v = exec(&a, "import matplotlib\nfrom IPython.display import display, Image\ndisplay(Image(filename=matplotlib.get_data_path() + '/images/matplotlib.png'))").await;
        assert_eq!(v["output"]["images"].as_array().map(Vec::len), Some(1), "{v}");
    }
}
