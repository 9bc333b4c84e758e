//! `cargo xtask bench`: load runs against the release binaries, printed as
//! one table. Targets are checked here, by a person reading ratios — never
//! by timed assertions in tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use tokio::runtime::Runtime;

use crate::api::Api;
use crate::procs::{build_release, has, Proc};

mod adaptive;
mod fleet;

const KEY: &str = "sk-bench";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lines of the latency-bound batch (c).
    #[arg(long, default_value_t = 50_000)]
    lines: usize,
    /// Upstream concurrency for (c) and (d), and for the journal rows of
    /// `--fleet`.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Seconds of the retrieve load (b).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Run only the adaptive-concurrency comparison (capacities 8, 64 and
    /// 512 against a fixed 64; an interactive client's p99 during a batch).
    #[arg(long)]
    adaptive: bool,
    /// Lines of each batch of the adaptive comparison.
    #[arg(long, default_value_t = 5_000)]
    adaptive_lines: usize,
    #[command(flatten)]
    fleet: fleet::FleetArgs,
}

struct Row {
    what: String,
    result: String,
    target: String,
}

pub fn run(args: Args) -> Result<()> {
    let bin = build_release()?;
    let work = std::env::temp_dir().join(format!("batchgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Runtime::new()?;
    if args.adaptive {
        let result = adaptive::run(&bin, &work, &rt, args.adaptive_lines);
        let _ = std::fs::remove_dir_all(&work);
        return result;
    }
    if args.fleet.fleet.is_some() {
        let result = fleet::run(&bin, &work, &rt, &args.fleet, args.concurrency);
        let _ = std::fs::remove_dir_all(&work);
        return result;
    }
    let mut rows = Vec::new();

    // (e) idle, (a) uploads, (b) retrieves, (d) throughput: one gateway,
    // zero-latency mock.
    let mock0 = start_mock(&bin, &["--port", "0"])?;
    let gw = start_gateway(&bin, &work.join("g1"), &mock0.1, args.concurrency)?;
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        what: "(e) idle RSS".into(),
        result: mib(rss_kib(gw.0.pid(), "VmRSS")?),
        target: "≤ 20 MiB".into(),
    });
    for mb in [30usize, 200] {
        rows.push(upload_row(&rt, &gw, &work, mb)?);
    }
    rows.push(retrieve_row(&rt, &gw, &work, args.seconds)?);
    rows.push(zero_latency_row(&rt, &gw, &work)?);
    drop(gw);

    // (c) the latency-bound batch on a fresh gateway.
    let mock50 = start_mock(&bin, &["--port", "0", "--latency-ms", "50"])?;
    rows.push(latency_bound_row(&rt, &bin, &work, &mock50.1, &args)?);
    drop((mock0, mock50));
    let _ = std::fs::remove_dir_all(&work);

    println!("\n| measurement | result | target |\n|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.what, r.result, r.target);
    }
    Ok(())
}

/// (a) Uploading an `mb`-megabyte file: speed and the gateway's peak RSS.
fn upload_row(rt: &Runtime, gw: &(Proc, String), work: &Path, mb: usize) -> Result<Row> {
    let path = work.join(format!("upload-{mb}.jsonl"));
    write_lines(&path, "bench-model", mb * 1_000_000 / 230)?;
    let size = std::fs::metadata(&path)?.len();
    reset_peak(gw.0.pid());
    let t = Instant::now();
    if has("curl") {
        // The seed's client: purpose first, then the file.
        curl_upload(&gw.1, &path)?;
    } else {
        rt.block_on(Api::new(&gw.1, KEY)?.upload(&path, "bench-model"))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let peak = rss_kib(gw.0.pid(), "VmHWM")?;
    Ok(Row {
        what: format!("(a) upload {mb} MB"),
        result: format!(
            "{:.2} s, {:.0} MB/s, peak RSS {}",
            secs,
            size as f64 / 1e6 / secs,
            mib(peak)
        ),
        target: "≥ 300 MB/s; ≤ 64 MiB peak at 200 MB".into(),
    })
}

/// (b) Polling one ended batch from 32 connections.
fn retrieve_row(rt: &Runtime, gw: &(Proc, String), work: &Path, seconds: u64) -> Result<Row> {
    let small = work.join("small.jsonl");
    write_lines(&small, "bench-model", 10)?;
    let batch_id = rt.block_on(async {
        let api = Api::new(&gw.1, KEY)?;
        let file = api.upload(&small, "bench-model").await?;
        let batch = api.create(&file).await?;
        api.wait_completed(&batch).await?;
        Ok::<_, anyhow::Error>(batch)
    })?;
    let url = format!("{}/v1/batches/{batch_id}", gw.1);
    let (rps, p99, client) = if has("wrk") {
        let (rps, p99) = wrk(&url, 32, seconds)?;
        (rps, p99, "wrk")
    } else {
        let load = retrieve_load(&gw.1, &batch_id, 32, Duration::from_secs(seconds));
        let (rps, p99) = rt.block_on(load)?;
        (rps, p99, "built-in client")
    };
    Ok(Row {
        what: format!("(b) GET /v1/batches/{{id}}, 32 connections ({client})"),
        result: format!("{rps:.0} req/s, p99 {:.2} ms", p99.as_secs_f64() * 1000.0),
        target: "≥ 20,000 req/s, p99 ≤ 5 ms".into(),
    })
}

/// (d) Lines per second against a zero-latency upstream.
fn zero_latency_row(rt: &Runtime, gw: &(Proc, String), work: &Path) -> Result<Row> {
    let n = 20_000;
    let path = work.join("zero.jsonl");
    write_lines(&path, "bench-model", n)?;
    let secs = rt.block_on(run_batch(&gw.1, &path))?;
    Ok(Row {
        what: format!("(d) {n}-line batch, zero-latency upstream"),
        result: format!("{:.1} s, {:.0} lines/s", secs, n as f64 / secs),
        target: "≥ 10,000 lines/s".into(),
    })
}

/// (c) A latency-bound batch on a fresh gateway: time against the ideal
/// `lines × latency / concurrency`, and peak RSS.
fn latency_bound_row(
    rt: &Runtime,
    bin: &Path,
    work: &Path,
    mock: &str,
    args: &Args,
) -> Result<Row> {
    let gw = start_gateway(bin, &work.join("g2"), mock, args.concurrency)?;
    let path = work.join("latency.jsonl");
    write_lines(&path, "bench-model", args.lines)?;
    reset_peak(gw.0.pid());
    let secs = rt.block_on(run_batch(&gw.1, &path))?;
    let ideal = args.lines as f64 * 0.050 / args.concurrency as f64;
    Ok(Row {
        what: format!(
            "(c) {}-line batch, 50 ms upstream, concurrency {}",
            args.lines, args.concurrency
        ),
        result: format!(
            "{secs:.1} s vs ideal {ideal:.1} s = {:.2}x, peak RSS {}",
            secs / ideal,
            mib(rss_kib(gw.0.pid(), "VmHWM")?)
        ),
        target: "≤ 1.1x ideal".into(),
    })
}

fn start_mock(bin: &Path, args: &[&str]) -> Result<(Proc, String)> {
    Proc::start(
        Command::new(bin.join("mock-vllm"))
            .args(args)
            .stderr(Stdio::null()),
        "mock-vllm",
    )
}

/// The gateway on its embedded store whatever the shell sets: these rows
/// are documented as SQLite and local files, and a `DATABASE_URL` or
/// `BATCHGATE_STORAGE_URL` left in the environment would silently measure
/// another store.
pub(crate) fn embedded(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("DATABASE_URL")
        .env_remove("BATCHGATE_STORAGE_URL")
}

fn start_gateway(
    bin: &Path,
    dir: &Path,
    upstream: &str,
    concurrency: usize,
) -> Result<(Proc, String)> {
    std::fs::create_dir_all(dir)?;
    // These rows measure the engine at a given concurrency against a mock
    // without a capacity: a fixed limit, so the ramp of the adaptive one
    // (measured by `--adaptive`) is not in their figures.
    let config = format!(
        "model_list:\n- model_name: bench-model\n  litellm_params:\n    model: hosted_vllm/meta-llama/Llama-2-7b-chat-hf\n    api_base: {upstream}\n    max_parallel_requests: {concurrency}\n    adaptive_concurrency: false\n    batch_api: gateway\ngeneral_settings:\n  master_key: {KEY}\n  max_file_size_mb: 1024\nbatch_settings:\n  max_lines: 1000000\n  max_input_mb: 1024\n"
    );
    std::fs::write(dir.join("config.yaml"), config)?;
    Proc::start(
        embedded(&mut Command::new(bin.join("batchgate")))
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .args(["--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null()),
        "batchgate",
    )
}

fn write_lines(path: &Path, model: &str, n: usize) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(
            f,
            r#"{{"custom_id":"req-{i}","method":"POST","url":"/v1/chat/completions","body":{{"model":"{model}","max_tokens":16,"messages":[{{"role":"user","content":"line {i}: the quick brown fox jumps over the lazy dog, again and again and again"}}]}}}}"#
        )?;
    }
    f.flush()?;
    Ok(())
}

fn curl_upload(base: &str, path: &Path) -> Result<()> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/v1/files"),
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {KEY}"),
            "-H",
            "x-litellm-model: bench-model",
        ])
        .args(["-F", "purpose=batch", "-F"])
        .arg(format!("file=@{}", path.display()))
        .output()?;
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    if code != "200" {
        bail!("curl upload answered {code}");
    }
    Ok(())
}

/// Requests/s and p99 from `wrk --latency` (a load generator far lighter
/// than any client written here, which matters on a 2-core machine).
fn wrk(url: &str, conns: usize, secs: u64) -> Result<(f64, Duration)> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {KEY}"), url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no Requests/sec in wrk output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_wrk_duration(v.trim()))
        .ok_or_else(|| anyhow!("no p99 in wrk output"))?;
    Ok((rps, p99))
}

fn parse_wrk_duration(v: &str) -> Duration {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    Duration::from_secs_f64(num.parse::<f64>().unwrap_or(0.0) * scale)
}

fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no {field} for {pid}"))
}

/// Resets VmHWM so the next reading is the peak of the next phase.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Upload, then time create → completed.
async fn run_batch(base: &str, path: &Path) -> Result<f64> {
    let api = Api::new(base, KEY)?;
    let file = api.upload(path, "bench-model").await?;
    let t = Instant::now();
    let batch = api.create(&file).await?;
    api.wait_completed(&batch).await?;
    Ok(t.elapsed().as_secs_f64())
}

async fn retrieve_load(
    base: &str,
    batch_id: &str,
    conns: usize,
    dur: Duration,
) -> Result<(f64, Duration)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()?;
    let url = Arc::new(format!("{base}/v1/batches/{batch_id}"));
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = http
                    .get(url.as_str())
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .map(|r| r.status().is_success());
                if let Ok(true) = ok {
                    lat.push(t.elapsed());
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    Ok((all.len() as f64 / dur.as_secs_f64(), p99))
}
