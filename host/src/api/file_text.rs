//! File contents through the JSON API, streamed both ways.
//!
//! `PUT …/filesystem/files` carries a file as a JSON string: the body is read
//! incrementally ([`super::json_stream`]), the decoded content spooled (in
//! memory while small, then to a temporary file) and handed to the adapter
//! as a stream. `GET …/filesystem/files` answers `{"content": "..."}` built
//! on the fly from the runtime's byte stream: decoded as UTF-8 (invalid
//! sequences become U+FFFD) with newlines normalised (`\r\n`, `\r` → `\n`),
//! as Ship's `read_file` does, and JSON-escaped chunk by chunk. Neither
//! direction holds a file whole in Bay's memory.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use super::json_stream::{Field, ObjectReader, Sink};
use crate::error::{BayError, ErrorCode};
use crate::plugins::body::HostBody;

/// Content kept in memory up to this size; beyond it, spooled to disk.
const IN_MEMORY: usize = 1 << 20;

/// The longest `path` field accepted.
const MAX_PATH_BYTES: usize = 4096;

/// The largest file the JSON write API takes (the cargo's own size limit,
/// enforced by the runtime, usually comes first).
pub(crate) const WRITE_LIMIT: u64 = 1 << 30;

/// The largest file the JSON read API returns (Ship reads up to 64 MiB as
/// text; larger files are for the download endpoint).
pub(crate) const READ_LIMIT: u64 = 64 << 20;

/// A write body's content, spooled.
enum Spool {
    Memory(Vec<u8>),
    File(std::fs::File, tempfile::TempPath, u64),
}

struct SpoolSink {
    spool: Spool,
    limit: u64,
}

impl Sink for SpoolSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BayError> {
        let written = match &self.spool {
            Spool::Memory(v) => v.len() as u64,
            Spool::File(_, _, n) => *n,
        };
        if written + bytes.len() as u64 > self.limit {
            return Err(too_large("content", self.limit));
        }
        if let Spool::Memory(v) = &mut self.spool {
            if v.len() + bytes.len() <= IN_MEMORY {
                v.extend_from_slice(bytes);
                return Ok(());
            }
            let file = tempfile::NamedTempFile::new().map_err(|e| BayError::internal(format!("cannot spool the file content: {e}")))?;
            let (mut f, p) = file.into_parts();
            f.write_all(v).map_err(|e| BayError::internal(format!("cannot spool the file content: {e}")))?;
            self.spool = Spool::File(f, p, v.len() as u64);
        }
        if let Spool::File(f, _, n) = &mut self.spool {
            f.write_all(bytes).map_err(|e| BayError::internal(format!("cannot spool the file content: {e}")))?;
            *n += bytes.len() as u64;
        }
        Ok(())
    }
}

pub(crate) fn too_large(field: &str, limit: u64) -> BayError {
    BayError::new(ErrorCode::PayloadTooLarge, format!("{field} is larger than the limit of {limit} bytes"))
        .with("field", field)
        .with("limit_bytes", limit)
}

/// A write request: its path (not validated yet) and its content.
pub(crate) struct WriteRequest {
    pub path: String,
    pub content: HostBody,
}

/// Reads `{"path", "content"}` from the request body, refusing content
/// beyond `limit` bytes (413) as soon as it is crossed.
pub(crate) async fn read_write_request(body: Body, limit: u64) -> Result<WriteRequest, BayError> {
    const FIELDS: &[(&str, Field)] = &[("path", Field::Small(MAX_PATH_BYTES)), ("content", Field::Streamed)];
    let mut reader = ObjectReader::new(FIELDS);
    let mut sink = SpoolSink { spool: Spool::Memory(Vec::new()), limit };
    let mut stream = body.into_data_stream();
    let mut empty = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BayError::request_validation(&["body"], format!("reading the body: {e}"), "value_error"))?;
        empty &= chunk.iter().all(u8::is_ascii_whitespace);
        reader.feed(&chunk, &mut sink)?;
    }
    if empty {
        // As for every JSON route, an empty body counts as `{}`.
        reader = ObjectReader::new(FIELDS);
        reader.feed(b"{}", &mut sink)?;
    }
    let mut values = reader.finish()?;
    let path = values[0].take().unwrap_or_default();
    let content = match sink.spool {
        Spool::Memory(v) => HostBody::from_bytes(v),
        Spool::File(mut f, p, n) => {
            f.flush().map_err(|e| BayError::internal(format!("cannot spool the file content: {e}")))?;
            let file = tokio::fs::File::open(&p).await.map_err(|e| BayError::internal(format!("cannot read the spooled content: {e}")))?;
            // The temporary file is removed once the stream is dropped.
            let stream = ReaderStream::new(file).map(move |chunk| {
                let _keep = &p;
                chunk
            });
            HostBody::new(stream.boxed(), Some(n))
        }
    };
    Ok(WriteRequest { path, content })
}

/// Decodes a byte stream as UTF-8 text (lossy) with newlines normalised,
/// across chunk boundaries.
#[derive(Default)]
pub(crate) struct TextDecoder {
    tail: Vec<u8>,
    pending_cr: bool,
}

impl TextDecoder {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.tail);
        data.extend_from_slice(bytes);
        let mut out = String::with_capacity(data.len());
        let mut rest = data.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.normalise(s, &mut out);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    self.normalise(std::str::from_utf8(good).expect("valid prefix"), &mut out);
                    match e.error_len() {
                        Some(n) => {
                            self.normalise("\u{FFFD}", &mut out);
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete sequence: wait for the next chunk.
                            self.tail = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    pub(crate) fn finish(mut self) -> String {
        let mut out = String::new();
        if !self.tail.is_empty() {
            self.tail.clear();
            self.normalise("\u{FFFD}", &mut out);
        }
        if self.pending_cr {
            out.push('\n');
        }
        out
    }

    fn normalise(&mut self, s: &str, out: &mut String) {
        for c in s.chars() {
            if self.pending_cr {
                self.pending_cr = false;
                out.push('\n');
                if c == '\n' {
                    continue;
                }
            }
            if c == '\r' {
                self.pending_cr = true;
            } else {
                out.push(c);
            }
        }
    }
}

/// A JSON string's inside (no quotes) for `text`.
fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("strings serialise");
    quoted[1..quoted.len() - 1].to_owned()
}

/// `{"content": "<text>"}` from a file's byte stream, over `limit` → 413.
pub(crate) async fn content_response(content: HostBody, size: Option<u64>, limit: u64) -> Result<Response, BayError> {
    if size.is_some_and(|s| s > limit) {
        return Err(too_large("the file", limit).with("hint", "use GET …/filesystem/download for large files"));
    }
    let mut stream = content.into_stream();
    if size.is_none() {
        // No length announced: read it whole (bounded) so the limit can
        // still be answered with a 413 rather than a cut-off body.
        let mut decoder = TextDecoder::default();
        let mut text = String::new();
        let mut read = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BayError::ship(format!("reading the file from the runtime: {e}")))?;
            read += chunk.len() as u64;
            if read > limit {
                return Err(too_large("the file", limit));
            }
            text.push_str(&decoder.push(&chunk));
        }
        text.push_str(&decoder.finish());
        return Ok(axum::Json(serde_json::json!({ "content": text })).into_response());
    }
    let mut decoder = Some(TextDecoder::default());
    let body =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"content\":\"")) }).chain(futures::stream::poll_fn(move |cx| {
            let Some(d) = decoder.as_mut() else {
                return std::task::Poll::Ready(None);
            };
            match stream.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(Ok(chunk))) => std::task::Poll::Ready(Some(Ok(Bytes::from(escaped(&d.push(&chunk)))))),
                std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e))),
                std::task::Poll::Ready(None) => {
                    let rest = decoder.take().expect("decoder").finish();
                    std::task::Poll::Ready(Some(Ok(Bytes::from(escaped(&rest) + "\"}"))))
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        }));
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_in_chunks(bytes: &[u8], chunk: usize) -> String {
        let mut d = TextDecoder::default();
        let mut out = String::new();
        for c in bytes.chunks(chunk.max(1)) {
            out.push_str(&d.push(c));
        }
        out + &d.finish()
    }

    fn reference(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace("\r\n", "\n").replace('\r', "\n")
    }

    #[test]
    fn newlines_and_invalid_bytes() {
        assert_eq!(decode_in_chunks(b"a\r\nb\rc\n", 1), "a\nb\nc\n");
        assert_eq!(decode_in_chunks("é\u{1F600}".as_bytes(), 1), "é\u{1F600}");
        assert_eq!(decode_in_chunks(b"a\xffb", 2), "a\u{FFFD}b");
        assert_eq!(decode_in_chunks(b"a\xe2\x82", 1), "a\u{FFFD}");
        assert_eq!(decode_in_chunks(b"x\r", 1), "x\n");
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_text(bytes in proptest::collection::vec(any::<u8>(), 0..300), chunk in 1usize..17) {
            // Lossy decoding replaces each maximal invalid prefix once,
            // exactly as String::from_utf8_lossy does.
            prop_assert_eq!(decode_in_chunks(&bytes, chunk), reference(&bytes));
        }
    }

    #[tokio::test]
    async fn large_content_is_spooled_and_read_back() {
        let content = "x\"\n".repeat(700_000);
        let body = serde_json::to_vec(&serde_json::json!({ "content": content, "path": "a.txt" })).unwrap();
        let req = read_write_request(Body::from(body), 10 << 20).await.unwrap();
        assert_eq!(req.path, "a.txt");
        assert_eq!(req.content.size(), Some(content.len() as u64));
        let bytes = req.content.read_to_vec(u64::MAX).await.unwrap();
        assert_eq!(bytes, content.as_bytes());
        let err = read_write_request(Body::from(serde_json::to_vec(&serde_json::json!({ "path": "a", "content": content })).unwrap()), 1000).await;
        assert_eq!(err.err().unwrap().status().as_u16(), 413);
    }

    #[tokio::test]
    async fn the_read_answer_is_json() {
        let text = "line\r\n\"quoted\" é\u{0001}\n".repeat(5000);
        let body = HostBody::new(
            futures::stream::iter(text.as_bytes().chunks(777).map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>()).boxed(),
            Some(text.len() as u64),
        );
        let response = content_response(body, Some(text.len() as u64), 1 << 30).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["content"], reference(text.as_bytes()));
        let small = HostBody::from_bytes("x".repeat(10));
        assert_eq!(content_response(small, Some(10), 5).await.unwrap_err().status().as_u16(), 413);
    }
}
