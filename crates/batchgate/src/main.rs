//! `batchgate`: with `--config`, parse flags, load config, serve; with a
//! subcommand (`submit`, `batches`, `files`), run the operator CLI against a
//! running gateway (see the `batchgate-cli` crate).

mod boot;
mod providers;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// OpenAI Files and Batch APIs in front of self-hosted vLLM deployments.
///
/// `batchgate --config FILE` serves; the subcommands talk to a running
/// gateway.
#[derive(Debug, Parser)]
#[command(
    name = "batchgate",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    /// LiteLLM-style config.yaml (model_list, general_settings, batch_settings).
    #[arg(long, env = "BATCHGATE_CONFIG", required = true)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1", env = "BATCHGATE_HOST")]
    host: IpAddr,
    #[arg(long, default_value_t = 4000, env = "BATCHGATE_PORT")]
    port: u16,
    /// Where the gateway keeps file bytes, its upload spool and instance id,
    /// and — unless `database_url` names PostgreSQL — metadata (SQLite).
    #[arg(long, default_value = "./batchgate-data", env = "BATCHGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// Serve without any API key check. Only for local experiments.
    #[arg(long)]
    insecure_no_auth: bool,
    #[command(subcommand)]
    command: Option<batchgate_cli::Command>,
}

/// The serve flags, as [`boot::run`] reads them.
#[derive(Debug)]
pub struct Cli {
    config: PathBuf,
    host: IpAddr,
    port: u16,
    data_dir: PathBuf,
    insecure_no_auth: bool,
}

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    let args = match Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(e) => return batchgate_cli::parse_error_exit(&e, &argv),
    };
    match (args.command, args.config) {
        (Some(command), _) => batchgate_cli::main(command),
        (None, Some(config)) => serve(Cli {
            config,
            host: args.host,
            port: args.port,
            data_dir: args.data_dir,
            insecure_no_auth: args.insecure_no_auth,
        }),
        (None, None) => {
            eprintln!(
                "batchgate: --config is required to serve (or give a subcommand; see --help)"
            );
            ExitCode::from(2)
        }
    }
}

fn serve(cli: Cli) -> ExitCode {
    // Logs, and OTLP traces when OTEL_EXPORTER_OTLP_ENDPOINT is set; the
    // guard flushes the spans at exit (dropped after the runtime).
    let _telemetry = batchgate_server::telemetry::init();
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
