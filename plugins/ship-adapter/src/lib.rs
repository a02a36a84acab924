//! Runtime adapter for Ship (python, shell, filesystem), as a WebAssembly
//! component. Speaks Ship's HTTP API (Shipyard Neo's contract, docs/compatibility.md), so Bay drives both our
//! Ship image and Shipyard Neo's unchanged.

use bay_plugin_sdk::prelude::*;
use bay_plugin_sdk::{ProcessOutput, ProcessResize, ProcessSignal, ProcessStdin};
use serde::Deserialize;

const SHIP: Runtime = Runtime::new("Ship");
/// Seconds added to an execution's own timeout for the HTTP round trip.
const EXEC_MARGIN: u32 = 5;
/// The first Python call also starts the kernel (Ship allows it 120 s).
const KERNEL_START: u32 = 120;
const FS_TIMEOUT: u32 = 30;

struct Ship;

#[derive(Deserialize)]
struct IpythonOutput {
    #[serde(default)]
    text: String,
    #[serde(default)]
    images: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct IpythonResult {
    success: bool,
    #[serde(default)]
    execution_count: Option<i64>,
    #[serde(default)]
    output: Option<IpythonOutput>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ShellResult {
    success: bool,
    #[serde(default)]
    return_code: Option<i32>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ShipFile {
    name: String,
    path: String,
    is_file: bool,
    is_dir: bool,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    modified_time: Option<f64>,
}

impl RuntimeAdapter for Ship {
    fn describe() -> AdapterInfo {
        AdapterInfo::new("ship", env!("CARGO_PKG_VERSION"))
            .capability("python", &["exec", "stream"])
            .capability("shell", &["exec", "stream", "processes", "terminal"])
            .capability("filesystem", &["read", "write", "list", "delete", "upload", "download"])
    }

    /// Ready when the server answers and no kernel start is under way. Ship
    /// starts its kernel on the first Python call (shell and files never
    /// wait for it), or at boot when Bay asks for it (`SHIP_KERNEL_PREWARM`,
    /// warm-pool sandboxes): such a sandbox is ready once its kernel is. A
    /// Ship without the kernel status endpoint is ready when `/health` answers.
    fn health() -> Result<HealthStatus, AdapterError> {
        let resp = SHIP.send_raw(Request::new(Method::Get, "/health").timeout_secs(5))?;
        if resp.status != 200 {
            return Ok(HealthStatus { healthy: false, detail: Some(resp.text()) });
        }
        let kernel = SHIP.send_raw(Request::new(Method::Get, "/ipython/kernel/status").timeout_secs(5))?;
        let starting = kernel.status == 200 && matches!(kernel.json::<Value>().ok().as_ref().and_then(|k| k["status"].as_str()), Some("starting"));
        Ok(HealthStatus { healthy: !starting, detail: Some(if starting { "kernel starting".into() } else { resp.text() }) })
    }

    fn python_exec(req: PythonExecRequest) -> Result<PythonExecResult, AdapterError> {
        let r: IpythonResult = SHIP.post_json(
            "/ipython/exec",
            &json!({ "code": req.code, "timeout": req.timeout_s, "silent": false }),
            req.timeout_s + KERNEL_START + EXEC_MARGIN,
        )?;
        let output = r.output.unwrap_or(IpythonOutput { text: String::new(), images: vec![] });
        let images = output
            .images
            .into_iter()
            .flat_map(|m| m.into_iter())
            .filter_map(|(mime, data)| Some(Image { mime_type: mime, data_base64: data.as_str()?.to_owned() }))
            .collect();
        Ok(PythonExecResult { success: r.success, execution_count: r.execution_count, text: output.text, images, error: r.error })
    }

    fn shell_exec(req: ShellExecRequest) -> Result<ShellExecResult, AdapterError> {
        let mut body = json!({ "command": req.command, "timeout": req.timeout_s });
        if let Some(cwd) = req.cwd {
            body["cwd"] = json!(cwd);
        }
        let r: ShellResult = SHIP.post_json("/shell/exec", &body, req.timeout_s + EXEC_MARGIN)?;
        Ok(ShellExecResult {
            success: r.success,
            exit_code: r.return_code,
            stdout: r.stdout.unwrap_or_default(),
            stderr: r.stderr.unwrap_or_default(),
            error: r.error,
        })
    }

    /// The file's bytes, streamed from `/fs/download` (the host decodes
    /// them as text and bounds their size).
    fn file_read(path: String) -> Result<Download, AdapterError> {
        download(&path)
    }

    /// Through `/fs/upload`, streamed: a write of any size never passes
    /// through the plugin (Ship's `/fs/write_file` takes the content inside
    /// a JSON document).
    fn file_write(path: String, content: Body) -> Result<(), AdapterError> {
        upload(&path, content).map(drop)
    }

    fn file_list(path: String) -> Result<Vec<FileEntry>, AdapterError> {
        #[derive(Deserialize)]
        struct Listing {
            files: Vec<ShipFile>,
        }
        let l: Listing = SHIP.post_json("/fs/list_dir", &json!({ "path": path, "show_hidden": false }), FS_TIMEOUT)?;
        Ok(l.files
            .into_iter()
            .map(|f| FileEntry {
                name: f.name,
                path: f.path,
                is_file: f.is_file,
                is_dir: f.is_dir,
                size: f.size,
                modified_time: f.modified_time.unwrap_or_default(),
            })
            .collect())
    }

    fn file_delete(path: String) -> Result<(), AdapterError> {
        let _: Value = missing_is_not_found(SHIP.post_json("/fs/delete_file", &json!({ "path": &path }), FS_TIMEOUT), &path)?;
        Ok(())
    }

    fn file_upload(req: FileUploadRequest) -> Result<UploadResult, AdapterError> {
        upload(&req.path, req.content)
    }

    fn file_download(path: String) -> Result<Download, AdapterError> {
        download(&path)
    }

    /// Ship's live API: `/shell/exec/stream`, `/ipython/exec/stream`,
    /// `/processes…` and `/term/ws` (runtimes/ship/src/stream.rs).
    fn live(op: LiveOperation) -> Result<LiveRequest, AdapterError> {
        use LiveOperation as O;
        let post = |path: String, body: Value| LiveRequest { method: Method::Post, path, query: vec![], body: Some(body.to_string()) };
        let get = |path: String, query: Vec<(String, String)>| LiveRequest { method: Method::Get, path, query, body: None };
        let id = |id: &str| id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        Ok(match op {
            O::ShellStream(r) => {
                let mut body = json!({ "command": r.command, "timeout": r.timeout_s });
                if let Some(cwd) = r.cwd {
                    body["cwd"] = json!(cwd);
                }
                post("/shell/exec/stream".into(), body)
            }
            O::PythonStream(r) => post("/ipython/exec/stream".into(), json!({ "code": r.code, "timeout": r.timeout_s, "silent": false })),
            O::ProcessStart(p) => {
                let env: serde_json::Map<String, Value> = p.env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                post("/processes".into(), json!({ "command": p.command, "cwd": p.cwd, "env": env, "pty": p.pty, "cols": p.cols, "rows": p.rows }))
            }
            O::ProcessList => get("/processes".into(), vec![]),
            O::ProcessGet(pid)
            | O::ProcessOutput(ProcessOutput { id: pid, .. })
            | O::ProcessStdin(ProcessStdin { id: pid, .. })
            | O::ProcessSignal(ProcessSignal { id: pid, .. })
            | O::ProcessResize(ProcessResize { id: pid, .. })
                if !id(&pid) =>
            {
                return Err(AdapterError::NotFound(format!("process not found: {pid}")));
            }
            O::ProcessGet(pid) => get(format!("/processes/{pid}"), vec![]),
            O::ProcessOutput(o) => {
                get(format!("/processes/{}/output", o.id), vec![("from_seq".into(), o.from_seq.to_string()), ("follow".into(), o.follow.to_string())])
            }
            O::ProcessStdin(i) => {
                use base64::Engine as _;
                post(
                    format!("/processes/{}/stdin", i.id),
                    json!({ "data_base64": base64::engine::general_purpose::STANDARD.encode(&i.data), "eof": i.eof }),
                )
            }
            O::ProcessSignal(s) => {
                // Ship takes a name ("TERM") or a number (15), not a number in a string.
                let signal = s.signal.parse::<i64>().map(Value::from).unwrap_or(Value::String(s.signal));
                post(format!("/processes/{}/signal", s.id), json!({ "signal": signal }))
            }
            O::ProcessResize(r) => post(format!("/processes/{}/resize", r.id), json!({ "cols": r.cols, "rows": r.rows })),
            O::Terminal(t) => get("/term/ws".into(), vec![("cols".into(), t.cols.to_string()), ("rows".into(), t.rows.to_string())]),
        })
    }
}

/// `POST /fs/upload` (multipart `file_path` + `file`, the file part streamed
/// from the host). Ship refuses a file beyond its limits or the cargo's quota
/// with 413 `{"detail": …}`: that stays a runtime failure with its status, so
/// Bay answers 413 too.
fn upload(path: &str, content: Body) -> Result<UploadResult, AdapterError> {
    let req = Request::new(Method::Post, "/fs/upload").multipart(vec![FormPart::text("file_path", path), FormPart::file("file", "file", content)]);
    let resp = SHIP.upload(req)?;
    let v: Value = resp.json()?;
    if v["success"] == json!(false) {
        let msg = v["error"].as_str().or(v["message"].as_str()).unwrap_or("upload failed");
        return Err(AdapterError::Runtime(RuntimeFailure {
            status: resp.status,
            message: format!("Ship upload failed: {msg}"),
            body: String::new(),
        }));
    }
    Ok(UploadResult { path: path.to_owned(), size: v["size"].as_u64().unwrap_or_default() })
}

/// `GET /fs/download?file_path=…`, handed on as a stream (404 → not-found).
fn download(path: &str) -> Result<Download, AdapterError> {
    SHIP.download(Request::new(Method::Get, "/fs/download").query("file_path", path).timeout_secs(FS_TIMEOUT), path)
}

/// A missing file is `not-found` (Bay answers 404 `file_not_found`), not a
/// runtime failure: Shipyard Neo's 502 made SDK clients retry a plain miss.
fn missing_is_not_found<T>(r: Result<T, AdapterError>, path: &str) -> Result<T, AdapterError> {
    match r {
        Err(AdapterError::Runtime(f)) if f.status == 404 => Err(AdapterError::NotFound(format!("File not found: {path}"))),
        other => other,
    }
}

bay_plugin_sdk::register_adapter!(Ship);
