//! Runs one claimed chunk of a batch: its lines go upstream through the
//! shared dispatch machinery, their results are journaled under the
//! chunk's lease, and the chunk is marked done once every line of it has
//! a result — or given back (released) when the batch stops running here.

use std::sync::Arc;

use batchgate_core::ApiError;
use batchgate_store::{BatchRecord, Chunk, Lease};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::execute::{execute, Ending};
use super::shared::Shared;

/// Runs `chunk` of `rec` under `lease` (the chunk's) until its lines are
/// done or the batch stops running (cancel, expiry, budget, shutdown,
/// lease lost). Only a chunk whose every line was journaled is marked
/// done; any other ending frees it for whoever runs the batch next.
pub async fn run_chunk(
    shared: Arc<Shared>,
    rec: &BatchRecord,
    chunk: &Chunk,
    lease: &Lease,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    let span = tracing::info_span!(
        "batch.chunk",
        batch.id = rec.batch.id.as_str(),
        batchgate.chunk = chunk.number,
        batchgate.outcome = tracing::field::Empty,
    );
    let ending = execute(&shared, rec, chunk, lease, &stop)
        .instrument(span.clone())
        .await?;
    let store = &shared.gw.store;
    let outcome = match ending {
        Ending::Done => {
            store.finish_chunk(lease).await?;
            "done"
        }
        // Others may go on with it at once.
        Ending::ShuttingDown | Ending::Stopped => {
            store.release_chunk(lease, None).await?;
            "released"
        }
        // The batch is ending (its holder fails or finalizes the rest):
        // parked for a lease period, so no instance takes it up again and
        // sends more of its lines meanwhile.
        Ending::BudgetExceeded | Ending::Expired | Ending::Cancelled => {
            let lease_secs = i64::try_from(shared.gw.batch.lease_seconds).unwrap_or(30);
            let not_before = shared.gw.now().saturating_add(lease_secs);
            store.release_chunk(lease, Some(not_before)).await?;
            "parked"
        }
    };
    span.record("batchgate.outcome", outcome);
    metrics::counter!("batchgate_batch_chunks_total", "outcome" => outcome).increment(1);
    Ok(())
}
