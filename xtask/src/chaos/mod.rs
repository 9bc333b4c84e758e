//! `cargo xtask chaos`: fault scenarios against the release binaries, one
//! table row each — lines lost, duplicated, in the error file, and the
//! upstream calls repeated. A load run for a person to read, not part of
//! CI; it exits non-zero when a scenario lost or duplicated lines (or its
//! batch never ended), after printing the whole table.
//!
//! See docs/batches.md ("How the guarantees are checked") for what each
//! scenario does and what its numbers mean.

mod disk;
mod fleet;
mod report;
mod scenarios;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::procs::build_release;
use fleet::GatewayConfig;
use report::{print_table, Row, Verdict};
use scenarios::Stop;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only this scenario.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Lines per batch.
    #[arg(long, default_value_t = 2000)]
    lines: usize,
    /// The deployment's max_parallel_requests.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// The mock's latency per request, in milliseconds.
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// Gateway stops in kill9-loop and sigterm.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Seconds the upstream is down in `outage`.
    #[arg(long, default_value_t = 20)]
    outage_secs: u64,
    /// Seconds the disk stays full in `full-disk`.
    #[arg(long, default_value_t = 8)]
    full_secs: u64,
    /// Seed for kill timings and the mock's faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the work directory (logs, data dirs) and print its path.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    #[value(name = "kill9-loop")]
    Kill9Loop,
    #[value(name = "sigterm")]
    Sigterm,
    #[value(name = "fault-mix")]
    FaultMix,
    #[value(name = "outage")]
    Outage,
    #[value(name = "full-disk")]
    FullDisk,
}

const ALL: [Scenario; 5] = [
    Scenario::Kill9Loop,
    Scenario::Sigterm,
    Scenario::FaultMix,
    Scenario::Outage,
    Scenario::FullDisk,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Kill9Loop => "kill9-loop",
            Scenario::Sigterm => "sigterm",
            Scenario::FaultMix => "fault-mix",
            Scenario::Outage => "outage",
            Scenario::FullDisk => "full-disk",
        }
    }
}

/// What every scenario needs to know.
#[derive(Debug)]
pub struct Ctx {
    bin: PathBuf,
    lines: usize,
    parallel: usize,
    latency: Duration,
    kills: usize,
    outage: Duration,
    full: Duration,
    seed: u64,
}

impl Ctx {
    fn gateway_config(&self, timeout_secs: Option<u64>) -> GatewayConfig {
        GatewayConfig {
            parallel: self.parallel,
            timeout_secs,
        }
    }

    /// How long a batch may take to end: four times the undisturbed run
    /// time (lines × latency ÷ parallel), plus a minute.
    fn patience(&self) -> Duration {
        let ideal = self.latency * self.lines as u32 / self.parallel.max(1) as u32;
        ideal * 4 + Duration::from_secs(60)
    }
}

/// The work directory; removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("chaos: work directory kept at {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.lines == 0 || args.parallel == 0 {
        bail!("--lines and --parallel must be at least 1");
    }
    let ctx = Ctx {
        bin: build_release()?,
        lines: args.lines,
        parallel: args.parallel,
        latency: Duration::from_millis(args.latency_ms),
        kills: args.kills,
        outage: Duration::from_secs(args.outage_secs),
        full: Duration::from_secs(args.full_secs),
        seed: args.seed,
    };
    let work = WorkDir {
        path: std::env::temp_dir().join(format!("batchgate-chaos-{}", std::process::id())),
        keep: args.keep,
    };
    std::fs::create_dir_all(&work.path)?;
    let chosen: Vec<Scenario> = match args.scenario {
        Some(s) => vec![s],
        None => ALL.to_vec(),
    };
    let rt = tokio::runtime::Runtime::new()?;
    // Ctrl-C drops the running scenario: its guards kill the processes and
    // unmount the tmpfs before the work directory goes.
    let rows = rt.block_on(async {
        tokio::select! {
            rows = run_all(&ctx, &chosen, &work.path) => Ok(rows),
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    print_table(&rows);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| r.name)
        .collect();
    if !failed.is_empty() {
        bail!("chaos: {} failed", failed.join(", "));
    }
    Ok(())
}

async fn run_all(ctx: &Ctx, chosen: &[Scenario], work: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for &which in chosen {
        eprintln!("chaos: {} …", which.name());
        let row = run_one(ctx, which, &work.join(which.name())).await;
        eprintln!(
            "chaos: {} done in {:.1} s: {}",
            which.name(),
            row.wall.as_secs_f64(),
            row.status
        );
        rows.push(row);
    }
    rows
}

async fn run_one(ctx: &Ctx, which: Scenario, dir: &Path) -> Row {
    let t = Instant::now();
    let result = async {
        std::fs::create_dir_all(dir)?;
        match which {
            Scenario::Kill9Loop => scenarios::stop_loop(ctx, dir, Stop::Kill).await,
            Scenario::Sigterm => scenarios::stop_loop(ctx, dir, Stop::Term).await,
            Scenario::FaultMix => scenarios::fault_mix(ctx, dir).await,
            Scenario::Outage => scenarios::outage(ctx, dir).await,
            Scenario::FullDisk => scenarios::full_disk(ctx, dir).await,
        }
    }
    .await;
    let mut row = match result {
        Ok(row) => row,
        Err(e) => Row::broken(which.name(), &e),
    };
    row.name = which.name();
    row.wall = t.elapsed();
    row
}
