//! Outbound HTTP, through the host.
//!
//! In a runtime adapter, paths (`/ipython/exec`) resolve against the endpoint
//! of the container the current call serves; [`Runtime`] sends them and turns
//! failures into [`AdapterError`]s. In a driver extension, paths
//! (`/v1.41/containers/json`) resolve against the engine endpoint the
//! operator configured; [`send`] sends them. JSON bodies are built and parsed
//! here; large bodies travel as [`Body`] handles that stay on the host.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::runtime_adapter::bay::plugin::http as wit;
use crate::{AdapterError, Download, HealthStatus, RuntimeFailure, RuntimeMeta};

pub use wit::{Body, FormPart, HttpError, Method, PartValue, RequestBody};

/// A request: to the served runtime (adapters) or the engine (drivers).
pub struct Request {
    inner: wit::Request,
}

impl Request {
    pub fn new(method: Method, url: &str) -> Request {
        Request { inner: wit::Request { method, url: url.into(), query: vec![], headers: vec![], body: RequestBody::Empty, timeout_ms: None } }
    }

    /// Adds a query parameter (the host encodes it).
    pub fn query(mut self, key: &str, value: &str) -> Request {
        self.inner.query.push((key.into(), value.into()));
        self
    }

    pub fn header(mut self, key: &str, value: &str) -> Request {
        self.inner.headers.push((key.into(), value.into()));
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Request {
        self.inner.body = RequestBody::Json(serde_json::to_string(body).unwrap_or_else(|_| "null".into()));
        self
    }

    /// A body of host-side bytes (a file's content), sent as it is.
    pub fn stream(self, content: Body) -> Request {
        self.body(RequestBody::Stream(content))
    }

    /// A `multipart/form-data` body (see [`FormPart::text`] and [`FormPart::file`]).
    pub fn multipart(self, parts: Vec<FormPart>) -> Request {
        self.body(RequestBody::Multipart(parts))
    }

    pub fn body(mut self, body: RequestBody) -> Request {
        self.inner.body = body;
        self
    }

    /// The timeout in seconds (the host's default applies otherwise).
    pub fn timeout_secs(mut self, secs: u32) -> Request {
        self.inner.timeout_ms = Some(secs.saturating_mul(1000));
        self
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The size of the host-side bytes this request carries, as far as the
    /// host knows it.
    fn streamed_bytes(&self) -> u64 {
        let hint = |b: &Body| b.size_hint().unwrap_or(0);
        match &self.inner.body {
            RequestBody::Stream(b) => hint(b),
            RequestBody::Multipart(parts) => parts
                .iter()
                .map(|p| match &p.value {
                    PartValue::Stream(b) => hint(b),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        }
    }
}

impl FormPart {
    /// A text field.
    pub fn text(name: &str, value: &str) -> FormPart {
        FormPart { name: name.into(), filename: None, content_type: None, value: PartValue::Text(value.into()) }
    }

    /// A file field whose bytes stream from the host
    /// (`content-type: application/octet-stream`).
    pub fn file(name: &str, filename: &str, content: Body) -> FormPart {
        FormPart {
            name: name.into(),
            filename: Some(filename.into()),
            content_type: Some("application/octet-stream".into()),
            value: PartValue::Stream(content),
        }
    }
}

/// A response whose body was read into memory.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses the body as JSON; a mismatch is a `bad-response` error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| AdapterError::BadResponse(format!("unexpected response from the runtime: {e}")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A response whose body stays on the host.
pub struct StreamedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl StreamedResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The announced length (`content-length`), else the host's hint.
    pub fn size(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.trim().parse().ok()).or_else(|| self.body.size_hint())
    }
}

/// Sends a request and reads the whole response, whatever its status.
pub fn send(req: Request) -> Result<Response, HttpError> {
    wit::send(req.inner).map(|r| Response { status: r.status, headers: r.headers, body: r.body })
}

/// Sends a request and leaves the response body on the host.
pub fn send_streamed(req: Request) -> Result<StreamedResponse, HttpError> {
    wit::send_streamed(req.inner).map(|r| StreamedResponse { status: r.status, headers: r.headers, body: r.body })
}

/// The runtime a call serves, named for error messages
/// (`"<label> request failed: 404"`, as Shipyard Neo words them).
#[derive(Clone, Copy)]
pub struct Runtime {
    label: &'static str,
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(500).collect()
}

/// An upload's timeout: at least this many seconds...
const UPLOAD_MIN_TIMEOUT_S: u32 = 600;
/// ...plus one second per this many bytes streamed.
const UPLOAD_BYTES_PER_S: u64 = 1 << 20;

impl Runtime {
    pub const fn new(label: &'static str) -> Runtime {
        Runtime { label }
    }

    fn transport(&self, url: &str, e: HttpError) -> AdapterError {
        match e {
            HttpError::Denied(m) => AdapterError::InvalidRequest(format!("{} request denied: {m}", self.label)),
            HttpError::Unreachable(m) => AdapterError::Unreachable(format!("{} request error: {m}", self.label)),
            HttpError::Timeout => AdapterError::Timeout(format!("{} request timed out: {url}", self.label)),
            HttpError::InvalidRequest(m) => AdapterError::InvalidRequest(m),
            HttpError::TooLarge(n) => AdapterError::BadResponse(format!("{} response too large ({n} bytes)", self.label)),
        }
    }

    /// The error for a runtime answer with status >= 400.
    pub fn failure(&self, status: u16, body: &[u8]) -> AdapterError {
        AdapterError::Runtime(RuntimeFailure { status, message: format!("{} request failed: {status}", self.label), body: snippet(body) })
    }

    /// Sends a request and reads the response, whatever its status.
    pub fn send_raw(&self, req: Request) -> Result<Response, AdapterError> {
        let url = req.inner.url.clone();
        send(req).map_err(|e| self.transport(&url, e))
    }

    /// Sends a request; a status >= 400 is an error.
    pub fn send(&self, req: Request) -> Result<Response, AdapterError> {
        let resp = self.send_raw(req)?;
        if resp.status >= 400 {
            return Err(self.failure(resp.status, &resp.body));
        }
        Ok(resp)
    }

    /// Sends a request and leaves the response body on the host.
    pub fn send_streamed(&self, req: Request) -> Result<StreamedResponse, AdapterError> {
        let url = req.inner.url.clone();
        send_streamed(req).map_err(|e| self.transport(&url, e))
    }

    pub fn get(&self, path: &str, timeout_secs: u32) -> Result<Response, AdapterError> {
        self.send(Request::new(Method::Get, path).timeout_secs(timeout_secs))
    }

    /// `POST` a JSON body and parse the JSON answer.
    pub fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B, timeout_secs: u32) -> Result<T, AdapterError> {
        self.send(Request::new(Method::Post, path).json(body).timeout_secs(timeout_secs))?.json()
    }

    /// Sends a request that carries host-side bytes (a [`Request::stream`]
    /// body or a [`FormPart::file`]), with a timeout that grows with their
    /// size (at least 10 minutes, plus a second per MiB). A status >= 400 is
    /// an error that keeps the status and the runtime's answer, so a runtime
    /// refusing the size (413) is reported to the client as 413.
    pub fn upload(&self, mut req: Request) -> Result<Response, AdapterError> {
        let by_size = UPLOAD_MIN_TIMEOUT_S.saturating_add(u32::try_from(req.streamed_bytes() / UPLOAD_BYTES_PER_S).unwrap_or(u32::MAX));
        let timeout_ms = by_size.saturating_mul(1000).max(req.inner.timeout_ms.unwrap_or(0));
        req.inner.timeout_ms = Some(timeout_ms);
        self.send(req)
    }

    /// Sends a request whose answer is a file's bytes and hands them on
    /// without reading them: a 2xx answer is the [`Download`] (its size from
    /// `content-length`), 404 is `not-found` for `path`, any other status a
    /// runtime failure (the body of an error answer stays on the host, so
    /// the failure carries only the status).
    pub fn download(&self, req: Request, path: &str) -> Result<Download, AdapterError> {
        let resp = self.send_streamed(req)?;
        match resp.status {
            200..=299 => Ok(Download { size: resp.size(), content: resp.body }),
            404 => Err(AdapterError::NotFound(format!("File not found: {path}"))),
            status => Err(self.failure(status, b"")),
        }
    }
}

pub(crate) fn default_health() -> Result<HealthStatus, AdapterError> {
    let resp = Runtime::new("Runtime").send_raw(Request::new(Method::Get, "/health").timeout_secs(5))?;
    Ok(HealthStatus { healthy: resp.status == 200, detail: Some(resp.text()) })
}

pub(crate) fn default_meta() -> Result<RuntimeMeta, AdapterError> {
    let resp = Runtime::new("Runtime").get("/meta", 5)?;
    let doc: serde_json::Value = resp.json()?;
    let runtime = &doc["runtime"];
    let field = |k: &str| runtime[k].as_str().unwrap_or_default().to_owned();
    let capabilities = match &doc["capabilities"] {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => vec![],
    };
    Ok(RuntimeMeta { name: field("name"), version: field("version"), api_version: field("api_version"), capabilities, raw: resp.text() })
}
