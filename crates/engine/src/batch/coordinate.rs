//! The `in_progress` phase as the batch's lease holder sees it: every
//! instance (this one included) runs chunks of the batch; the holder
//! watches for the end — every chunk done, expiry, a budget running out
//! or a cancel — and moves the batch on. It sends no line itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchgate_config::BudgetPolicy;
use batchgate_core::{ApiError, BatchStatus};
use batchgate_store::{BatchRecord, Lease, Transition};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use super::execute::over_budget;
use super::finalize::fill_unfinished;
use super::plan::plan_by_reading;
use super::shared::Shared;
use super::upstream::{budget_line, expired_line};

/// How often the holder looks at the batch: cancel, expiry and the last
/// chunk are acted on within this.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// Beyond the cancel grace, time a chunk runner of another instance gets
/// to journal its last results and give its lease back.
const RELEASE_MARGIN: Duration = Duration::from_secs(2);

/// How the phase ended, for its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// Every chunk is done: the batch is `finalizing`.
    Done,
    /// The window passed: unfinished lines are failed, the batch ended.
    Expired,
    /// The owner ran out of budget: unsent lines are failed, `finalizing`.
    BudgetExceeded,
    /// The status moved on (a cancel) or this runner stops.
    Left,
}

impl Watched {
    pub fn name(self) -> &'static str {
        match self {
            Watched::Done => "done",
            Watched::Expired => "expired",
            Watched::BudgetExceeded => "budget_exceeded",
            Watched::Left => "left",
        }
    }
}

/// Watches the running batch `lease` holds until it ends here.
pub async fn watch(
    shared: &Arc<Shared>,
    rec: &BatchRecord,
    lease: &Lease,
    stop: &CancellationToken,
) -> Result<Watched, ApiError> {
    ensure_planned(shared, rec, lease).await?;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(Watched::Left),
            _ = shared.shutdown.cancelled() => return Ok(Watched::Left),
            _ = tick.tick() => {}
        }
        match look(shared, rec).await {
            Ok(None) => {}
            Ok(Some(Watched::Expired)) => {
                wait_for_chunk_runners(shared, &rec.key).await;
                fill_unfinished(shared, rec, lease, expired_line).await?;
                let to = BatchStatus::Expired;
                super::runner::finalize_phase(shared, rec, lease, &[BatchStatus::InProgress], to)
                    .await?;
                return Ok(Watched::Expired);
            }
            Ok(Some(Watched::BudgetExceeded)) => {
                tracing::info!(batch = %rec.batch.id, "budget exceeded; stopping after in-flight lines");
                wait_for_chunk_runners(shared, &rec.key).await;
                fill_unfinished(shared, rec, lease, budget_line).await?;
                to_finalizing(shared, rec, lease).await?;
                return Ok(Watched::BudgetExceeded);
            }
            Ok(Some(Watched::Done)) => {
                to_finalizing(shared, rec, lease).await?;
                return Ok(Watched::Done);
            }
            Ok(Some(Watched::Left)) => return Ok(Watched::Left),
            // A store hiccup: look again at the next tick.
            Err(e) => {
                tracing::warn!(batch = %rec.batch.id, error = %e, "cannot read batch progress")
            }
        }
    }
}

/// One look at the batch: what ends its running, if anything did.
async fn look(shared: &Shared, rec: &BatchRecord) -> Result<Option<Watched>, ApiError> {
    let now = shared.gw.now();
    if rec.batch.expires_at.is_some_and(|e| now >= e) {
        return Ok(Some(Watched::Expired));
    }
    let store = &shared.gw.store;
    let Some(cur) = store.get_batch(&rec.key).await? else {
        return Ok(Some(Watched::Left));
    };
    if cur.batch.status != BatchStatus::InProgress {
        return Ok(Some(Watched::Left));
    }
    if shared.gw.batch.on_budget_exceeded == BudgetPolicy::Stop
        && over_budget(shared, &cur.owner).await
    {
        return Ok(Some(Watched::BudgetExceeded));
    }
    let progress = store.chunk_progress(&rec.key, now).await?;
    Ok(progress.all_done().then_some(Watched::Done))
}

async fn to_finalizing(shared: &Shared, rec: &BatchRecord, lease: &Lease) -> Result<(), ApiError> {
    let from = [BatchStatus::InProgress];
    let t = Transition::new(&from, BatchStatus::Finalizing, shared.gw.now()).fenced(lease);
    shared.gw.store.transition(&rec.key, &t).await?;
    Ok(())
}

/// Plans the chunks of a batch that runs without any (it went
/// `in_progress` before this version of the gateway), and wakes the
/// supervisor to take some.
async fn ensure_planned(shared: &Shared, rec: &BatchRecord, lease: &Lease) -> Result<(), ApiError> {
    let store = &shared.gw.store;
    if store.chunk_progress(&rec.key, shared.gw.now()).await?.total == 0 {
        let chunks = plan_by_reading(shared, rec).await?;
        store.plan_chunks(lease, &chunks).await?;
    }
    shared.wake.notify_one();
    Ok(())
}

/// Waits until no chunk of the batch is leased (their runners, here or
/// on other instances, have seen the batch stop and let their in-flight
/// lines finish), at most the cancel grace plus a margin: a runner that
/// died holds its lease until it lapses, and is not waited for.
pub async fn wait_for_chunk_runners(shared: &Shared, key: &str) {
    let grace = Duration::from_secs(shared.gw.batch.cancel_grace_seconds) + RELEASE_MARGIN;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match shared.gw.store.chunk_progress(key, shared.gw.now()).await {
            Ok(p) if p.leased == 0 => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(batch_key = key, error = %e, "cannot read chunk progress"),
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

/// Waits for the chunk runners, then takes their leases away, so no line
/// can be journaled once the result files are being written.
pub async fn settle_chunks(shared: &Shared, lease: &Lease) -> Result<(), ApiError> {
    wait_for_chunk_runners(shared, &lease.key).await;
    shared.gw.store.revoke_chunks(lease).await?;
    Ok(())
}

/// Records the outcome on the phase's span.
pub fn record(watched: Watched) {
    Span::current().record("batchgate.outcome", watched.name());
}
