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
}

impl std::fmt::Debug for HostBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBody").field("size", &self.size).finish_non_exhaustive()
    }
}

impl HostBody {
    pub fn new(stream: ByteStream, size: Option<u64>) -> HostBody {
        HostBody { size, stream }
    }

    pub fn from_bytes(bytes: impl Into<Bytes>) -> HostBody {
        let bytes = bytes.into();
        let size = bytes.len() as u64;
        HostBody { size: Some(size), stream: futures::stream::once(async move { Ok(bytes) }).boxed() }
    }

    pub fn size(&self) -> Option<u64> {
        self.size
    }

    pub fn into_stream(self) -> ByteStream {
        self.stream
    }
}
