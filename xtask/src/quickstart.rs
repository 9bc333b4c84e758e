//! `cargo xtask quickstart`: the README's first command. It starts
//! mock-vllm and batchgate, runs the seed's flow once and keeps serving
//! until Ctrl-C, SIGTERM or SIGHUP (the terminal closing), which stop both
//! children too.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::procs::{cargo, workspace_root, Proc};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// batchgate's port.
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// The mock vLLM's port (examples/config.yaml expects 8000).
    #[arg(long, default_value_t = 8000)]
    mock_port: u16,
    /// The gateway's data directory (relative to the workspace root).
    #[arg(long, default_value = "batchgate-data")]
    data_dir: PathBuf,
    /// Stop after the demo instead of serving until stopped.
    #[arg(long)]
    exit: bool,
}

pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    // Listen before starting anything: a SIGTERM or SIGHUP that arrives
    // while the children start must still stop them, not kill xtask alone
    // and leave them holding the ports.
    let mut stop = runtime.block_on(async { StopSignals::new() })?;
    let root = workspace_root();
    let status = cargo()
        .args(["build", "-p", "batchgate", "-p", "batchgate-mock-vllm"])
        .status()?;
    if !status.success() {
        bail!("build failed");
    }
    let bin = crate::procs::target_dir(&root).join("debug");
    let mock = spawn(
        Command::new(bin.join("mock-vllm")).args([
            "--port",
            &args.mock_port.to_string(),
            "--latency-ms",
            "50",
        ]),
        "mock-vllm",
    )?;
    let mut children = Children(vec![mock]);
    let config = std::fs::read_to_string(root.join("examples/config.yaml"))?
        .replace("localhost:8000", &format!("localhost:{}", args.mock_port));
    let data_dir = root.join(&args.data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let config_path = data_dir.join("quickstart-config.yaml");
    std::fs::write(&config_path, config)?;
    children.0.push(spawn(
        Command::new(bin.join("batchgate"))
            .arg("--config")
            .arg(&config_path)
            .args(["--port", &args.port.to_string(), "--data-dir"])
            .arg(&data_dir),
        "batchgate",
    )?);
    let base = format!("http://localhost:{}", args.port);
    let jsonl = root.join("examples/batch_requests.jsonl");
    runtime.block_on(async {
        let signal = tokio::select! {
            demo = demo(&base, &jsonl) => { demo?; None }
            signal = stop.next() => Some(signal),
        };
        let signal = match signal {
            Some(signal) => signal,
            None if args.exit => "--exit",
            None => {
                println!(
                    "\nbatchgate is serving on {base} (master key sk-1234) in front of a mock vLLM on :{}.",
                    args.mock_port
                );
                println!("Try the README's curl commands; Ctrl-C (or SIGTERM) stops both.");
                stop.next().await
            }
        };
        children.stop(signal).await
    })
}

/// SIGINT, SIGTERM and SIGHUP (the terminal closing): each stops the
/// quickstart and the processes it started.
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn new() -> Result<Self> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The name of the first signal that arrives.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// The processes the quickstart started, stopped in reverse order.
struct Children(Vec<Proc>);

impl Children {
    /// SIGTERM each (the gateway stops gracefully), SIGKILL what is still
    /// running after a few seconds. Dropping a `Proc` also kills it, so an
    /// error on the way still leaves nothing behind.
    async fn stop(mut self, why: &str) -> Result<()> {
        eprintln!("quickstart: {why}: stopping batchgate and mock-vllm");
        while let Some(mut child) = self.0.pop() {
            child.terminate(Duration::from_secs(10)).await?;
        }
        Ok(())
    }
}

/// Starts a binary (killed when the guard drops, so an error leaves
/// nothing behind) and echoes its `listening on` line.
fn spawn(cmd: &mut Command, name: &str) -> Result<Proc> {
    let (proc, url) = Proc::start(cmd, name)?;
    println!("{name} listening on {url}");
    Ok(proc)
}

/// The seed's flow: upload with x-litellm-model, create, poll, download.
async fn demo(base: &str, jsonl: &std::path::Path) -> Result<()> {
    let http = reqwest::Client::new();
    let auth = "Bearer sk-1234";
    let bytes = std::fs::read(jsonl)?;
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("batch_requests.jsonl"),
        );
    let file: Value = http
        .post(format!("{base}/v1/files"))
        .header("authorization", auth)
        .header("x-litellm-model", "my-vllm-model")
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let file_id = file["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no file id: {file}"))?;
    println!("\nFile uploaded: {file_id}");
    let batch: Value = http
        .post(format!("{base}/v1/batches"))
        .header("authorization", auth)
        .json(&serde_json::json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let batch_id = batch["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no batch id: {batch}"))?;
    println!("Batch created: {batch_id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let b: Value = http
            .get(format!("{base}/v1/batches/{batch_id}"))
            .header("authorization", auth)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        println!("Status: {}", b["status"]);
        match b["status"].as_str() {
            Some("completed") => break b,
            Some("failed" | "cancelled" | "expired") => bail!("batch ended {}: {b}", b["status"]),
            _ if Instant::now() > deadline => bail!("batch did not finish in time"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let output_id = done["output_file_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no output file"))?;
    let results = http
        .get(format!("{base}/v1/files/{output_id}/content"))
        .header("authorization", auth)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    println!("Results ({output_id}):\n{results}");
    Ok(())
}
