//! The batchgate operator CLI: subcommands of the `batchgate` binary that talk
//! to a **running** gateway over HTTP, with the same OpenAI Files and Batch
//! API any SDK uses.
//!
//! ```text
//! batchgate submit FILE --model M [--endpoint E] [--window 24h] [--metadata k=v]... [--wait [--out DIR] [--progress auto|bar|plain]]
//! batchgate batches ls [--limit N] [--after ID] [--model M] | get ID | cancel ID
//! batchgate files ls [--purpose P] [--limit N] [--after ID] | get ID | rm ID | download ID [-o PATH]
//! ```
//!
//! Every subcommand takes `--base-url` (`BATCHGATE_BASE_URL`, default
//! `http://127.0.0.1:4000`), `--api-key` (`BATCHGATE_API_KEY`) and `--json`
//! (print the gateway's JSON instead of tables). Exit codes are in [`exit`].

pub mod batches;
pub mod client;
pub mod error;
pub mod files;
pub mod output;
pub mod progress;
pub mod submit;
pub mod upstream;
pub mod wait;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use client::Client;
pub use error::{CliError, Result};

/// The process exit codes of the CLI subcommands.
pub mod exit {
    /// Success; for `submit --wait`: the batch completed with no failed line.
    pub const OK: u8 = 0;
    /// `submit --wait`: the batch completed, but some lines failed.
    pub const SOME_FAILED: u8 = 1;
    /// `submit --wait`: the batch ended `failed`, `expired` or `cancelled`.
    pub const NOT_COMPLETED: u8 = 2;
    /// A usage error, an HTTP error answer, or a local I/O error.
    pub const ERROR: u8 = 3;
    /// `submit --wait` was interrupted a second time and stopped waiting
    /// (128 + SIGINT); the batch may still be running or cancelling.
    pub const INTERRUPTED: u8 = 130;
}

/// Options every subcommand accepts (after the subcommand's name).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Base URL of the running gateway.
    #[arg(
        long,
        global = true,
        env = "BATCHGATE_BASE_URL",
        default_value = "http://127.0.0.1:4000"
    )]
    pub base_url: String,
    /// API key (the master key or a virtual key) sent as a bearer token.
    #[arg(long, global = true, env = "BATCHGATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the gateway's JSON answers instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Global {
    /// A client for the configured gateway.
    pub fn client(&self) -> Result<Client> {
        Client::new(&self.base_url, self.api_key.as_deref())
    }
}

/// The operator subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload a JSONL file, create a batch over it and, with --wait, follow it
    /// to the end and download its results.
    Submit(submit::SubmitArgs),
    /// List, inspect and cancel batches.
    Batches(batches::BatchesArgs),
    /// List, inspect, download and delete files.
    Files(files::FilesArgs),
}

/// Runs `command` on a runtime of its own and returns the exit code.
pub fn main(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("batchgate: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(run(command));
    // A pending stdin read (the cancel prompt) must not keep us alive.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// Runs `command`; errors are printed to stderr and give [`exit::ERROR`].
pub async fn run(command: Command) -> u8 {
    let result = match command {
        Command::Submit(args) => submit::run(args).await,
        Command::Batches(args) => batches::run(args).await,
        Command::Files(args) => files::run(args).await,
    };
    match result {
        Ok(code) => code,
        // The reader went away (`files download ID | head`): what it
        // wanted, it got. Not an error worth a message or a failing status.
        Err(e) if e.is_broken_pipe() => exit::OK,
        Err(e) => {
            eprintln!("batchgate: error: {e}");
            exit::ERROR
        }
    }
}

/// Prints a command-line parse error (or help/version) and picks the exit
/// code: 0 for help/version, [`exit::ERROR`] when `args` name an operator
/// subcommand, clap's usual 2 for the server's own flags.
pub fn parse_error_exit(err: &clap::Error, args: &[OsString]) -> ExitCode {
    let _ = err.print();
    if !err.use_stderr() {
        return ExitCode::SUCCESS;
    }
    let operator = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .any(<Command as Subcommand>::has_subcommand);
    ExitCode::from(if operator { exit::ERROR } else { 2 })
}
