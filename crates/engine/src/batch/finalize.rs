//! Ending a batch: result files written from the journal, then committed
//! with the final status in one transaction.

use std::sync::Arc;

use batchgate_core::{ApiError, BatchError, BatchErrors, BatchStatus, ByteStream, Deployment};
use batchgate_store::{BatchRecord, FileRecord, Lease, LineResult, MetaStore, Transition};
use bytes::Bytes;
use futures::StreamExt;

use super::shared::{Shared, MAX_LINE_BYTES};
use super::upstream::not_run_line;
use crate::{is_blank, LineReader};

const PAGE: u32 = 1000;

/// Writes the output and error files and moves the batch `from` → `to`.
/// If the status changed meanwhile (a cancel during finalizing), the files
/// are discarded and the caller re-reads the status.
pub async fn finalize(
    shared: &Shared,
    rec: &BatchRecord,
    lease: &Lease,
    from: &[BatchStatus],
    to: BatchStatus,
) -> Result<(), ApiError> {
    let store = &shared.gw.store;
    let Some(mut rec) = store.get_batch(&rec.key).await? else {
        return Ok(());
    };
    let mut to = to;
    let mut t_errors = None;
    if to == BatchStatus::Completed && !adds_up(&rec) {
        rec = settle(shared, rec, lease).await?;
        if !adds_up(&rec) {
            let c = rec.batch.request_counts;
            tracing::error!(batch = %rec.batch.id, total = c.total, completed = c.completed, failed = c.failed, "batch counts do not add up");
            to = BatchStatus::Failed;
            t_errors = Some(BatchErrors::new(vec![BatchError {
                code: "line_count_mismatch".into(),
                message: format!(
                    "The input has {} requests but {} have results; the batch is not reported completed.",
                    c.total,
                    c.completed + c.failed
                ),
                param: None,
                line: None,
            }]));
        }
    }
    let now = shared.gw.now();
    let expires_at = rec
        .output_expires_seconds
        .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
    let counts = rec.batch.request_counts;
    let (mut output, mut error) = (None, None);
    // Without its deployment no result file can be written; ending the batch
    // anyway would delete the journal and lose every result.
    let Some(deployment) = shared.deployment_of(&rec) else {
        tracing::warn!(batch = %rec.batch.id, "deployment no longer configured; cannot finalize yet");
        return Err(ApiError::unavailable(
            "the deployment of this batch is no longer configured",
        ));
    };
    if counts.completed > 0 {
        output = Some(write(shared, &rec, &deployment, true, expires_at).await?);
    }
    if counts.failed > 0 {
        error = Some(write(shared, &rec, &deployment, false, expires_at).await?);
    }
    let mut t = Transition::new(from, to, now).fenced(lease);
    if let Some(errors) = t_errors {
        t = t.with_errors(errors);
    }
    let done = store
        .finalize_batch(&rec.key, &t, output.as_ref(), error.as_ref())
        .await?;
    // The `batch.finalize` span (opened by the runner) says how it ended.
    let outcome = done.as_ref().map_or("superseded", |_| to.as_str());
    tracing::Span::current().record("batchgate.outcome", outcome);
    if done.is_none() {
        for file in [output, error].into_iter().flatten() {
            if let Some(path) = file.blob_path {
                let _ = shared.gw.blobs.delete(&path).await;
            }
        }
    } else {
        tracing::info!(batch = %rec.batch.id, status = to.as_str(), completed = counts.completed, failed = counts.failed, "batch ended");
    }
    Ok(())
}

async fn write(
    shared: &Shared,
    rec: &BatchRecord,
    deployment: &Deployment,
    ok: bool,
    expires_at: Option<i64>,
) -> Result<FileRecord, ApiError> {
    let kind = if ok { "output" } else { "error" };
    let name = format!("{}_{kind}.jsonl", rec.batch.id);
    let body = journal_stream(shared.gw.store.clone(), rec.key.clone(), ok);
    shared
        .files
        .write_generated(deployment, rec.owner.clone(), &name, body, expires_at)
        .await
}

/// The journal's lines of one kind, in line order, a page at a time.
fn journal_stream(store: Arc<dyn MetaStore>, key: String, ok: bool) -> ByteStream {
    futures::stream::unfold(Some(0u64), move |after| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            let after = after?;
            match store.results_page(&key, ok, after, PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let last = page.last().map(|(n, _)| *n);
                    let mut buf = Vec::with_capacity(page.iter().map(|(_, l)| l.len() + 1).sum());
                    for (_, line) in &page {
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                    Some((Ok(Bytes::from(buf)), last))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    })
    .boxed()
}

/// Journals a result for every line that has none (expiry), so each
/// `custom_id` appears exactly once across the output and error files.
pub async fn fill_unfinished(
    shared: &Shared,
    rec: &BatchRecord,
    lease: &Lease,
    make: impl Fn(u64, &str) -> LineResult,
) -> Result<(), ApiError> {
    let finished: std::collections::HashSet<u64> = shared
        .gw
        .store
        .finished_lines(&rec.key)
        .await?
        .into_iter()
        .collect();
    let Some(stream) = shared.input_stream(rec).await? else {
        return Ok(());
    };
    let mut reader = LineReader::new(stream, MAX_LINE_BYTES);
    let mut buf = Vec::new();
    loop {
        let line = reader.next_line().await.map_err(|e| {
            tracing::error!(error = %e, "cannot re-read the input file");
            ApiError::internal("could not read the input file")
        })?;
        let Some(line) = line else { break };
        if is_blank(&line) {
            continue;
        }
        if !finished.contains(&line.number) {
            let custom_id = custom_id_of(&line.bytes).unwrap_or_default();
            buf.push(make(line.number, &custom_id));
        }
        if buf.len() >= PAGE as usize {
            shared.gw.store.record_results(lease, &buf).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        shared.gw.store.record_results(lease, &buf).await?;
    }
    Ok(())
}

/// The `custom_id` of an input line (the input was validated, so every
/// non-blank line should have one; a line without still gets its result).
pub(super) fn custom_id_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        custom_id: String,
    }
    serde_json::from_slice::<Head>(line)
        .ok()
        .map(|h| h.custom_id)
}

/// Whether every request of the input has exactly one result.
fn adds_up(rec: &BatchRecord) -> bool {
    let c = rec.batch.request_counts;
    c.completed.checked_add(c.failed) == Some(c.total)
}

/// Gives every request still without a result an error-file line, so a
/// batch that ran to its end accounts for every line; returns the row
/// re-read.
async fn settle(shared: &Shared, rec: BatchRecord, lease: &Lease) -> Result<BatchRecord, ApiError> {
    tracing::warn!(batch = %rec.batch.id, "lines without a result at the end of the batch; failing them");
    let message = "The gateway did not execute this request; submit it again.";
    fill_unfinished(shared, &rec, lease, |n, id| {
        not_run_line(n, Some(id), "request_not_executed", message)
    })
    .await?;
    Ok(shared.gw.store.get_batch(&rec.key).await?.unwrap_or(rec))
}
