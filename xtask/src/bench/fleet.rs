//! `cargo xtask bench --fleet N`: what running as a fleet on one
//! PostgreSQL database gains and costs.
//!
//! 1. One latency-bound batch run by one instance, then by N instances
//!    sharing one database and one `file://` blob store, at the same
//!    fleet-wide upstream concurrency C and a fixed limit (no adaptive
//!    ramp). The upstream, not the gateway, is the bottleneck in both, so
//!    their ratio is what the fleet loses to coordination: chunk leases,
//!    fenced journal writes, the split of the limit (each instance waits
//!    two heartbeats before sending its share), the holder watching its
//!    chunk runners and finalizing alone.
//! 2. The journal's cost per line, SQLite against PostgreSQL: one instance
//!    and a zero-latency upstream, so the wall time is the engine's and the
//!    store's own.
//! 3. Each instance's RSS at the end of the N-instance run.
//!
//! Every PostgreSQL run gets a schema of its own (made with `psql`, dropped
//! after the run), so no run reads or competes with another's rows.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use batchgate_mock_vllm::{LoadStats, DEFAULT_MODEL};
use tokio::runtime::Runtime;

use super::{mib, reset_peak, rss_kib, start_mock, write_lines, Row, KEY};
use crate::api::Api;
use crate::procs::{has, Proc};

/// Whether the gateway under test splits `max_parallel_requests` across
/// the fleet (each instance takes its share from the `fleet_presence`
/// heartbeats; since 608436d). Then every instance is configured with C.
/// Set it to `false` (or pass `--fleet-wide-limit false`) only for a
/// gateway from before that, where the limit holds per instance: the
/// bench then configures each instance with its share of C itself (C / N,
/// the remainder spread). On a fleet-wide gateway `false` would split C
/// twice.
const LIMIT_IS_FLEET_WIDE: bool = true;

/// The ID secret every instance shares (IDs minted by one verify on all).
const SECRET: &str = "batchgate-bench-fleet-id-secret";
/// The server used when neither `--database-url` nor a PostgreSQL
/// `DATABASE_URL` names one: the tests' database.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Run only the fleet comparison: one instance against N instances
    /// sharing a PostgreSQL database and a blob store, the journal's cost
    /// on SQLite and PostgreSQL, and each instance's RSS.
    #[arg(long, value_name = "N")]
    pub fleet: Option<usize>,
    /// Lines of the fleet comparison's latency-bound batch.
    #[arg(long, default_value_t = 50_000)]
    pub fleet_lines: usize,
    /// Fleet-wide upstream concurrency C of the fleet comparison.
    #[arg(long, default_value_t = 64)]
    pub fleet_concurrency: usize,
    /// Upstream latency of the fleet comparison, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub fleet_latency_ms: u64,
    /// Lines of the journal-cost batch (zero-latency upstream, run at
    /// `--concurrency`).
    #[arg(long, default_value_t = 20_000)]
    pub journal_lines: usize,
    /// PostgreSQL server for the fleet runs (a schema is made in it per
    /// run and dropped after); default: `DATABASE_URL` when it names
    /// PostgreSQL, else postgres://postgres@127.0.0.1:5432/test.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Configure C on every instance (the gateway splits it across the
    /// fleet); `false`: C / N each, for a gateway whose limit holds per
    /// instance (before 608436d).
    #[arg(long, default_value_t = LIMIT_IS_FLEET_WIDE, action = clap::ArgAction::Set)]
    pub fleet_wide_limit: bool,
}

/// What every run of this mode shares.
struct Ctx<'a> {
    bin: &'a Path,
    work: &'a Path,
    rt: &'a Runtime,
    /// The PostgreSQL server's URL, without a schema.
    database: String,
}

/// Runs the three parts and prints one table.
pub fn run(
    bin: &Path,
    work: &Path,
    rt: &Runtime,
    args: &FleetArgs,
    journal_c: usize,
) -> Result<()> {
    let n = args.fleet.unwrap_or(1);
    if n < 2 {
        bail!("--fleet needs at least 2 instances, got {n}");
    }
    if args.fleet_concurrency < n {
        bail!("--fleet-concurrency must be at least the number of instances");
    }
    if !has("psql") {
        bail!("--fleet makes and drops its PostgreSQL schemas with psql: install the PostgreSQL client");
    }
    let ctx = Ctx {
        bin,
        work,
        rt,
        database: database_url(args),
    };
    let mut rows = fleet_rows(&ctx, args, n)?;
    rows.extend(journal_rows(&ctx, args.journal_lines, journal_c)?);
    println!("\n| measurement | result | target |\n|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.what, r.result, r.target);
    }
    Ok(())
}

fn database_url(args: &FleetArgs) -> String {
    let from_env = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    args.database_url
        .clone()
        .or(from_env)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

/// Each instance's `max_parallel_requests` in a fleet of `n` meant to send
/// at most `c` requests at once.
fn limits(c: usize, n: usize, fleet_wide: bool) -> Vec<usize> {
    if fleet_wide {
        return vec![c; n];
    }
    // The remainder goes to the first instances, so the fleet's total is
    // exactly C (64 over 3 is 22 + 21 + 21, not 3 × 21 = 63).
    (0..n).map(|i| c / n + usize::from(i < c % n)).collect()
}

/// Part 1 (one instance against `n`) and part 3 (their RSS).
fn fleet_rows(ctx: &Ctx<'_>, args: &FleetArgs, n: usize) -> Result<Vec<Row>> {
    let latency = args.fleet_latency_ms.to_string();
    let (_mock, mock) = start_mock(ctx.bin, &["--port", "0", "--latency-ms", &latency])?;
    let input = ctx.work.join("fleet.jsonl");
    write_lines(&input, "bench-model", args.fleet_lines)?;
    let c = args.fleet_concurrency;
    let one = fleet_run(ctx, &mock, &input, &[c])?;
    let fleet = fleet_run(ctx, &mock, &input, &limits(c, n, args.fleet_wide_limit))?;
    let (lines, ms) = (args.fleet_lines as f64, args.fleet_latency_ms as f64);
    let ideal = c as f64 * 1000.0 / ms;
    let rate = |o: &FleetRun| lines / o.secs;
    let mut rows = vec![
        Row {
            what: format!(
                "(f) {} lines, {ms} ms upstream, C = {c}: 1 instance (PostgreSQL)",
                args.fleet_lines
            ),
            result: one.describe(lines, ideal),
            target: "(reference)".into(),
        },
        Row {
            what: format!(
                "(f) the same, {n} instances ({})",
                fleet.limits_text(args.fleet_wide_limit)
            ),
            result: fleet.describe(lines, ideal),
            target: "(against 1 instance)".into(),
        },
        Row {
            what: format!("(f) {n} instances / 1 instance, lines/s"),
            result: format!("**{:.2}×**", rate(&fleet) / rate(&one)),
            target: "≥ 0.95×".into(),
        },
    ];
    for (i, end) in fleet.ends.iter().enumerate() {
        rows.push(Row {
            what: format!("(r) instance {} of {n}, end of the run", i + 1),
            result: format!(
                "VmRSS {}, VmHWM {}; {} lines journaled",
                mib(end.rss_kib),
                mib(end.hwm_kib),
                end.lines
            ),
            target: "—".into(),
        });
    }
    Ok(rows)
}

/// One batch run by a fleet with these per-instance limits.
struct FleetRun {
    secs: f64,
    load: LoadStats,
    limits: Vec<usize>,
    ends: Vec<InstanceEnd>,
}

/// One instance as the batch completed.
struct InstanceEnd {
    rss_kib: u64,
    hwm_kib: u64,
    lines: u64,
}

impl FleetRun {
    fn describe(&self, lines: f64, ideal: f64) -> String {
        format!(
            "{:.1} s, **{:.0} lines/s** (ideal {ideal:.0}); upstream: {:.1} in flight on average, {:.0} req/s over its load window",
            self.secs,
            lines / self.secs,
            self.load.avg_running,
            self.load.throughput,
        )
    }

    fn limits_text(&self, fleet_wide: bool) -> String {
        if fleet_wide {
            let c = self.limits.first().copied().unwrap_or_default();
            return format!("each configured with {c}, split by the fleet");
        }
        let each: Vec<String> = self.limits.iter().map(usize::to_string).collect();
        format!("limits {}", each.join(" + "))
    }
}

/// Starts one instance per entry of `limits` on a fresh schema and a fresh
/// shared blob directory, runs `input` through the first, and reads every
/// instance's RSS and share of the lines once it has completed.
fn fleet_run(ctx: &Ctx<'_>, mock: &str, input: &Path, limits: &[usize]) -> Result<FleetRun> {
    let n = limits.len();
    // Declared before the gateways, so dropped after them: the schema goes
    // only once no instance holds a connection to it.
    let schema = Schema::create(&ctx.database, &format!("fleet{n}"))?;
    let dir = ctx.work.join(format!("fleet{n}"));
    let blobs = dir.join("blobs");
    std::fs::create_dir_all(&blobs)?;
    let store = Store::Postgres {
        url: schema.url(),
        blobs: Some(format!("file://{}", blobs.display())),
    };
    let mut gateways = Vec::new();
    for (i, &limit) in limits.iter().enumerate() {
        let gw_dir = dir.join(format!("instance{}", i + 1));
        gateways.push(start_gateway(ctx.bin, &gw_dir, mock, limit, &store)?);
    }
    for (gw, _) in &gateways {
        reset_peak(gw.pid());
    }
    let (secs, load) = ctx.rt.block_on(timed_batch(&gateways[0].1, mock, input))?;
    let mut ends = Vec::new();
    for (gw, url) in &gateways {
        ends.push(InstanceEnd {
            rss_kib: rss_kib(gw.pid(), "VmRSS")?,
            hwm_kib: rss_kib(gw.pid(), "VmHWM")?,
            lines: ctx.rt.block_on(lines_journaled(url))?,
        });
    }
    let run = FleetRun {
        secs,
        load,
        limits: limits.to_vec(),
        ends,
    };
    eprintln!(
        "{n} instance(s): {secs:.1} s, upstream {:.1} in flight on average",
        run.load.avg_running
    );
    Ok(run)
}

/// Part 2: the same zero-latency batch on one instance, on SQLite and then
/// on PostgreSQL (blobs on local disk both times: only the metadata store
/// differs).
fn journal_rows(ctx: &Ctx<'_>, lines: usize, c: usize) -> Result<Vec<Row>> {
    let (_mock, mock) = start_mock(ctx.bin, &["--port", "0"])?;
    let input = ctx.work.join("journal.jsonl");
    write_lines(&input, "bench-model", lines)?;
    let sqlite = journal_run(ctx, &mock, &input, c, &Store::Sqlite, "journal-sqlite")?;
    let schema = Schema::create(&ctx.database, "journal")?;
    let postgres = Store::Postgres {
        url: schema.url(),
        blobs: None,
    };
    let pg = journal_run(ctx, &mock, &input, c, &postgres, "journal-postgres")?;
    let lines_f = lines as f64;
    Ok(vec![
        Row {
            what: format!(
                "(j) journal: {lines}-line batch, zero-latency upstream, concurrency {c}, 1 instance, SQLite (embedded)"
            ),
            result: sqlite.describe(lines_f),
            target: "—".into(),
        },
        Row {
            what: "(j) the same on PostgreSQL".into(),
            result: pg.describe(lines_f),
            target: "—".into(),
        },
        Row {
            what: "(j) PostgreSQL / SQLite, µs per line".into(),
            result: format!(
                "wall **{:.2}×**, load window **{:.2}×**",
                pg.secs / sqlite.secs,
                sqlite.load.throughput / pg.load.throughput
            ),
            target: "—".into(),
        },
    ])
}

/// One journal run: wall seconds and the mock's load over the batch.
struct JournalRun {
    secs: f64,
    load: LoadStats,
}

impl JournalRun {
    /// µs per line of wall time (create → completed: validation, a
    /// fleet member's join, finalization included) and over the upstream's
    /// load window (first request to last answer: dispatch and journal
    /// only; with a zero-latency upstream that is the gateway's own time).
    fn describe(&self, lines: f64) -> String {
        format!(
            "{:.1} s, **{:.0} µs/line** wall ({:.0} lines/s); **{:.0} µs/line** over the upstream's load window",
            self.secs,
            self.secs * 1e6 / lines,
            lines / self.secs,
            1e6 / self.load.throughput,
        )
    }
}

/// `input` run on a fresh instance on `store`.
fn journal_run(
    ctx: &Ctx<'_>,
    mock: &str,
    input: &Path,
    c: usize,
    store: &Store,
    name: &str,
) -> Result<JournalRun> {
    let (_gw, url) = start_gateway(ctx.bin, &ctx.work.join(name), mock, c, store)?;
    let (secs, load) = ctx.rt.block_on(timed_batch(&url, mock, input))?;
    eprintln!("{name}: {secs:.2} s");
    Ok(JournalRun { secs, load })
}

/// Where an instance keeps its metadata and file bytes.
enum Store {
    /// The embedded default: SQLite and blobs in the data directory.
    Sqlite,
    /// A PostgreSQL `database_url`, and a shared `storage_url` if any
    /// (else blobs in the data directory).
    Postgres { url: String, blobs: Option<String> },
}

/// A gateway with a fixed `limit` (adaptive concurrency off, so runs are
/// compared at one concurrency, not along a ramp) on `store`.
fn start_gateway(
    bin: &Path,
    dir: &Path,
    upstream: &str,
    limit: usize,
    store: &Store,
) -> Result<(Proc, String)> {
    std::fs::create_dir_all(dir)?;
    let mut general =
        format!("  master_key: {KEY}\n  id_secret: {SECRET}\n  max_file_size_mb: 1024\n");
    if let Store::Postgres { url, blobs } = store {
        general.push_str(&format!("  database_url: {}\n", yaml_quoted(url)));
        if let Some(blobs) = blobs {
            general.push_str(&format!("  storage_url: {}\n", yaml_quoted(blobs)));
        }
    }
    let config = format!(
        "model_list:\n- model_name: bench-model\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {upstream}\n    max_parallel_requests: {limit}\n    adaptive_concurrency: false\n    batch_api: gateway\ngeneral_settings:\n{general}batch_settings:\n  max_lines: 1000000\n  max_input_mb: 1024\n"
    );
    std::fs::write(dir.join("config.yaml"), config)?;
    let log = std::fs::File::create(dir.join("gateway.log"))?;
    let mut cmd = Command::new(bin.join("batchgate"));
    cmd.arg("--config")
        .arg(dir.join("config.yaml"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        // The config says where everything is: a developer's shell must
        // not move the SQLite run onto a database or a bucket.
        .env_remove("DATABASE_URL")
        .env_remove("BATCHGATE_STORAGE_URL")
        .env_remove("BATCHGATE_ID_SECRET")
        .stderr(Stdio::from(log));
    Proc::start(&mut cmd, "batchgate")
}

/// A YAML single-quoted scalar (URLs hold `?`, `&`, `[`).
fn yaml_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Uploads `input` through `gw`, zeroes the mock's counters, and times
/// create → completed; the seconds and the mock's load over the batch.
async fn timed_batch(gw: &str, mock: &str, input: &Path) -> Result<(f64, LoadStats)> {
    let api = Api::new(gw, KEY)?;
    let file = api.upload(input, "bench-model").await?;
    let http = reqwest::Client::new();
    http.post(format!("{mock}/mock/reset"))
        .send()
        .await?
        .error_for_status()?;
    let t = Instant::now();
    let batch = api.create(&file).await?;
    api.wait_completed(&batch).await?;
    let secs = t.elapsed().as_secs_f64();
    let load = http
        .get(format!("{mock}/mock/load"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((secs, load))
}

/// Lines this instance journaled as completed (its `/metrics`): its share
/// of the batch.
async fn lines_journaled(base: &str) -> Result<u64> {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(KEY)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let sum: f64 = text
        .lines()
        .filter(|l| l.starts_with("batchgate_lines_total") && l.contains("outcome=\"completed\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(sum as u64)
}

/// A schema made for one run, dropped (with its tables) when this is.
struct Schema {
    server: String,
    name: String,
}

impl Schema {
    fn create(server: &str, tag: &str) -> Result<Schema> {
        let name = format!("bench_{}_{tag}", std::process::id());
        psql(server, &format!("CREATE SCHEMA {name}"))?;
        Ok(Schema {
            server: server.to_string(),
            name,
        })
    }

    /// The server's URL with this schema as the search path: the gateway
    /// makes its tables (and sqlx its migrations table) there.
    fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.server, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = psql(&self.server, &sql) {
            eprintln!("could not drop schema {}: {e:#}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::limits;

    #[test]
    fn per_instance_limits_add_up_to_the_fleet_s() {
        assert_eq!(limits(64, 3, false), [22, 21, 21]);
        assert_eq!(limits(64, 2, false), [32, 32]);
        assert_eq!(limits(64, 1, false), [64]);
        assert_eq!(limits(64, 3, true), [64, 64, 64]);
    }
}
