//! The bytes of an upgraded preview connection (a WebSocket), pumped both
//! ways until either side closes — or nothing has moved for [`IDLE`], or
//! the preview token that opened it expires. Until then the connection
//! keeps its session in use (idle GC leaves it alone), so a peer that
//! vanished without closing must not hold it for ever.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long an upgraded connection may carry nothing before it is closed.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

fn now_ms() -> i64 {
    crate::ids::now_micros() / 1000
}

/// A stream that notes when bytes last arrived from it.
struct Noted<T> {
    inner: T,
    last: Arc<AtomicI64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Noted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Noted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Pumps `a` ⇄ `b` until one closes, both are idle for `idle`, or `until`
/// (unix seconds) passes.
pub(crate) async fn pump<A, B>(a: A, b: B, idle: Duration, until: Option<i64>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicI64::new(now_ms()));
    let mut a = Noted { inner: a, last: last.clone() };
    let mut b = Noted { inner: b, last: last.clone() };
    let idle_ms = idle.as_millis() as i64;
    let watchdog = async {
        loop {
            let quiet = now_ms() - last.load(Ordering::Relaxed);
            let mut wait = idle_ms - quiet;
            if let Some(until) = until {
                wait = wait.min(until * 1000 - now_ms());
            }
            if wait <= 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
        _ = watchdog => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_flow_until_the_connection_is_idle_too_long() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (server, mut server_peer) = tokio::io::duplex(64);
        let task = tokio::spawn(pump(client, server, Duration::from_millis(300), None));
        for _ in 0..3 {
            client_peer.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            server_peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(!task.is_finished(), "traffic keeps it open");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("closed once idle").unwrap();
        let mut rest = Vec::new();
        assert_eq!(server_peer.read_to_end(&mut rest).await.unwrap(), 0, "the server side sees it closed");
    }

    #[tokio::test]
    async fn a_token_that_expires_closes_the_connection() {
        let (client, _c) = tokio::io::duplex(64);
        let (server, _s) = tokio::io::duplex(64);
        let until = crate::ids::now_micros() / 1_000_000 + 1;
        tokio::time::timeout(Duration::from_secs(5), pump(client, server, IDLE, Some(until))).await.expect("closed at the expiry");
    }
}
