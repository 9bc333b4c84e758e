//! `cargo xtask <task>`: the project's own automation.
//! - `ci`: everything CI checks (fmt, clippy, every Rust test, the Python
//!   SDK suite, the quickstart).
//! - `quickstart`: mock vLLM + batchgate on the embedded store, the seed's
//!   flow once, then keep serving.
//! - `bench`: load runs against the release binaries, as one table.

mod bench;
mod ci;
mod quickstart;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every check CI runs.
    Ci(ci::Args),
    /// Start mock-vllm and batchgate, run the seed's batch flow, keep serving.
    Quickstart(quickstart::Args),
    /// Load runs against release binaries; prints one table.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Ci(args) => ci::run(args),
        Task::Quickstart(args) => quickstart::run(args),
        Task::Bench(args) => bench::run(args),
    }
}
