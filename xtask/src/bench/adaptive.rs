//! `cargo xtask bench --adaptive`: adaptive concurrency (the default)
//! against today's fixed 64, on mock-vllm's batch model at capacities 8, 64
//! and 512; then an interactive client's p99 during a batch against its p99
//! alone, with the mock scheduling by priority and first come first served.
//!
//! Every capacity gets a request time of 2 ms per seat (16 ms, 128 ms,
//! 1024 ms alone; 20% more in a full batch), so the capacity-bound ideal is
//! the same ~417 requests/s everywhere and a 5,000-line batch takes ~12 s at
//! best. Throughput and the waiting queue are the mock's own figures over
//! its load window (first arrival to last completion, `GET /mock/load`),
//! which leaves out validation and finalization: they do not depend on
//! concurrency.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use batchgate_mock_vllm::{LoadStats, DEFAULT_MODEL};
use serde_json::json;

use super::{write_lines, KEY};
use crate::api::Api;
use crate::procs::Proc;

const CAPACITIES: [usize; 3] = [8, 64, 512];
/// Capacities where the interactive client gets enough answers for a p99,
/// with how many times longer its batch is than the others (a request
/// takes 128 ms at 64: ~240 answers in a triple batch; at 512 it takes a
/// second, too few answers in any batch worth running).
const INTERACTIVE: [(usize, usize); 2] = [(8, 1), (64, 3)];
/// How long the interactive client runs alone, per batch length.
const ALONE: Duration = Duration::from_secs(10);

/// How the gateway sizes its concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The defaults: adaptive, no ceiling set.
    Adaptive,
    /// Today's behaviour: a fixed `max_parallel_requests` of 64.
    Fixed64,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Adaptive => "adaptive (default)",
            Mode::Fixed64 => "fixed 64",
        }
    }

    fn params(self) -> &'static str {
        match self {
            Mode::Adaptive => "",
            Mode::Fixed64 => "    adaptive_concurrency: false\n    max_parallel_requests: 64\n",
        }
    }
}

fn latency_ms(capacity: usize) -> u64 {
    2 * capacity as u64
}

/// Runs both tables and prints them.
pub fn run(bin: &Path, work: &Path, rt: &tokio::runtime::Runtime, lines: usize) -> Result<()> {
    let input = work.join("adaptive.jsonl");
    write_lines(&input, "bench-model", lines)?;
    let mut table = vec![
        "| capacity | concurrency | throughput / ideal | avg waiting (target) | wall-clock lines/s |"
            .to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    for c in CAPACITIES {
        for mode in [Mode::Adaptive, Mode::Fixed64] {
            let run = Run {
                bin,
                dir: &work.join(format!("cap{c}-{mode:?}")),
                capacity: c,
                policy: "fcfs",
                params: mode.params().to_string(),
            };
            let (load, secs) = rt.block_on(run.batch(&input, None))?;
            let ideal = load.ideal_throughput.unwrap_or(f64::NAN);
            table.push(format!(
                "| {c} | {} | {:.0}/{:.0} req/s = **{:.0} %** | **{:.1}** (≤ {:.1}) | {:.0} |",
                mode.name(),
                load.throughput,
                ideal,
                100.0 * load.throughput / ideal,
                load.avg_waiting,
                (0.1 * c as f64).max(2.0),
                lines as f64 / secs,
            ));
            eprintln!("{}", table.last().map(String::as_str).unwrap_or(""));
        }
    }
    let interactive = interactive_table(bin, work, rt, &input, lines)?;
    println!("\n{}\n\n{}", table.join("\n"), interactive.join("\n"));
    Ok(())
}

fn interactive_table(
    bin: &Path,
    work: &Path,
    rt: &tokio::runtime::Runtime,
    input: &Path,
    lines: usize,
) -> Result<Vec<String>> {
    let mut table = vec![
        "| capacity | mock scheduling | gateway | interactive p99 alone | during the batch | ratio (target) | batch throughput / ideal |"
            .to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    let cases = [
        ("priority", Mode::Adaptive, "    batch_priority: 10\n", 1.5),
        ("fcfs", Mode::Adaptive, "", 2.0),
        ("fcfs", Mode::Fixed64, "", 2.0),
    ];
    for (c, times) in INTERACTIVE {
        let input = if times == 1 {
            input.to_path_buf()
        } else {
            let longer = work.join(format!("adaptive-x{times}.jsonl"));
            write_lines(&longer, "bench-model", lines * times)?;
            longer
        };
        for (policy, mode, extra, target) in cases {
            let run = Run {
                bin,
                dir: &work.join(format!("interactive{c}-{policy}-{mode:?}")),
                capacity: c,
                policy,
                params: format!("{}{extra}", mode.params()),
            };
            let alone = ALONE * u32::try_from(times).unwrap_or(1);
            let (alone, during, load) = rt.block_on(run.interactive(&input, alone))?;
            let gateway = if extra.is_empty() {
                mode.name().to_string()
            } else {
                format!("{}, `batch_priority: 10`", mode.name())
            };
            table.push(format!(
                "| {c} | {policy} | {gateway} | {} | {} | **{:.2}×** (≤ {target}×) | {:.0} % |",
                p99_text(&alone),
                p99_text(&during),
                p99(&during) / p99(&alone),
                100.0 * load.throughput / load.ideal_throughput.unwrap_or(f64::NAN),
            ));
            eprintln!("{}", table.last().map(String::as_str).unwrap_or(""));
        }
    }
    Ok(table)
}

/// One mock and one gateway in front of it.
struct Run<'a> {
    bin: &'a Path,
    dir: &'a Path,
    capacity: usize,
    policy: &'static str,
    /// Extra `litellm_params` lines.
    params: String,
}

impl Run<'_> {
    fn mock(&self) -> Result<(Proc, String)> {
        let (c, l) = (
            self.capacity.to_string(),
            latency_ms(self.capacity).to_string(),
        );
        let args = ["--port", "0", "--capacity", &c, "--latency-ms", &l];
        let args = [&args[..], &["--scheduling-policy", self.policy]].concat();
        let mut cmd = Command::new(self.bin.join("mock-vllm"));
        cmd.args(args).stderr(Stdio::null());
        Proc::start(&mut cmd, "mock-vllm")
    }

    fn gateway(&self, upstream: &str) -> Result<(Proc, String)> {
        std::fs::create_dir_all(self.dir)?;
        let config = format!(
            "model_list:\n- model_name: bench-model\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {upstream}\n    batch_api: gateway\n{}general_settings:\n  master_key: {KEY}\nbatch_settings:\n  max_lines: 1000000\n",
            self.params
        );
        std::fs::write(self.dir.join("config.yaml"), config)?;
        let mut cmd = Command::new(self.bin.join("batchgate"));
        super::embedded(&mut cmd)
            .arg("--config")
            .arg(self.dir.join("config.yaml"))
            .args(["--port", "0", "--data-dir"])
            .arg(self.dir.join("data"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null());
        Proc::start(&mut cmd, "batchgate")
    }

    /// Runs `input` as a batch on a fresh mock and gateway; the mock's load
    /// figures over the batch and the seconds from create to completed.
    /// With `during`, that task runs alongside and is stopped at the end.
    async fn batch(&self, input: &Path, during: Option<&Interactive>) -> Result<(LoadStats, f64)> {
        let (_mock, mock_url) = self.mock()?;
        let (_gw, gw_url) = self.gateway(&mock_url)?;
        let api = Api::new(&gw_url, KEY)?;
        let file = api.upload(input, "bench-model").await?;
        let http = reqwest::Client::new();
        http.post(format!("{mock_url}/mock/reset")).send().await?;
        let task = during.map(|i| tokio::spawn(i.clone().run(mock_url.clone())));
        let t = Instant::now();
        let batch = api.create(&file).await?;
        api.wait_completed(&batch).await?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(i) = during {
            i.keep_between(t, Instant::now());
        }
        let load: LoadStats = http
            .get(format!("{mock_url}/mock/load"))
            .send()
            .await?
            .json()
            .await?;
        if let (Some(task), Some(i)) = (task, during) {
            i.stop.store(true, Ordering::Relaxed);
            task.await??;
        }
        Ok((load, secs))
    }

    /// The interactive client's latencies alone, then during a batch, and
    /// the mock's load figures over that batch (interactive requests
    /// included).
    async fn interactive(
        &self,
        input: &Path,
        alone_for: Duration,
    ) -> Result<(Vec<f64>, Vec<f64>, LoadStats)> {
        let alone = {
            let (_mock, url) = self.mock()?;
            let i = Interactive::new();
            let stop = i.stop.clone();
            let task = tokio::spawn(i.clone().run(url));
            tokio::time::sleep(alone_for).await;
            stop.store(true, Ordering::Relaxed);
            task.await??;
            i.take()
        };
        let i = Interactive::new();
        let (load, _) = self.batch(input, Some(&i)).await?;
        Ok((alone, i.take(), load))
    }
}

/// A client sending one chat request at a time straight to the server,
/// until stopped; its latencies in seconds.
#[derive(Clone)]
struct Interactive {
    stop: Arc<AtomicBool>,
    /// When each request started, and its latency.
    latencies: Arc<std::sync::Mutex<Vec<(Instant, f64)>>>,
}

impl Interactive {
    fn new() -> Interactive {
        Interactive {
            stop: Arc::new(AtomicBool::new(false)),
            latencies: Arc::default(),
        }
    }

    async fn run(self, base: String) -> Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{base}/v1/chat/completions");
        let body = json!({"model": DEFAULT_MODEL, "max_tokens": 16,
            "messages": [{"role": "user", "content": "an interactive question"}]});
        while !self.stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let r = http.post(&url).json(&body).send().await?;
            if !r.status().is_success() {
                bail!("interactive request answered {}", r.status());
            }
            r.bytes().await?;
            let secs = t.elapsed().as_secs_f64();
            if let Ok(mut l) = self.latencies.lock() {
                l.push((t, secs));
            }
        }
        Ok(())
    }

    /// Drops the requests that started outside `[from, to]`.
    fn keep_between(&self, from: Instant, to: Instant) {
        if let Ok(mut l) = self.latencies.lock() {
            l.retain(|(t, _)| *t >= from && *t <= to);
        }
    }

    fn take(&self) -> Vec<f64> {
        self.latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
            .into_iter()
            .map(|(_, secs)| secs)
            .collect()
    }
}

fn p99(latencies: &[f64]) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let i = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn p99_text(latencies: &[f64]) -> String {
    format!("{:.1} ms (n={})", p99(latencies) * 1000.0, latencies.len())
}
