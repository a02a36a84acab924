//! The one thing the Docker-API driver needs from its environment: sending a
//! request to the engine and reading the whole answer.

use std::future::Future;

use serde_json::Value;

use crate::spec::DriverError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

/// A request to the engine. `path` is below the API version prefix
/// (`/containers/create`); the query is not encoded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// A JSON document.
    pub body: Option<String>,
    pub timeout_s: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends requests to one engine endpoint (a unix socket or a TCP address the
/// operator configured). Implemented with reqwest in the host and with the
/// host's `http` import in the plugin.
pub trait Transport: Send + Sync {
    /// `Err` only when no answer could be had (connect, timeout); an HTTP
    /// error status is an `Ok` reply.
    fn send(&self, req: Request) -> impl Future<Output = Result<Reply, String>> + Send;

    /// Sends a request whose answer is a stream of JSON lines (an image
    /// pull's progress), handing each line to `line` as it arrives. The
    /// default reads the whole answer first.
    fn send_lines<'a>(&'a self, req: Request, line: &'a (dyn Fn(&[u8]) + Send + Sync)) -> impl Future<Output = Result<Reply, String>> + Send + 'a {
        async move {
            let reply = self.send(req).await?;
            reply.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).for_each(line);
            Ok(reply)
        }
    }
}

impl Reply {
    pub(crate) fn json(&self) -> Result<Value, DriverError> {
        serde_json::from_slice(&self.body).map_err(|e| DriverError::Engine(format!("unexpected engine answer: {e}")))
    }

    /// The engine's error message (`{"message": ...}`), else the start of the body.
    pub(crate) fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.chars().take(300).collect())
    }

    /// The error of a failed call (404 → not found).
    pub(crate) fn error(&self, what: &str) -> DriverError {
        match self.status {
            404 => DriverError::NotFound(format!("{what}: {}", self.message())),
            s => DriverError::Engine(format!("{what}: engine answered {s}: {}", self.message())),
        }
    }

    pub(crate) fn expect(self, what: &str, ok: &[u16]) -> Result<Reply, DriverError> {
        if ok.contains(&self.status) { Ok(self) } else { Err(self.error(what)) }
    }
}
