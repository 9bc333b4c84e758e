//! `mock-vllm`: run the mock vLLM server as a process.
//!
//! Prints `mock-vllm listening on http://HOST:PORT` on stdout once bound and
//! stops gracefully on SIGINT/SIGTERM. Logs go to stderr (`RUST_LOG`).

mod cli;

use std::net::SocketAddr;
use std::process::ExitCode;

use batchgate_mock_vllm::MockVllm;
use clap::Parser;
use cli::Cli;

/// Resolves on SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours on a terminal only, and never under NO_COLOR (no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let addr = SocketAddr::new(cli.host, cli.port);
    let handle = match MockVllm::start_on(cli.config(), addr).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mock-vllm: cannot bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mock-vllm listening on {}", handle.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}
