//! `cargo xtask ci`.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::procs::{cargo, without_cargo_run_env};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the Python SDK suite (it needs PyPI for its first run).
    #[arg(long)]
    no_python: bool,
}

pub fn run(args: Args) -> Result<()> {
    step("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "build binaries",
        cargo().args(["build", "-p", "batchgate", "-p", "batchgate-mock-vllm"]),
    )?;
    step(
        "rust tests",
        cargo().args(["test", "--workspace", "--all-targets"]),
    )?;
    step("doc tests", cargo().args(["test", "--workspace", "--doc"]))?;
    step(
        "quickstart",
        cargo().args([
            "xtask",
            "quickstart",
            "--exit",
            "--port",
            "4100",
            "--mock-port",
            "8100",
            "--data-dir",
            "target/quickstart-ci",
        ]),
    )?;
    if !args.no_python {
        step(
            "python SDK tests",
            without_cargo_run_env(Command::new("bash").arg("tests/python/run.sh")),
        )?;
    }
    eprintln!("\nxtask ci: all checks passed");
    Ok(())
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n=== {name}: {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
