//! Bay runtime adapter for `lite` runtimes (`runtimes/lite/lite.py`): shell
//! commands and text files. Scaffolded with `bay plugin new lite-adapter
//! --kind runtime-adapter` and filled in as docs/plugin-tutorial.md shows.
//!
//! Every operation not implemented here answers `unsupported` (Bay turns
//! that into 400 `capability_not_supported`); `health` and `meta` use the
//! SDK defaults, `GET /health` and `GET /meta`.

use bay_plugin_sdk::prelude::*;

/// Requests go to the runtime container the current call serves; the label
/// names it in error messages ("Lite request failed: 404").
const RUNTIME: Runtime = Runtime::new("Lite");

struct Lite;

/// The runtime answers 400/404 with `{"detail": "..."}`: turn those into
/// the errors Bay maps to the same statuses (a streamed answer's body stays
/// on the host, so its errors carry only the status).
fn runtime_error(e: AdapterError) -> AdapterError {
    match e {
        AdapterError::Runtime(f) if f.status == 404 => AdapterError::NotFound(detail(&f)),
        AdapterError::Runtime(f) if f.status == 400 => AdapterError::InvalidRequest(detail(&f)),
        other => other,
    }
}

fn detail(f: &RuntimeFailure) -> String {
    serde_json::from_str::<Value>(&f.body).ok().and_then(|v| v["detail"].as_str().map(String::from)).unwrap_or_else(|| f.message.clone())
}

impl RuntimeAdapter for Lite {
    fn describe() -> AdapterInfo {
        AdapterInfo::new("lite", env!("CARGO_PKG_VERSION")).capability("shell", &["exec", "stream"]).capability("filesystem", &["read", "write"])
    }

    /// Streamed shell output: Bay sends this request and pumps the NDJSON
    /// answer itself (`{"seq", "type", "data"}` lines, then `exit`), so the
    /// stream never passes through the plugin. Other live operations
    /// (background processes, the terminal) stay `unsupported`.
    fn live(op: LiveOperation) -> Result<LiveRequest, AdapterError> {
        match op {
            LiveOperation::ShellStream(req) => Ok(LiveRequest {
                method: Method::Post,
                path: "/exec/stream".into(),
                query: vec![],
                body: Some(json!({ "command": req.command, "timeout": req.timeout_s, "cwd": req.cwd }).to_string()),
            }),
            _ => Err(AdapterError::Unsupported("lite streams shell output only".into())),
        }
    }

    fn shell_exec(req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
        let body = json!({ "command": req.command, "timeout": req.timeout_s, "cwd": req.cwd });
        // The runtime enforces the command's timeout; give HTTP a little more.
        let out: Value = RUNTIME.post_json("/exec", &body, req.timeout_s + 5).map_err(runtime_error)?;
        let exit_code = out["exit_code"].as_i64().map(|c| c as i32);
        Ok(ShellExecResult {
            success: exit_code == Some(0),
            exit_code,
            stdout: out["stdout"].as_str().unwrap_or_default().to_owned(),
            stderr: out["stderr"].as_str().unwrap_or_default().to_owned(),
            error: None,
        })
    }

    /// `GET /files?path=…` answers the file's bytes; they stream back to
    /// Bay without passing through the plugin (Bay decodes them as text).
    fn file_read(path: String) -> Result<Download, AdapterError> {
        RUNTIME.download(Request::new(Method::Get, "/files").query("path", &path).timeout_secs(30), &path).map_err(runtime_error)
    }

    /// `PUT /files?path=…` takes the bytes as the request body, streamed
    /// from Bay.
    fn file_write(path: String, content: Body) -> Result<(), AdapterError> {
        RUNTIME.upload(Request::new(Method::Put, "/files").query("path", &path).stream(content)).map_err(runtime_error)?;
        Ok(())
    }
}

bay_plugin_sdk::register_adapter!(Lite);
