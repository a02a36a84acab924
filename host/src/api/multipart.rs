//! Multipart uploads read with bounded memory (docs/security.md, "Limits").
//!
//! axum's `Multipart` hands every part to the handler whole-or-streamed as the
//! handler chooses, but the parser underneath (multer) buffers a part's
//! headers until their end, however long, and `Field::text()` reads a text
//! field whole: a 400 MiB `path` field was held in memory at once. Here:
//!
//! - the content type must be `multipart/form-data` with a boundary (415/400);
//! - while the parser looks for a part's headers, the bytes it may pull are
//!   bounded by `limits.multipart_part_header_bytes` (plus one read);
//! - text fields are read up to `limits.multipart_field_bytes` (413 naming
//!   the field), never with `Field::text()`;
//! - the file part is still streamed chunk by chunk by the handler.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use futures::Stream;

use super::limits::check_field;
use crate::config::LimitsConfig;
use crate::error::{BayError, ErrorCode};

/// Bytes the parser may pull while looking for part headers; `u64::MAX`
/// while a part's data is being read.
const UNLIMITED: u64 = u64::MAX;

/// A multipart body being read.
pub(crate) struct BoundedMultipart {
    inner: multer::Multipart<'static>,
    budget: Arc<Budget>,
    part_header_bytes: u64,
}

#[derive(Default)]
struct Budget {
    /// How many more bytes the parser may pull in the current phase.
    left: AtomicU64,
    /// The budget ran out once: the parser was told to look at what it has.
    deferred: AtomicBool,
    exceeded: AtomicBool,
}

impl BoundedMultipart {
    /// Checks the content type and starts reading `body`.
    pub(crate) fn new(headers: &HeaderMap, body: Body, limits: &LimitsConfig) -> Result<BoundedMultipart, BayError> {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("multipart/form-data") {
            return Err(BayError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Expected a multipart/form-data body, got {:?}", crate::error::echo(mime)),
            )
            .with("expected", "multipart/form-data"));
        }
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| BayError::validation("Invalid multipart/form-data body: no boundary in the Content-Type"))?;
        let budget = Arc::new(Budget::default());
        budget.left.store(UNLIMITED, Ordering::Relaxed);
        let stream = GuardedStream { inner: body.into_data_stream(), budget: budget.clone() };
        Ok(BoundedMultipart { inner: multer::Multipart::new(stream, boundary), budget, part_header_bytes: limits.multipart_part_header_bytes })
    }

    /// The next part. The previous one must have been read to its end (the
    /// bytes pulled in this phase count against the header budget).
    pub(crate) async fn next_field(&mut self) -> Result<Option<multer::Field<'static>>, BayError> {
        self.budget.left.store(self.part_header_bytes, Ordering::Relaxed);
        self.budget.deferred.store(false, Ordering::Relaxed);
        let next = self.inner.next_field().await;
        self.budget.left.store(UNLIMITED, Ordering::Relaxed);
        match next {
            Ok(field) => Ok(field),
            Err(_) if self.budget.exceeded.load(Ordering::Relaxed) => {
                Err(BayError::payload_too_large("A multipart part's headers", "multipart_part_header_bytes", self.part_header_bytes)
                    .with("field", "body"))
            }
            Err(e) => Err(multipart_error(e)),
        }
    }
}

/// A malformed multipart body (422, as the schema error it is).
pub(crate) fn multipart_error(e: multer::Error) -> BayError {
    BayError::request_validation(&["body"], format!("Invalid multipart/form-data body: {e}"), "value_error")
}

/// Reads a text field, at most `max` bytes (413 naming the field beyond).
pub(crate) async fn read_text(field: &mut multer::Field<'static>, name: &str, key: &'static str, max: u64) -> Result<String, BayError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        check_field(name, text.len() + chunk.len(), key, max)?;
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| BayError::request_validation(&["body", name], "Input should be a valid string (UTF-8)", "string_unicode"))
}

/// The body as the parser sees it: pulls stop with an error once the
/// current phase's budget is spent.
struct GuardedStream<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S: Stream<Item = Result<Bytes, axum::Error>> + Unpin> Stream for GuardedStream<S> {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Checked before pulling: a phase reads at most its budget plus one
        // chunk. The parser pulls until `Pending` before it looks at what it
        // has, so running out first means "look now" (and a wake-up so it
        // asks again); asking again with nothing new is the error.
        if self.budget.left.load(Ordering::Relaxed) == 0 {
            if !self.budget.deferred.swap(true, Ordering::Relaxed) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.budget.exceeded.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(std::io::Error::other("multipart part headers over their limit"))));
        }
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            let left = self.budget.left.load(Ordering::Relaxed);
            if left != UNLIMITED {
                self.budget.left.store(left.saturating_sub(chunk.len() as u64), Ordering::Relaxed);
            }
        }
        Poll::Ready(item.map(|r| r.map_err(std::io::Error::other)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    fn body(parts: &[&[u8]]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    #[test]
    fn the_content_type_must_be_multipart() {
        let l = LimitsConfig::default();
        let e = BoundedMultipart::new(&headers("application/json"), Body::empty(), &l).err().unwrap();
        assert_eq!((e.status().as_u16(), e.code.as_str()), (415, "unsupported_media_type"));
        let e = BoundedMultipart::new(&HeaderMap::new(), Body::empty(), &l).err().unwrap();
        assert_eq!(e.status().as_u16(), 415);
        let e = BoundedMultipart::new(&headers("multipart/form-data"), Body::empty(), &l).err().unwrap();
        assert_eq!(e.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn text_fields_are_bounded() {
        let l = LimitsConfig { multipart_field_bytes: 8, ..Default::default() };
        let b: &[u8] = b"--B\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n0123456789\r\n--B--\r\n";
        let mut m = BoundedMultipart::new(&headers("multipart/form-data; boundary=B"), body(&[b]), &l).unwrap();
        let mut f = m.next_field().await.unwrap().unwrap();
        let e = read_text(&mut f, "path", "multipart_field_bytes", l.multipart_field_bytes).await.unwrap_err();
        assert_eq!(e.status().as_u16(), 413);
        assert_eq!(e.details["field"], "path");

        let b: &[u8] = b"--B\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nok.txt\r\n--B--\r\n";
        let mut m = BoundedMultipart::new(&headers("multipart/form-data; boundary=B"), body(&[b]), &l).unwrap();
        let mut f = m.next_field().await.unwrap().unwrap();
        assert_eq!(read_text(&mut f, "path", "multipart_field_bytes", 8).await.unwrap(), "ok.txt");
        drop(f);
        assert!(m.next_field().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_read_holding_the_headers_is_fine() {
        let l = LimitsConfig { multipart_part_header_bytes: 1024, ..Default::default() };
        let mut first = b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
        first.extend(vec![b'x'; 64 * 1024]);
        let more = vec![b'y'; 64 * 1024];
        let end: &[u8] = b"\r\n--B--\r\n";
        let mut m = BoundedMultipart::new(&headers("multipart/form-data; boundary=B"), body(&[&first, &more, end]), &l).unwrap();
        let mut f = m.next_field().await.unwrap().unwrap();
        let mut n = 0;
        while let Some(chunk) = f.chunk().await.unwrap() {
            n += chunk.len();
        }
        assert_eq!(n, 128 * 1024);
        drop(f);
        assert!(m.next_field().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn part_headers_are_bounded() {
        let l = LimitsConfig { multipart_part_header_bytes: 1024, ..Default::default() };
        let start: &[u8] = b"--B\r\nContent-Disposition: form-data; name=\"path\"\r\nX-Long: ";
        let filler = vec![b'a'; 512];
        let mut chunks: Vec<&[u8]> = vec![start];
        for _ in 0..64 {
            chunks.push(&filler);
        }
        let mut m = BoundedMultipart::new(&headers("multipart/form-data; boundary=B"), body(&chunks), &l).unwrap();
        let e = m.next_field().await.err().unwrap();
        assert_eq!(e.status().as_u16(), 413);
        assert_eq!(e.details["limit"], "multipart_part_header_bytes");
    }
}
