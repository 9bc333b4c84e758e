//! `mock-vllm`: run the mock vLLM server as a process.
//!
//! Prints `mock-vllm listening on http://HOST:PORT` on stdout once bound and
//! stops gracefully on SIGINT/SIGTERM. Logs go to stderr (`RUST_LOG`).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use batchgate_mock_vllm::{Faults, MockConfig, MockVllm, DEFAULT_MODEL};
use clap::Parser;

/// A stand-in for `vllm serve` with latency and fault injection.
#[derive(Debug, Parser)]
#[command(name = "mock-vllm", version)]
struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Served model name; repeat for several.
    #[arg(long = "model", default_value = DEFAULT_MODEL)]
    models: Vec<String>,
    /// Require `Authorization: Bearer <KEY>` on /v1/*.
    #[arg(long)]
    api_key: Option<String>,
    /// Delay added before answering each inference request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Fraction of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// `Retry-After` seconds on injected 429s.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Fraction of requests whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fraction of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Answer 500 to the first N attempts of each distinct request body.
    #[arg(long, default_value_t = 0)]
    fail_first_n: u32,
    /// Seed for the fault RNG.
    #[arg(long)]
    seed: Option<u64>,
}

impl Cli {
    fn config(&self) -> MockConfig {
        MockConfig {
            models: self.models.clone(),
            api_key: self.api_key.clone(),
            latency: Duration::from_millis(self.latency_ms),
            faults: Faults {
                fail_rate: self.fail_rate,
                rate_limit_rate: self.rate_limit_rate,
                retry_after_secs: self.retry_after_secs,
                drop_rate: self.drop_rate,
                hang_rate: self.hang_rate,
                fail_first_n: self.fail_first_n,
            },
            seed: self.seed,
        }
    }
}

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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
