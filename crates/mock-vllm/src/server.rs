//! Starting, controlling and stopping a mock server.
//!
//! The server runs its own HTTP/1.1 accept loop (hyper) around the axum
//! router so that an injected *drop* can abort a connection without writing
//! any response.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use crate::config::{Faults, MockConfig};
use crate::routes::{self, DropConnection};
use crate::scheduler::LoadStats;
use crate::state::AppState;
use crate::stats::MockStats;

/// How long a stopping server lets in-flight requests finish before it
/// aborts them (hung requests never finish on their own).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Entry point: starts mock servers. See [`MockVllm::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MockVllm;

impl MockVllm {
    /// Starts a server on `127.0.0.1` with an OS-chosen port.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use batchgate_mock_vllm::{MockConfig, MockVllm};
    /// let mock = MockVllm::start(MockConfig::default()).await?;
    /// let url = format!("{}/v1/chat/completions", mock.base_url());
    /// # let _ = url;
    /// mock.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(cfg: MockConfig) -> io::Result<MockHandle> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a server on `addr` (port 0 picks a free port). Fails only if the
    /// address cannot be bound.
    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> io::Result<MockHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState::new(cfg));
        let router = routes::router(Arc::clone(&state));
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, router, rx));
        tracing::info!(%addr, "mock-vllm started");
        Ok(MockHandle {
            addr,
            state,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running mock server. Dropping it stops the server (in the background);
/// [`MockHandle::shutdown`] stops it and waits.
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters (same data as `GET /mock/stats`).
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// The batch model's figures since start or the last reset (same data
    /// as `GET /mock/load`).
    pub fn load(&self) -> LoadStats {
        self.state.scheduler.load()
    }

    /// Zeroes the counters, including the `fail_first_n` attempt counts, and
    /// re-seeds the fault RNG if a seed was configured (like `POST /mock/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// The faults now in force.
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Replaces the faults for subsequent requests (rates are clamped).
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Stops accepting, lets in-flight requests finish for up to
    /// [`SHUTDOWN_GRACE`], aborts the rest and waits for all of it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Resolves once shutdown is requested or the handle is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The accept loop.
async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_conn(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::debug!(
            left = conns.len(),
            "aborting connections after grace period"
        );
    }
    conns.shutdown().await;
    tracing::info!("mock-vllm stopped");
}

/// Returned by the per-connection service to make hyper close the
/// connection without a response.
#[derive(Debug)]
struct DroppedByFault;

impl fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedByFault {}

/// Serves one HTTP/1.1 connection until it closes or shutdown is requested.
async fn serve_conn(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(DroppedByFault)
            } else {
                Ok::<_, DroppedByFault>(resp)
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with error");
            }
        }
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
