//! `batchgate`: parse flags, load config, serve.

mod boot;
mod providers;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// OpenAI Files and Batch APIs in front of self-hosted vLLM deployments.
#[derive(Debug, Parser)]
#[command(name = "batchgate", version, about)]
pub struct Cli {
    /// LiteLLM-style config.yaml (model_list, general_settings, batch_settings).
    #[arg(long, env = "BATCHGATE_CONFIG")]
    config: PathBuf,
    #[arg(long, default_value = "127.0.0.1", env = "BATCHGATE_HOST")]
    host: IpAddr,
    #[arg(long, default_value_t = 4000, env = "BATCHGATE_PORT")]
    port: u16,
    /// Where the embedded store keeps metadata (SQLite) and file bytes.
    #[arg(long, default_value = "./batchgate-data", env = "BATCHGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// Serve without any API key check. Only for local experiments.
    #[arg(long)]
    insecure_no_auth: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("batchgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(boot::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
