//! The journal writer of the `in_progress` phase: results committed in
//! groups, fenced by the runner's lease, retried while the store fails.

use std::sync::Arc;
use std::time::Duration;

use batchgate_store::{Lease, LineResult, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::upstream::not_run_line;

/// Results committed in one transaction at most.
const MAX_COMMIT: usize = 512;

/// Commits results in groups: whatever has arrived while the previous
/// commit ran goes into the next one. A commit that fails (a full disk, a
/// busy store) is retried with back-off while the results wait in memory:
/// meanwhile the queue fills, lines keep their slots and dispatch stalls,
/// so a store outage pauses the batch instead of losing answered lines.
pub async fn write_results(
    shared: Arc<Shared>,
    lease: Lease,
    model: String,
    mut rx: mpsc::Receiver<LineResult>,
    stop: CancellationToken,
) -> Result<(), StoreError> {
    let mut buf = Vec::with_capacity(MAX_COMMIT);
    while let Some(first) = rx.recv().await {
        buf.push(first);
        while buf.len() < MAX_COMMIT {
            match rx.try_recv() {
                Ok(r) => buf.push(r),
                Err(_) => break,
            }
        }
        commit_with_retry(&shared, &lease, &buf, &stop).await?;
        count_committed(&model, &buf);
        buf.clear();
    }
    Ok(())
}

async fn commit_with_retry(
    shared: &Shared,
    lease: &Lease,
    buf: &[LineResult],
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let mut wait = Duration::from_millis(100);
    loop {
        match shared.gw.store.record_results(lease, buf).await {
            Ok(()) => return Ok(()),
            Err(StoreError::LeaseLost) => return Err(StoreError::LeaseLost),
            Err(e) if stop.is_cancelled() || shared.shutdown.is_cancelled() => return Err(e),
            Err(e) => {
                tracing::warn!(batch_key = %lease.key, error = %e, full = e.is_storage_full(), lines = buf.len(), "cannot journal results; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => {}
                    _ = shared.shutdown.cancelled() => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Telemetry for committed results (lines, tokens, spend per model).
/// Counters may see a line twice after a crash; the ledger never does.
fn count_committed(model: &str, results: &[LineResult]) {
    for r in results {
        let outcome = if r.ok { "completed" } else { "failed" };
        metrics::counter!("batchgate_lines_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
        if let Some(u) = r.usage {
            for (kind, n) in [
                ("input", u.input_tokens),
                ("cached", u.cached_tokens),
                ("output", u.output_tokens),
            ] {
                metrics::counter!("batchgate_tokens_total", "model" => model.to_string(), "kind" => kind).increment(n);
            }
        }
        if let Some(c) = r.charge {
            // Telemetry only: the ledger itself stays exact decimal.
            let spend = (c.input + c.output)
                .to_string()
                .parse::<f64>()
                .unwrap_or(0.0);
            metrics::gauge!("batchgate_spend_usd", "model" => model.to_string()).increment(spend);
        }
    }
}

/// The error-file line of a request the gateway cannot send (it does not
/// parse as one): it fails on its own rather than vanish from the results.
pub fn unsendable_line(
    line_no: u64,
    custom_id: Option<String>,
    error: &batchgate_core::BatchError,
) -> LineResult {
    not_run_line(line_no, custom_id.as_deref(), &error.code, &error.message)
}
