//! Bay's accept loop: hyper-util's auto (HTTP/1 and HTTP/2) connection
//! builder with axum's `Router` as the service, graceful shutdown and
//! `ConnectInfo<SocketAddr>` — what `axum::serve` does, plus the settings it
//! does not expose:
//!
//! - the HTTP/1 read buffer is `limits.head_buffer_bytes` (hyper: ~400 KiB),
//!   so heads up to it reach `api::limits::head_limits`, which answers
//!   414/431 with the envelope;
//! - a head hyper still cannot take (larger than that buffer, more than
//!   [`PARSED_HEADERS`] headers, a target over hyper's 64 KiB limit, or
//!   malformed) is answered by hyper itself, before any service runs, with an
//!   empty body; [`EnvelopeIo`] gives those answers the envelope on their way
//!   out, and hyper closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::config::LimitsConfig;

/// Headers hyper parses per request (it allocates room for this many on
/// every request); `limits.header_count` (100) is enforced with the envelope
/// after parsing, and a request with more than this many gets hyper's 431,
/// rewritten into the envelope by [`EnvelopeIo`].
pub(crate) const PARSED_HEADERS: usize = 256;

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `grace` for the connections in flight: each
/// finishes the request it is serving (an idle keep-alive connection closes
/// at once), and what still runs after `grace` is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &LimitsConfig,
    grace: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_buffer = usize::try_from(limits.head_buffer_bytes).unwrap_or(usize::MAX);
    builder.http1().max_buf_size(head_buffer).max_headers(PARSED_HEADERS);
    builder.http2().max_header_list_size(u32::try_from(limits.head_buffer_bytes).unwrap_or(u32::MAX));
    let rewrite = HeadErrors { head_buffer_bytes: limits.head_buffer_bytes };
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Streamed answers (SSE, the terminal) are many small writes: without
        // TCP_NODELAY each waits for the previous one's ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let io = TokioIo::new(EnvelopeIo::new(stream, rewrite));
        let connection = graceful.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace_s = grace.as_secs(), "shutting down: no new connections; waiting for calls in flight");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_s = grace.as_secs(), "calls or streams still open after the shutdown grace; closing them");
    }
    Ok(())
}

/// As axum does: per-connection errors are the client's business; anything
/// else (out of file descriptors) is logged and retried after a pause.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What [`EnvelopeIo`] needs to know to describe the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadErrors {
    head_buffer_bytes: u64,
}

impl HeadErrors {
    /// hyper's own answer to a head it could not parse: `HTTP/1.x 400|414|431`
    /// with `content-length: 0` and nothing after the head. Bay's answers to
    /// errors always carry a JSON body, so this never matches one of them.
    pub(crate) fn rewrite(&self, head: &[u8]) -> Option<Vec<u8>> {
        if head.len() > 4096 || !head.starts_with(b"HTTP/1.") || !head.ends_with(b"\r\n\r\n") {
            return None;
        }
        let text = std::str::from_utf8(head).ok()?;
        let (status_line, headers) = text.split_once("\r\n")?;
        let status = status_line.get(9..12)?;
        let (code, message, details) = match status {
            "400" => ("validation_error", "Malformed HTTP request".to_owned(), json!({})),
            "414" => ("uri_too_long", "Request target too long for the HTTP parser (64 KiB)".to_owned(), json!({"limit": "uri_bytes"})),
            "431" => (
                "headers_too_large",
                format!(
                    "Request head larger than {} bytes (limits.head_buffer_bytes) or with more than {PARSED_HEADERS} headers",
                    self.head_buffer_bytes
                ),
                json!({"limit": "head_buffer_bytes", "max_bytes": self.head_buffer_bytes}),
            ),
            _ => return None,
        };
        let lines: Vec<&str> = headers.trim_end_matches("\r\n").split("\r\n").collect();
        if !lines.iter().any(|l| l.eq_ignore_ascii_case("content-length: 0")) {
            return None;
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut error = json!({ "code": code, "message": message, "request_id": request_id });
        if details.as_object().is_some_and(|d| !d.is_empty()) {
            error["details"] = details;
        }
        let body = json!({ "error": error }).to_string();
        let mut out = format!("{status_line}\r\n");
        for line in lines {
            let name = line.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("connection") {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-request-id: {request_id}\r\n\r\n{body}",
            body.len()
        ));
        Some(out.into_bytes())
    }
}

/// A connection whose outgoing bytes are checked for hyper's bodiless
/// answers to unparseable heads (see [`HeadErrors::rewrite`]). Everything
/// else passes through untouched.
pub(crate) struct EnvelopeIo<T> {
    inner: T,
    rewrite: HeadErrors,
    /// A rewritten answer not yet written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl EnvelopeIo<TcpStream> {
    fn new(inner: TcpStream, rewrite: HeadErrors) -> Self {
        EnvelopeIo { inner, rewrite, pending: None }
    }
}

impl<T: AsyncWrite + Unpin> EnvelopeIo<T> {
    /// Writes what is pending; Ready(Ok) once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopeIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopeIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(replacement) = self.rewrite.rewrite(buf) {
            // The original head counts as written; the replacement goes out
            // before anything else (flush and shutdown write it too).
            self.pending = Some((replacement, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(replacement) = self.rewrite.rewrite(only)
        {
            let len = only.len();
            self.pending = Some((replacement, 0));
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(len));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";

    fn parse(bytes: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn bodiless_parser_answers_get_the_envelope() {
        let r = HeadErrors { head_buffer_bytes: 1 << 20 };
        let (head, body) = parse(&r.rewrite(HYPER_431).unwrap());
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("date: Thu"));
        assert!(head.contains("connection: close"));
        assert_eq!(body["error"]["code"], "headers_too_large");
        assert_eq!(body["error"]["details"]["max_bytes"], 1 << 20);
        let (_, body) = parse(&r.rewrite(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n").unwrap());
        assert_eq!(body["error"]["code"], "uri_too_long");
        let (_, body) = parse(&r.rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap());
        assert_eq!(body["error"]["code"], "validation_error");
    }

    #[test]
    fn other_writes_pass_untouched() {
        let r = HeadErrors { head_buffer_bytes: 1 << 20 };
        for bytes in [
            &b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 12\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"some body bytes",
        ] {
            assert!(r.rewrite(bytes).is_none(), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[tokio::test]
    async fn the_rewritten_answer_is_what_the_peer_reads() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = EnvelopeIo { inner: server, rewrite: HeadErrors { head_buffer_bytes: 8192 }, pending: None };
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        io.write_all(HYPER_431).await.unwrap();
        io.flush().await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let (head, body) = parse(&reader.await.unwrap());
        assert!(head.starts_with("HTTP/1.1 431"));
        assert_eq!(body["error"]["details"]["max_bytes"], 8192);
    }
}
