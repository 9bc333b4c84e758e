//! `batchgate batches ls|get|cancel`.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::error::Result;
use crate::output::{count, emit, key_values, print_json, text, time, Table};
use crate::{exit, Global};

/// `batchgate batches ...`
#[derive(Debug, Args)]
pub struct BatchesArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: BatchesCommand,
}

#[derive(Debug, Subcommand)]
enum BatchesCommand {
    /// List batches, newest first.
    #[command(visible_alias = "list")]
    Ls {
        /// At most this many batches (the gateway's default: 20).
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this batch ID (the last ID of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Only batches of this model.
        #[arg(long)]
        model: Option<String>,
    },
    /// Show one batch.
    #[command(visible_alias = "show")]
    Get {
        /// The batch ID.
        id: String,
    },
    /// Ask the gateway to cancel a batch; it ends `cancelled` shortly after.
    Cancel {
        /// The batch ID.
        id: String,
    },
}

/// Runs a `batches` subcommand.
pub async fn run(args: BatchesArgs) -> Result<u8> {
    let client = args.global.client()?;
    let json = args.global.json;
    match args.command {
        BatchesCommand::Ls {
            limit,
            after,
            model,
        } => {
            let mut query = Vec::new();
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            if let Some(after) = after {
                query.push(("after", after));
            }
            if let Some(model) = model {
                query.push(("model", model));
            }
            let page = client.get_json("/v1/batches", &query).await?;
            if json {
                print_json(&page)?;
            } else {
                emit(&batch_table(&page))?;
                if page["has_more"].as_bool() == Some(true) {
                    eprintln!("(more: --after {})", text(&page, "last_id"));
                }
            }
        }
        BatchesCommand::Get { id } => {
            let batch = client.get_json(&format!("/v1/batches/{id}"), &[]).await?;
            show(&batch, json)?;
        }
        BatchesCommand::Cancel { id } => {
            let batch = client
                .post_empty(&format!("/v1/batches/{id}/cancel"))
                .await?;
            show(&batch, json)?;
        }
    }
    Ok(exit::OK)
}

fn show(batch: &Value, json: bool) -> Result<()> {
    if json {
        print_json(batch)
    } else {
        emit(&batch_details(batch))
    }
}

/// A list page of batches as a table.
pub fn batch_table(page: &Value) -> String {
    let mut table = Table::new(&[
        "ID",
        "STATUS",
        "MODEL",
        ">COMPLETED",
        ">FAILED",
        ">TOTAL",
        "CREATED",
    ]);
    for b in page["data"].as_array().into_iter().flatten() {
        table.row(vec![
            text(b, "id"),
            text(b, "status"),
            text(b, "model"),
            count(b, "request_counts", "completed").to_string(),
            count(b, "request_counts", "failed").to_string(),
            count(b, "request_counts", "total").to_string(),
            time(b, "created_at"),
        ]);
    }
    table.render()
}

/// One batch as `key value` lines, with its validation errors if any.
pub fn batch_details(b: &Value) -> String {
    let mut pairs = vec![
        ("id", text(b, "id")),
        ("status", text(b, "status")),
        ("model", text(b, "model")),
        ("endpoint", text(b, "endpoint")),
        ("completion_window", text(b, "completion_window")),
        ("input_file_id", text(b, "input_file_id")),
        ("output_file_id", text(b, "output_file_id")),
        ("error_file_id", text(b, "error_file_id")),
        (
            "requests",
            format!(
                "{} completed, {} failed, {} total",
                count(b, "request_counts", "completed"),
                count(b, "request_counts", "failed"),
                count(b, "request_counts", "total")
            ),
        ),
    ];
    for key in [
        "created_at",
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        "expires_at",
    ] {
        if !b[key].is_null() || key == "created_at" {
            pairs.push((key, time(b, key)));
        }
    }
    if b["usage"].is_object() {
        pairs.push((
            "tokens",
            format!(
                "{} in, {} out",
                count(b, "usage", "input_tokens"),
                count(b, "usage", "output_tokens")
            ),
        ));
    }
    if let Some(total) = b["cost"]["total"].as_str() {
        pairs.push(("cost", format!("{total} {}", text(&b["cost"], "currency"))));
    }
    if let Some(meta) = b["metadata"].as_object().filter(|m| !m.is_empty()) {
        let shown: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        pairs.push(("metadata", shown.join(", ")));
    }
    let mut out = key_values(&pairs);
    for line in error_lines(b) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The batch's `errors.data` as `  line N: code: message` lines.
pub fn error_lines(b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let data = b["errors"]["data"].as_array();
    if data.is_some_and(|d| !d.is_empty()) {
        out.push("errors:".to_string());
    }
    for e in data.into_iter().flatten() {
        let at = e["line"]
            .as_u64()
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        out.push(format!("  {at}{}: {}", text(e, "code"), text(e, "message")));
    }
    out
}
