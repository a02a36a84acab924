//! Outbound HTTP to the runtime, through the host.
//!
//! Paths (`/ipython/exec`) resolve against the endpoint of the container the
//! current call serves. JSON bodies are built and parsed here; large bodies
//! travel as [`Body`] handles that stay on the host.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::bay::plugin::http as wit;
use crate::{AdapterError, Body, HealthStatus, RuntimeFailure, RuntimeMeta};

pub use wit::{FormPart, Method, PartValue, RequestBody};

/// A request to the runtime.
pub struct Request {
    inner: wit::Request,
}

impl Request {
    pub fn new(method: Method, url: &str) -> Request {
        Request { inner: wit::Request { method, url: url.into(), query: vec![], headers: vec![], body: RequestBody::Empty, timeout_ms: None } }
    }

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
}

/// A response whose body was read into memory.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response whose body stays on the host.
pub struct StreamedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
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

impl Runtime {
    pub const fn new(label: &'static str) -> Runtime {
        Runtime { label }
    }

    fn transport(&self, url: &str, e: wit::HttpError) -> AdapterError {
        match e {
            wit::HttpError::Denied(m) => AdapterError::InvalidRequest(format!("{} request denied: {m}", self.label)),
            wit::HttpError::Unreachable(m) => AdapterError::Unreachable(format!("{} request error: {m}", self.label)),
            wit::HttpError::Timeout => AdapterError::Timeout(format!("{} request timed out: {url}", self.label)),
            wit::HttpError::InvalidRequest(m) => AdapterError::InvalidRequest(m),
            wit::HttpError::TooLarge(n) => AdapterError::BadResponse(format!("{} response too large ({n} bytes)", self.label)),
        }
    }

    /// The error for a runtime answer with status >= 400.
    pub fn failure(&self, status: u16, body: &[u8]) -> AdapterError {
        AdapterError::Runtime(RuntimeFailure { status, message: format!("{} request failed: {status}", self.label), body: snippet(body) })
    }

    /// Sends a request and reads the response, whatever its status.
    pub fn send_raw(&self, req: Request) -> Result<Response, AdapterError> {
        let url = req.inner.url.clone();
        wit::send(req.inner).map(|r| Response { status: r.status, headers: r.headers, body: r.body }).map_err(|e| self.transport(&url, e))
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
        wit::send_streamed(req.inner)
            .map(|r| StreamedResponse { status: r.status, headers: r.headers, body: r.body })
            .map_err(|e| self.transport(&url, e))
    }

    pub fn get(&self, path: &str, timeout_secs: u32) -> Result<Response, AdapterError> {
        self.send(Request::new(Method::Get, path).timeout_secs(timeout_secs))
    }

    /// `POST` a JSON body and parse the JSON answer.
    pub fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B, timeout_secs: u32) -> Result<T, AdapterError> {
        self.send(Request::new(Method::Post, path).json(body).timeout_secs(timeout_secs))?.json()
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
