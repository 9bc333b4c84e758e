//! `batchgate submit FILE --model M [--wait]`: upload, create the batch,
//! print its ID; with `--wait` follow it to the end and download its output
//! and error files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::batches::error_lines;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::files::download_to;
use crate::output::{emit, print_json, text};
use crate::progress::{Progress, ProgressMode, Snapshot};
use crate::wait::{wait, Interrupts, Outcome};
use crate::{exit, Global};

/// `batchgate submit ...`
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    global: Global,
    /// The JSONL batch input file (one request per line).
    file: PathBuf,
    /// The model (a `model_name` of the gateway's config) the batch runs on.
    #[arg(long)]
    model: String,
    /// The endpoint every line calls.
    #[arg(long, default_value = "/v1/chat/completions")]
    endpoint: String,
    /// The completion window.
    #[arg(long, default_value = "24h")]
    window: String,
    /// A metadata pair for the batch (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    /// Follow the batch until it ends, then download its results.
    #[arg(long)]
    wait: bool,
    /// With --wait: where `<batch_id>_output.jsonl` and
    /// `<batch_id>_error.jsonl` are written.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// With --wait: how progress is shown on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// With --wait: milliseconds between two polls of the batch.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    poll_ms: u64,
}

fn parse_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{raw}'")),
    }
}

/// Runs `submit`; the exit code follows [`crate::exit`].
pub async fn run(args: SubmitArgs) -> Result<u8> {
    let client = args.global.client()?;
    let file = client
        .upload(&args.file, "batch", Some(&args.model))
        .await?;
    let file_id = file["id"]
        .as_str()
        .ok_or_else(|| CliError::Protocol(format!("upload answer without an id: {file}")))?;
    eprintln!(
        "uploaded {} as {file_id} ({} bytes)",
        args.file.display(),
        file["bytes"].as_u64().unwrap_or(0)
    );
    // Catch Ctrl-C before the batch exists, so that none is lost once it does.
    let mut interrupts = if args.wait {
        Some(Interrupts::catch()?)
    } else {
        None
    };
    let mut request = json!({
        "input_file_id": file_id,
        "endpoint": args.endpoint,
        "completion_window": args.window,
    });
    if !args.metadata.is_empty() {
        let meta: Map<String, Value> = args
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        request["metadata"] = Value::Object(meta);
    }
    let batch = client.post_json("/v1/batches", &request).await?;
    let id = batch["id"]
        .as_str()
        .ok_or_else(|| CliError::Protocol(format!("create answer without an id: {batch}")))?
        .to_string();
    let Some(interrupts) = interrupts.as_mut() else {
        if args.global.json {
            print_json(&batch)?;
        } else {
            emit(&format!("{id}\n"))?;
        }
        return Ok(exit::OK);
    };
    if !args.global.json {
        emit(&format!("{id}\n"))?;
    }
    let mut progress = Progress::new(&id, args.progress);
    let interval = Duration::from_millis(args.poll_ms.max(50));
    let batch = match wait(&client, &id, interval, &mut progress, interrupts).await? {
        Outcome::Ended(batch) => batch,
        Outcome::Interrupted => return Ok(exit::INTERRUPTED),
    };
    for line in error_lines(&batch) {
        eprintln!("{line}");
    }
    download_results(&client, &batch, &id, &args.out).await?;
    if args.global.json {
        print_json(&batch)?;
    }
    Ok(exit_code(&batch))
}

/// Downloads the batch's output and error files (those it has) into `dir`.
async fn download_results(client: &Client, batch: &Value, id: &str, dir: &Path) -> Result<()> {
    let files = [("output_file_id", "output"), ("error_file_id", "error")];
    if files.iter().all(|(key, _)| batch[*key].is_null()) {
        return Ok(());
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), e))?;
    for (key, kind) in files {
        if batch[key].is_null() {
            continue;
        }
        let file_id = text(batch, key);
        let path = dir.join(format!("{id}_{kind}.jsonl"));
        let bytes = download_to(client, &file_id, &path).await?;
        eprintln!("{kind}: {} ({bytes} bytes)", path.display());
    }
    Ok(())
}

/// 0: completed with no failed line; 1: completed with failures; 2: failed,
/// expired or cancelled.
pub fn exit_code(batch: &Value) -> u8 {
    let snap = Snapshot::of(batch);
    match snap.status.as_str() {
        "completed" if snap.failed == 0 => exit::OK,
        "completed" => exit::SOME_FAILED,
        _ => exit::NOT_COMPLETED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_outcome() {
        let b = |status: &str, failed: u64| json!({"status": status, "request_counts": {"total": 3, "completed": 3 - failed, "failed": failed}});
        assert_eq!(exit_code(&b("completed", 0)), 0);
        assert_eq!(exit_code(&b("completed", 1)), 1);
        assert_eq!(exit_code(&b("cancelled", 0)), 2);
        assert_eq!(exit_code(&b("expired", 1)), 2);
        assert_eq!(exit_code(&b("failed", 0)), 2);
    }

    #[test]
    fn metadata_pairs() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_pair("=x").is_err());
        assert!(parse_pair("x").is_err());
    }
}
