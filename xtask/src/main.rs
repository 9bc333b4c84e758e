//! `cargo xtask <task>`: the project's own automation.
//! - `ci`: everything CI checks (fmt, clippy, every Rust test, the Python
//!   SDK suite, the quickstart).
//! - `quickstart`: mock vLLM + batchgate on the embedded store, the seed's
//!   flow once, then keep serving.
//! - `bench`: load runs against the release binaries, as one table.
//! - `chaos`: fault scenarios (SIGKILL loop, SIGTERM, upstream fault mix,
//!   upstream outage, full disk) against the release binaries; one table
//!   row each with lines lost, duplicated, in the error file and upstream
//!   calls repeated. Exits non-zero if a scenario lost or duplicated lines.
//!   Not part of CI.
//!
//! `procs` (child processes, release build) and `api` (the Files/Batch
//! calls) are shared by the load runs.

mod api;
mod bench;
mod chaos;
mod ci;
mod procs;
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
    /// Fault scenarios against release binaries; prints one table.
    Chaos(chaos::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Ci(args) => ci::run(args),
        Task::Quickstart(args) => quickstart::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Chaos(args) => chaos::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks (unique argument and group names, …) run only
    /// when a command is parsed: here, for every command at once.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    /// docs/architecture.md names every command, so none is a secret.
    #[test]
    fn the_architecture_doc_lists_every_command() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/architecture.md");
        let docs = std::fs::read_to_string(path).unwrap_or_default();
        let names: Vec<String> = super::Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 4, "{names:?}");
        for name in names {
            assert!(
                docs.contains(&format!("| `cargo xtask {name}` |")),
                "docs/architecture.md does not list `cargo xtask {name}`"
            );
        }
    }
}
