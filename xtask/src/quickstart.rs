//! `cargo xtask quickstart`: the README's first command.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::procs::{workspace_root, Proc};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// batchgate's port.
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// The mock vLLM's port (examples/config.yaml expects 8000).
    #[arg(long, default_value_t = 8000)]
    mock_port: u16,
    /// Stop after the demo instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "batchgate", "-p", "batchgate-mock-vllm"])
        .current_dir(&root)
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
    let config = std::fs::read_to_string(root.join("examples/config.yaml"))?
        .replace("localhost:8000", &format!("localhost:{}", args.mock_port));
    let data_dir = root.join("batchgate-data");
    std::fs::create_dir_all(&data_dir)?;
    let config_path = data_dir.join("quickstart-config.yaml");
    std::fs::write(&config_path, config)?;
    let gateway = spawn(
        Command::new(bin.join("batchgate"))
            .arg("--config")
            .arg(&config_path)
            .args(["--port", &args.port.to_string(), "--data-dir"])
            .arg(&data_dir),
        "batchgate",
    )?;
    let base = format!("http://localhost:{}", args.port);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(&base, &root.join("examples/batch_requests.jsonl")))?;
    if args.exit {
        drop((gateway, mock));
        return Ok(());
    }
    println!(
        "\nbatchgate is serving on {base} (master key sk-1234) in front of a mock vLLM on :{}.",
        args.mock_port
    );
    println!("Try the README's curl commands; Ctrl-C stops both.");
    runtime.block_on(async { tokio::signal::ctrl_c().await })?;
    drop((gateway, mock));
    Ok(())
}

/// Starts a binary (killed when the guard drops, so Ctrl-C or an error
/// leaves nothing behind) and echoes its `listening on` line.
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
