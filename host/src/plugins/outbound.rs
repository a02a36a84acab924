//! Outbound HTTP on behalf of plugins.
//!
//! The host owns the connection pool (one `reqwest::Client` for all plugins,
//! keep-alive to every runtime), the timeouts and the allow-list: a plugin
//! names a path, resolved against the endpoint of the runtime the current call
//! serves, or an absolute URL whose origin must be that endpoint's or on the
//! plugin manifest's allow-list.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use super::body::HostBody;
use crate::adapter::RuntimeLink;

/// The header carrying a session's secret to its runtimes.
pub const TOKEN_HEADER: &str = "x-bay-token";

/// Where a call may send requests.
#[derive(Clone)]
pub struct OutboundTarget {
    base: Option<Url>,
    /// The served runtime's secret, added to every request to `base` (and
    /// only there: a plugin never sees it, nor can it send it elsewhere).
    token: Option<Arc<str>>,
    allow: Arc<Vec<String>>,
    client: reqwest::Client,
    max_response: u64,
    default_timeout: Duration,
}

pub enum OutBody {
    Empty,
    Bytes(Vec<u8>),
    Json(String),
    Multipart(Vec<OutPart>),
    Stream(HostBody),
}

pub struct OutPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub value: OutPartValue,
}

pub enum OutPartValue {
    Text(String),
    Bytes(Vec<u8>),
    Stream(HostBody),
}

pub struct OutRequest {
    pub method: reqwest::Method,
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: OutBody,
    pub timeout: Option<Duration>,
}

#[derive(Debug)]
pub enum OutError {
    Denied(String),
    /// No connection could be made: the request never reached the target.
    ConnectFailed(String),
    Unreachable(String),
    Timeout,
    InvalidRequest(String),
    TooLarge(u64),
}

pub type Headers = Vec<(String, String)>;

/// The origin (`scheme://host:port`) of a URL, for allow-list checks.
pub fn origin(url: &Url) -> String {
    format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
}

impl OutboundTarget {
    /// A target bound to one runtime (`None`: no outbound access).
    pub fn new(runtime: Option<&RuntimeLink>, allow: Arc<Vec<String>>, client: reqwest::Client, max_response: u64) -> Result<OutboundTarget, String> {
        let base = match runtime {
            Some(r) => Some(Url::parse(&r.endpoint).map_err(|err| format!("invalid runtime endpoint {:?}: {err}", r.endpoint))?),
            None => None,
        };
        let token = runtime.and_then(|r| r.token.clone());
        Ok(OutboundTarget { base, token, allow, client, max_response, default_timeout: Duration::from_secs(30) })
    }

    /// A target that may reach nothing (for `describe` at load time).
    pub fn none(client: reqwest::Client) -> OutboundTarget {
        OutboundTarget { base: None, token: None, allow: Arc::new(vec![]), client, max_response: 1 << 20, default_timeout: Duration::from_secs(30) }
    }

    /// A target bound to a container engine's API (driver extensions):
    /// `unix:///path.sock` (paths go over the socket, as `http://localhost/...`)
    /// or `http://host:port` / `tcp://host:port`. Nothing else is reachable.
    pub fn engine(endpoint: &str, max_response: u64) -> Result<OutboundTarget, String> {
        let builder = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(16).connect_timeout(Duration::from_secs(10));
        let (client, base) = if let Some(path) = endpoint.strip_prefix("unix://") {
            (builder.unix_socket(path), "http://localhost/".to_owned())
        } else if let Some(rest) = endpoint.strip_prefix("tcp://") {
            (builder.tcp_nodelay(true), format!("http://{rest}"))
        } else if endpoint.starts_with("http://") {
            (builder.tcp_nodelay(true), endpoint.to_owned())
        } else {
            // No TLS in Bay's client (host/src/config/mod.rs refuses https at load).
            return Err(format!("engine endpoint {endpoint:?}: expected unix:///path, tcp://host:port or http://host:port"));
        };
        let client = client.build().map_err(|e| format!("engine endpoint {endpoint:?}: {e}"))?;
        let mut t = OutboundTarget::new(Some(&RuntimeLink::new(base, None)), Arc::new(vec![]), client, max_response)?;
        t.default_timeout = Duration::from_secs(60);
        Ok(t)
    }

    fn resolve(&self, url: &str) -> Result<Url, OutError> {
        if url.starts_with('/') {
            let base = self.base.as_ref().ok_or_else(|| OutError::Denied("no runtime endpoint is bound to this call".into()))?;
            let joined = base.join(url).map_err(|e| OutError::InvalidRequest(format!("invalid path {url:?}: {e}")))?;
            // `//host/x` is a network-path reference: joined, it names
            // another host. A path stays on the bound endpoint.
            if origin(&joined) != origin(base) {
                return Err(OutError::Denied(format!("{url:?} is not a path on the bound endpoint")));
            }
            return Ok(joined);
        }
        let parsed = Url::parse(url).map_err(|e| OutError::InvalidRequest(format!("invalid URL {url:?}: {e}")))?;
        let o = origin(&parsed);
        let own = self.base.as_ref().map(origin);
        if own.as_deref() == Some(o.as_str()) || self.allow.iter().any(|a| a == &o) {
            Ok(parsed)
        } else {
            Err(OutError::Denied(format!("{o} is not on this plugin's allow-list")))
        }
    }

    fn build(&self, req: OutRequest, whole_timeout: bool) -> Result<(reqwest::RequestBuilder, Duration), OutError> {
        let mut url = self.resolve(&req.url)?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        let timeout = req.timeout.unwrap_or(self.default_timeout);
        let to_runtime = self.base.as_ref().is_some_and(|b| origin(b) == origin(&url));
        let mut builder = self.client.request(req.method, url);
        for (k, v) in &req.headers {
            if k.eq_ignore_ascii_case(TOKEN_HEADER) {
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| OutError::InvalidRequest(format!("header {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v).map_err(|e| OutError::InvalidRequest(format!("header {k:?}: {e}")))?;
            builder = builder.header(name, value);
        }
        if let (true, Some(token)) = (to_runtime, &self.token) {
            builder = builder.header(TOKEN_HEADER, &**token);
        }
        builder = match req.body {
            OutBody::Empty => builder,
            OutBody::Bytes(b) => builder.body(b),
            OutBody::Json(j) => builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(j),
            OutBody::Stream(body) => {
                let size = body.size();
                let mut b = builder.body(reqwest::Body::wrap_stream(body.into_stream()));
                if let Some(size) = size {
                    b = b.header(reqwest::header::CONTENT_LENGTH, size);
                }
                b
            }
            OutBody::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                for part in parts {
                    let mut p = match part.value {
                        OutPartValue::Text(t) => reqwest::multipart::Part::text(t),
                        OutPartValue::Bytes(b) => reqwest::multipart::Part::bytes(b),
                        OutPartValue::Stream(body) => match body.size() {
                            Some(size) => reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body.into_stream()), size),
                            None => reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body.into_stream())),
                        },
                    };
                    if let Some(f) = part.filename {
                        p = p.file_name(f);
                    }
                    if let Some(ct) = part.content_type {
                        p = p.mime_str(&ct).map_err(|e| OutError::InvalidRequest(format!("content type {ct:?}: {e}")))?;
                    }
                    form = form.part(part.name, p);
                }
                builder.multipart(form)
            }
        };
        if whole_timeout {
            builder = builder.timeout(timeout);
        }
        Ok((builder, timeout))
    }

    fn classify(err: reqwest::Error) -> OutError {
        if err.is_timeout() {
            OutError::Timeout
        } else if err.is_builder() {
            OutError::InvalidRequest(err.to_string())
        } else if err.is_connect() {
            OutError::ConnectFailed(chain(&err))
        } else {
            OutError::Unreachable(chain(&err))
        }
    }

    fn headers(resp: &reqwest::Response) -> Headers {
        resp.headers().iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
    }

    /// Sends and reads the whole body (bounded by the response limit).
    pub async fn send(&self, req: OutRequest) -> Result<(u16, Headers, Vec<u8>), OutError> {
        let (builder, _) = self.build(req, true)?;
        let resp = builder.send().await.map_err(Self::classify)?;
        let status = resp.status().as_u16();
        let headers = Self::headers(&resp);
        if let Some(len) = resp.content_length()
            && len > self.max_response
        {
            return Err(OutError::TooLarge(len));
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(Self::classify)?;
            if body.len() as u64 + chunk.len() as u64 > self.max_response {
                return Err(OutError::TooLarge(body.len() as u64 + chunk.len() as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    /// Sends and leaves the body on the host as a stream. The timeout covers
    /// the response head only: a large body may take longer to flow.
    pub async fn send_streamed(&self, req: OutRequest) -> Result<(u16, Headers, HostBody), OutError> {
        let (builder, timeout) = self.build(req, false)?;
        let resp = tokio::time::timeout(timeout, builder.send()).await.map_err(|_| OutError::Timeout)?.map_err(Self::classify)?;
        let status = resp.status().as_u16();
        let headers = Self::headers(&resp);
        let size = resp.content_length();
        let stream = resp.bytes_stream().map_err(std::io::Error::other).boxed();
        Ok((status, headers, HostBody::new(stream, size)))
    }
}

/// An error with its source chain ("error sending request" alone says nothing).
fn chain(err: &reqwest::Error) -> String {
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The HTTP client all plugins share.
pub fn shared_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: Option<&str>, allow: &[&str]) -> OutboundTarget {
        let link = endpoint.map(|e| RuntimeLink::new(e, Some("s3cret")));
        OutboundTarget::new(link.as_ref(), Arc::new(allow.iter().map(|s| s.to_string()).collect()), reqwest::Client::new(), 1024).unwrap()
    }

    #[test]
    fn the_token_goes_to_the_runtime_only() {
        let t = target(Some("http://127.0.0.1:32768"), &["http://127.0.0.1:9000"]);
        let req = |url: &str| OutRequest {
            method: reqwest::Method::GET,
            url: url.into(),
            query: vec![],
            headers: vec![(TOKEN_HEADER.into(), "forged".into())],
            body: OutBody::Empty,
            timeout: None,
        };
        let built = t.build(req("/meta"), true).unwrap().0.build().unwrap();
        assert_eq!(built.headers().get_all(TOKEN_HEADER).iter().collect::<Vec<_>>(), ["s3cret"]);
        let built = t.build(req("http://127.0.0.1:9000/x"), true).unwrap().0.build().unwrap();
        assert!(built.headers().get(TOKEN_HEADER).is_none());
    }

    #[test]
    fn paths_resolve_against_the_served_endpoint() {
        let t = target(Some("http://127.0.0.1:32768"), &[]);
        assert_eq!(t.resolve("/fs/read_file").unwrap().as_str(), "http://127.0.0.1:32768/fs/read_file");
        assert_eq!(t.resolve("http://127.0.0.1:32768/meta").unwrap().as_str(), "http://127.0.0.1:32768/meta");
    }

    #[test]
    fn other_origins_are_denied_unless_allowed() {
        let t = target(Some("http://127.0.0.1:32768"), &["http://127.0.0.1:9000"]);
        assert!(matches!(t.resolve("http://127.0.0.1:32769/"), Err(OutError::Denied(_))));
        assert!(matches!(t.resolve("http://169.254.169.254/latest"), Err(OutError::Denied(_))));
        assert!(t.resolve("http://127.0.0.1:9000/x").is_ok());
        // Userinfo tricks do not change the origin.
        assert!(matches!(t.resolve("http://127.0.0.1:32768@evil.example/"), Err(OutError::Denied(_))));
        // Nor does a "path" that is a network-path reference (`//host/...`).
        assert!(matches!(t.resolve("//169.254.169.254/latest"), Err(OutError::Denied(_))));
        assert!(matches!(t.resolve("//127.0.0.1:9000/x"), Err(OutError::Denied(_))));
    }

    #[test]
    fn no_endpoint_means_no_access() {
        let t = target(None, &[]);
        assert!(matches!(t.resolve("/health"), Err(OutError::Denied(_))));
    }
}
