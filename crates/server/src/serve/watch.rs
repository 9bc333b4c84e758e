//! What one connection is doing, seen from its socket and its requests, so
//! a watchdog can close it when a client holds it without using it:
//!
//! - a new connection must deliver a request's headers within the header
//!   timeout of being accepted (a client that connects and sends nothing,
//!   or stops mid-header, is closed);
//! - between requests, a kept-alive connection may stay idle for the
//!   keep-alive timeout; once the next request's first byte arrives, its
//!   headers must be complete within the header timeout.
//!
//! While a request is in flight (from its headers until its response body
//! has been written or dropped) the watchdog never closes the connection:
//! slow upstreams and large uploads are not idleness. hyper alone cannot
//! express this: its header timer also runs through keep-alive idleness.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// No request head has begun arriving.
const NONE: u64 = u64::MAX;

/// The two timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub keep_alive: Duration,
}

/// Shared by a connection's socket wrapper, its in-flight requests and its
/// watchdog. Times are milliseconds since `start`.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Whether any response has been completed on this connection.
    served: AtomicBool,
    /// When the connection last became idle (a response ended).
    idle_since: AtomicU64,
    /// When bytes of the next request head began arriving, or [`NONE`].
    head_since: AtomicU64,
    /// Wakes the watchdog when a deadline may have moved.
    changed: Notify,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(NONE, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request's headers were read; it is in flight until the guard drops.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the watchdog should close the connection; `None` while a
    /// request is in flight.
    fn deadline(&self, t: Timeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Acquire) {
            return Some(self.at(0) + t.header_read);
        }
        match self.head_since.load(Ordering::Acquire) {
            NONE => Some(self.at(self.idle_since.load(Ordering::Acquire)) + t.keep_alive),
            head => Some(self.at(head) + t.header_read),
        }
    }

    /// Returns once the connection has been unused past its deadline.
    pub async fn expired(&self, t: Timeouts) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(t) {
                None => changed.await,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {
                            if self.deadline(t).is_some_and(|d| d <= Instant::now()) {
                                return;
                            }
                        }
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// One request in flight; dropped when its response body is done.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now_ms(), Ordering::Release);
            a.served.store(true, Ordering::Release);
            a.changed.notify_one();
        }
    }
}

/// A response body that holds its request's [`InFlight`] until hyper has
/// written it (or given up on it).
#[derive(Debug)]
pub struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub fn new(inner: Body, in_flight: InFlight) -> Tracked {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that reports arriving bytes to its connection's [`Activity`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(30),
        keep_alive: Duration::from_secs(75),
    };

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_state() {
        let a = Activity::new();
        let t0 = Instant::now();
        // New connection: headers due within the header timeout, whatever
        // trickles in.
        assert_eq!(a.deadline(T), Some(t0 + T.header_read));
        tokio::time::advance(Duration::from_secs(10)).await;
        a.on_read();
        assert_eq!(a.deadline(T), Some(t0 + T.header_read));
        // In flight: never.
        let req = a.request_started();
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert_eq!(a.deadline(T), None);
        drop(req);
        // Idle after a response: the keep-alive timeout.
        let idle = Instant::now();
        assert_eq!(a.deadline(T), Some(idle + T.keep_alive));
        // The next request's first byte: the header timeout from there.
        tokio::time::advance(Duration::from_secs(60)).await;
        a.on_read();
        assert_eq!(a.deadline(T), Some(Instant::now() + T.header_read));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_waits_out_requests_in_flight() {
        let a = Activity::new();
        let req = a.request_started();
        let watch = a.clone();
        let expiry = tokio::spawn(async move { watch.expired(T).await });
        tokio::time::advance(Duration::from_secs(500)).await;
        tokio::task::yield_now().await;
        assert!(!expiry.is_finished(), "a request in flight is never idle");
        drop(req);
        tokio::time::advance(T.keep_alive + Duration::from_secs(1)).await;
        assert!(expiry.await.is_ok());
    }
}
