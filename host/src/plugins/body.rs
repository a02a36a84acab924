//! Byte streams that stay on the host while a plugin moves them around by
//! handle (the `body` resource of the WIT `http` interface).
//!
//! An agent's upload is wrapped as a `HostBody` and handed to the adapter,
//! which puts it into its multipart request to the runtime; a runtime's
//! download comes back as a `HostBody` the host streams to the agent. The
//! bytes never enter guest memory and are never held whole on the host.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

pub struct HostBody {
    size: Option<u64>,
    stream: ByteStream,
    /// The whole content, for bodies made from bytes in memory: they can be
    /// sent again (a call retried on a new session).
    replay: Option<Bytes>,
}

impl std::fmt::Debug for HostBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBody").field("size", &self.size).finish_non_exhaustive()
    }
}

impl HostBody {
    pub fn new(stream: ByteStream, size: Option<u64>) -> HostBody {
        HostBody { size, stream, replay: None }
    }

    pub fn from_bytes(bytes: impl Into<Bytes>) -> HostBody {
        let bytes = bytes.into();
        let size = bytes.len() as u64;
        let replay = Some(bytes.clone());
        HostBody { size: Some(size), stream: futures::stream::once(async move { Ok(bytes) }).boxed(), replay }
    }

    /// The bytes, when the body was made from bytes in memory.
    pub fn in_memory(&self) -> Option<Bytes> {
        self.replay.clone()
    }

    /// A second body with the same bytes, when they are in memory.
    pub fn try_clone(&self) -> Option<HostBody> {
        self.replay.clone().map(HostBody::from_bytes)
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn read_to_vec(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        if let Some(b) = self.replay {
            return if b.len() as u64 > limit { Err(BodyError::TooLarge(limit)) } else { Ok(b.to_vec()) };
        }
        let mut out = Vec::with_capacity(self.size.unwrap_or(0).min(limit) as usize);
        let mut stream = self.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BodyError::Io)?;
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(BodyError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    pub fn size(&self) -> Option<u64> {
        self.size
    }

    pub fn into_stream(self) -> ByteStream {
        self.stream
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("more than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(std::io::Error),
}
