//! Serving the router: our own accept loop over hyper, because
//! `axum::serve` can bound neither how long a client may hold a connection
//! without using it nor how many connections are open at once — a few
//! thousand silent sockets were enough to stop the gateway answering.
//!
//! - At most `max_connections` connections are served at once. At the cap
//!   the loop stops accepting (clients wait in the kernel's backlog) until
//!   one closes, rather than accepting and dropping.
//! - Each connection has a watchdog ([`watch`]): headers within the header
//!   timeout, idle keep-alive within the keep-alive timeout, never while a
//!   request is in flight.
//! - On shutdown the listener closes first, then connections drain: idle
//!   ones close at once, in-flight requests finish.

mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use batchgate_config::ServerSettings;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use self::watch::{Activity, Timeouts, Tracked, Watched};
use crate::app::{router, AppState};
use crate::auth::Auth;

/// File descriptors kept free for everything but client connections: the
/// store, blobs, spool files, upstream sockets.
#[cfg(unix)]
const RESERVED_FDS: u64 = 512;
/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves until `shutdown` completes, then drains connections. Pass
/// [`shutdown_signal`] to stop on SIGINT/SIGTERM. Background work (expiry
/// sweep, budget resets, batches) belongs to the gateway's components and
/// is started with them ([`batchgate_engine::Assembly::start`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    auth: Auth,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = router(state, auth);
    serve_connections(listener, app, settings, shutdown).await;
    // The listener is closed and every connection has drained. The batch
    // engine's graceful stop runs beside this, started by the same signal
    // (the binary's `boot`), and is awaited there.
    Ok(())
}

/// The accept loop; returns once `shutdown` completed and every connection
/// has closed.
async fn serve_connections(
    listener: TcpListener,
    app: Router,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let cap = fit_to_open_files(settings.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let timeouts = Timeouts {
        header_read: settings.header_read_timeout(),
        keep_alive: settings.keep_alive_timeout(),
    };
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, accept nothing until a connection ends.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        serve_one(stream, slot, app.clone(), timeouts, &graceful);
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: draining connections"
    );
    graceful.shutdown().await;
}

/// Serves one connection in its own task, holding `slot` until it closes.
fn serve_one(
    stream: TcpStream,
    slot: OwnedSemaphorePermit,
    app: Router,
    timeouts: Timeouts,
    graceful: &GracefulShutdown,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = requests.request_started();
        let response = app.clone().oneshot(req);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer (it also runs through keep-alive idleness)
    // only backs up the watchdog, at the longest wait it allows.
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read + timeouts.keep_alive)
        .keep_alive(true);
    let connection = graceful.watch(http.serve_connection(io, service));
    tokio::spawn(async move {
        tokio::select! {
            served = connection => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            () = activity.expired(timeouts) => {
                tracing::debug!("closing a connection unused past its timeout");
            }
        }
        drop(slot);
    });
}

async fn accept_failed(e: &std::io::Error) {
    // A client that gave up before we accepted it is routine.
    if matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// The connection cap the process's open-file limit allows: the soft limit
/// is raised towards the hard one if `wanted` needs it; if it still falls
/// short, the cap shrinks to fit (with a warning), so that a full house of
/// connections cannot leave the gateway without descriptors for its store,
/// its upstreams — or its health probes.
#[cfg(unix)]
fn fit_to_open_files(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let need = u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FDS);
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return wanted;
    };
    let mut soft = soft;
    if soft < need {
        let raised = limit.maximum.map_or(need, |hard| hard.min(need));
        let set = Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        };
        if raised > soft && setrlimit(Resource::Nofile, set).is_ok() {
            soft = raised;
        }
    }
    if soft >= need {
        return wanted;
    }
    let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(wanted);
    tracing::warn!(
        max_connections = wanted,
        open_file_limit = soft,
        serving = fit,
        "the open-file limit is too low for server_settings.max_connections; serving fewer connections"
    );
    fit
}

#[cfg(not(unix))]
fn fit_to_open_files(wanted: usize) -> usize {
    wanted
}

/// Completes on SIGINT or SIGTERM: the usual `shutdown` for [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections");
}
