//! `batchgate files ls|get|rm|download`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{count, emit, key_values, print_json, text, time, Table};
use crate::{exit, Global};

/// `batchgate files ...`
#[derive(Debug, Args)]
pub struct FilesArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: FilesCommand,
}

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// List files, newest first.
    #[command(visible_alias = "list")]
    Ls {
        /// Only files with this purpose (e.g. batch, batch_output).
        #[arg(long)]
        purpose: Option<String>,
        /// At most this many files.
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this file ID (the last ID of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one file's metadata.
    #[command(visible_alias = "show")]
    Get {
        /// The file ID.
        id: String,
    },
    /// Delete a file.
    #[command(visible_alias = "delete")]
    Rm {
        /// The file ID.
        id: String,
    },
    /// Download a file's content to PATH, or to stdout without -o (or with -o -).
    Download {
        /// The file ID.
        id: String,
        /// Where to write the content.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// Runs a `files` subcommand.
pub async fn run(args: FilesArgs) -> Result<u8> {
    let client = args.global.client()?;
    let json = args.global.json;
    match args.command {
        FilesCommand::Ls {
            purpose,
            limit,
            after,
        } => {
            let mut query = Vec::new();
            if let Some(purpose) = purpose {
                query.push(("purpose", purpose));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            if let Some(after) = after {
                query.push(("after", after));
            }
            let page = client.get_json("/v1/files", &query).await?;
            if json {
                print_json(&page)?;
            } else {
                emit(&file_table(&page))?;
                if page["has_more"].as_bool() == Some(true) {
                    eprintln!("(more: --after {})", text(&page, "last_id"));
                }
            }
        }
        FilesCommand::Get { id } => {
            let file = client.get_json(&format!("/v1/files/{id}"), &[]).await?;
            if json {
                print_json(&file)?;
            } else {
                emit(&file_details(&file))?;
            }
        }
        FilesCommand::Rm { id } => {
            let deleted = client.delete_json(&format!("/v1/files/{id}")).await?;
            if json {
                print_json(&deleted)?;
            } else if deleted["deleted"].as_bool() == Some(true) {
                emit(&format!("deleted {}\n", text(&deleted, "id")))?;
            } else {
                return Err(CliError::Protocol(format!(
                    "{id} was not deleted: {deleted}"
                )));
            }
        }
        FilesCommand::Download { id, output } => match output {
            Some(path) if path.as_os_str() != "-" => {
                let bytes = download_to(&client, &id, &path).await?;
                eprintln!("wrote {} ({bytes} bytes)", path.display());
            }
            _ => {
                let mut stdout = tokio::io::stdout();
                client
                    .download(&format!("/v1/files/{id}/content"), &mut stdout)
                    .await?;
            }
        },
    }
    Ok(exit::OK)
}

/// Streams file `id`'s content into `path` (through `path.part`, renamed
/// when complete, so a failed download leaves no truncated file behind).
pub async fn download_to(client: &Client, id: &str, path: &Path) -> Result<u64> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| CliError::io(format!("cannot create {}", part.display()), e))?;
    let result = client
        .download(&format!("/v1/files/{id}/content"), &mut file)
        .await;
    drop(file);
    match result {
        Ok(bytes) => {
            tokio::fs::rename(&part, path)
                .await
                .map_err(|e| CliError::io(format!("cannot write {}", path.display()), e))?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

/// A list page of files as a table.
pub fn file_table(page: &Value) -> String {
    let mut table = Table::new(&["ID", "PURPOSE", ">BYTES", "CREATED", "FILENAME"]);
    for f in page["data"].as_array().into_iter().flatten() {
        table.row(vec![
            text(f, "id"),
            text(f, "purpose"),
            count(f, "bytes", "").to_string(),
            time(f, "created_at"),
            text(f, "filename"),
        ]);
    }
    table.render()
}

/// One file as `key value` lines.
pub fn file_details(f: &Value) -> String {
    let mut pairs = vec![
        ("id", text(f, "id")),
        ("filename", text(f, "filename")),
        ("purpose", text(f, "purpose")),
        ("bytes", count(f, "bytes", "").to_string()),
        ("status", text(f, "status")),
        ("created_at", time(f, "created_at")),
    ];
    if !f["expires_at"].is_null() {
        pairs.push(("expires_at", time(f, "expires_at")));
    }
    if !f["status_details"].is_null() {
        pairs.push(("status_details", text(f, "status_details")));
    }
    key_values(&pairs)
}
