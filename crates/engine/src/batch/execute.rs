//! The `in_progress` phase: every unfinished line goes upstream once per
//! attempt, bounded by the deployment limits, and its result is journaled.
//!
//! Lines already in the journal are skipped, which is what makes a resumed
//! batch send no finished line again. Results are committed in groups by a
//! single writer, so at most the lines in flight (and the few results
//! waiting for the next commit) are repeated after a crash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use batchgate_core::{ApiError, BatchStatus};
use batchgate_store::{BatchRecord, Lease, LineResult, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::shared::{Shared, MAX_LINE_BYTES};
use super::upstream::{run_line, Line};
use crate::{Checked, LineReader, Rules, Validator};
use batchgate_config::BudgetPolicy;

/// Why the phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every line has a result.
    Done,
    /// The completion window passed.
    Expired,
    /// A client cancelled.
    Cancelled,
    /// This process gave the batch up (lease lost, shutting down).
    Stopped,
    /// The owner's key or team ran out of budget (and the policy is `stop`).
    BudgetExceeded,
    /// The process is stopping gracefully: in-flight lines finish and are
    /// journaled (within the shutdown grace), nothing new is sent.
    ShuttingDown,
}

const CONTROL_INTERVAL: Duration = Duration::from_millis(250);
const MAX_COMMIT: usize = 512;
/// Results waiting for the writer at most. Together with the slots (a line
/// keeps its slot until its result is queued) this bounds the results a
/// crash can lose.
const RESULT_QUEUE: usize = 512;

pub async fn execute(
    shared: &Arc<Shared>,
    rec: &BatchRecord,
    lease: &Lease,
    stop: &CancellationToken,
) -> Result<Ending, ApiError> {
    let Some(deployment) = shared.deployment_of(rec) else {
        tracing::warn!(batch = %rec.batch.id, "deployment no longer configured; pausing the batch");
        // An error, not `Stopped`: the runner would re-read the status and
        // come straight back here in a busy loop; an error keeps the lease
        // until it lapses, so the batch is looked at again once per lease.
        return Err(ApiError::unavailable(
            "the deployment of this batch is no longer configured",
        ));
    };
    // Past the window nothing more is sent. Deciding here, before reading
    // the journal, also settles a restart that crashed between journaling
    // the `batch_expired` lines and marking the batch expired: it must end
    // `expired`, not `completed`.
    if rec.batch.expires_at.is_some_and(|e| shared.gw.now() >= e) {
        return Ok(Ending::Expired);
    }
    let finished: HashSet<u64> = shared
        .gw
        .store
        .finished_lines(&rec.key)
        .await?
        .into_iter()
        .collect();
    let Some(stream) = shared.input_stream(rec).await? else {
        return Err(ApiError::internal(
            "the input file of a running batch is gone",
        ));
    };
    let (ctl_tx, mut ctl) = watch::channel(None);
    let control = tokio::spawn(control(
        shared.clone(),
        rec.key.clone(),
        rec.batch.expires_at,
        ctl_tx,
        stop.clone(),
    ));
    let (tx, rx) = mpsc::channel::<LineResult>(RESULT_QUEUE);
    let writer = tokio::spawn(write_results(
        shared.clone(),
        lease.clone(),
        deployment.model_name.clone(),
        rx,
        stop.clone(),
    ));

    let mut reader = LineReader::new(stream, MAX_LINE_BYTES);
    // The input was validated; the validator is reused here as the parser.
    let mut parser = Validator::new(Rules {
        endpoint: rec.batch.endpoint.clone(),
        accepted_models: vec![
            deployment.model_name.clone(),
            deployment.served_model.clone(),
        ],
        max_lines: u64::MAX,
        max_bytes: u64::MAX,
        max_reported_errors: 0,
    });
    let mut inflight = JoinSet::new();
    let endpoint: Arc<str> = rec.batch.endpoint.as_str().into();
    let ending = loop {
        if let Some(e) = *ctl.borrow_and_update() {
            break e;
        }
        // The writer gave up (lease lost): results could no longer be
        // journaled, so nothing more may be sent.
        if tx.is_closed() {
            break Ending::Stopped;
        }
        let next = tokio::select! {
            biased;
            _ = ctl.changed() => continue,
            next = reader.next_line() => next,
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break Ending::Done,
            Err(e) => {
                tracing::error!(batch = %rec.batch.id, error = %e, "input read failed mid-batch");
                break Ending::Stopped;
            }
        };
        let valid = match parser.check_line(&line) {
            Checked::Valid(valid) if !finished.contains(&valid.number) => valid,
            Checked::Invalid { custom_id, error } if !finished.contains(&line.number) => {
                // Validation passed the file, so this should not happen;
                // if it does, the line still gets its result.
                tracing::warn!(batch = %rec.batch.id, line = line.number, code = %error.code, "a validated line cannot be sent");
                let result = unsendable_line(line.number, custom_id, &error);
                if tx.send(result).await.is_err() {
                    break Ending::Stopped;
                }
                continue;
            }
            _ => continue,
        };
        let slot = tokio::select! {
            biased;
            _ = ctl.changed() => break (*ctl.borrow()).unwrap_or(Ending::Stopped),
            slot = shared.limits.acquire(&deployment.model_name) => slot,
        };
        let Some(slot) = slot else {
            break Ending::Stopped;
        };
        let (shared2, tx, endpoint) = (shared.clone(), tx.clone(), endpoint.clone());
        let mut ended = ctl.clone();
        inflight.spawn(async move {
            let line = Line {
                number: valid.number,
                custom_id: valid.custom_id,
                body: valid.body,
            };
            // A line waiting out an upstream outage gives up (unfinished)
            // when the batch ends, rather than hold up its expiry.
            let ended = async move {
                let _ = ended.wait_for(Option::is_some).await;
            };
            let run = run_line(slot, &endpoint, line, &shared2.policy, ended);
            let Some((mut result, slot)) = run.await else {
                return;
            };
            // Priced by the replica that served it; journaled with it, in
            // one transaction, so the line is billed exactly once.
            result.charge = result.usage.map(|u| shared2.charge(&slot.deployment.id, u));
            // The writer is gone only if the batch is being abandoned. The
            // slot is held until the result is queued: were it freed first,
            // a slow writer would let answered-but-unjournaled results pile
            // up without bound, all of them sent again after a crash.
            let _ = tx.send(result).await;
            drop(slot);
        });
        while inflight.try_join_next().is_some() {}
    };
    drop(tx);
    let ending = drain(&mut inflight, ending, &mut ctl, &shared.gw.batch).await;
    control.abort();
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "result writer failed");
            return Err(ApiError::internal("result writer failed"));
        }
    }
    Ok(ending)
}

/// Waits for in-flight lines. On `Done` they all finish (unless a stop
/// arrives meanwhile); on cancel or expiry they get the cancel grace, on a
/// graceful shutdown the shutdown grace; on `Stopped` (lease lost) they are
/// abandoned at once.
async fn drain(
    inflight: &mut JoinSet<()>,
    mut ending: Ending,
    ctl: &mut watch::Receiver<Option<Ending>>,
    settings: &batchgate_config::BatchSettings,
) -> Ending {
    if ending == Ending::Done {
        loop {
            tokio::select! {
                biased;
                _ = ctl.changed() => {
                    if let Some(e) = *ctl.borrow() { ending = e; }
                    break;
                }
                next = inflight.join_next() => if next.is_none() { return Ending::Done },
            }
        }
    }
    let grace = match ending {
        Ending::Stopped => None,
        Ending::ShuttingDown => Some(settings.shutdown_grace_seconds),
        _ => Some(settings.cancel_grace_seconds),
    };
    if let Some(secs) = grace {
        let all = async { while inflight.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(secs), all).await;
    }
    inflight.abort_all();
    while inflight.join_next().await.is_some() {}
    ending
}

/// Watches for cancel, expiry and stop, and says which came first.
async fn control(
    shared: Arc<Shared>,
    key: String,
    expires_at: Option<i64>,
    out: watch::Sender<Option<Ending>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(CONTROL_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => { let _ = out.send(Some(Ending::Stopped)); return; }
            _ = shared.shutdown.cancelled() => { let _ = out.send(Some(Ending::ShuttingDown)); return; }
            _ = tick.tick() => {}
        }
        if expires_at.is_some_and(|e| shared.gw.now() >= e) {
            let _ = out.send(Some(Ending::Expired));
            return;
        }
        match shared.gw.store.get_batch(&key).await {
            Ok(Some(r)) if r.batch.status == BatchStatus::InProgress => {
                if shared.gw.batch.on_budget_exceeded == BudgetPolicy::Stop
                    && over_budget(&shared, &r.owner).await
                {
                    tracing::info!(batch = %r.batch.id, "budget exceeded; stopping after in-flight lines");
                    let _ = out.send(Some(Ending::BudgetExceeded));
                    return;
                }
            }
            Ok(Some(r)) if r.batch.status == BatchStatus::Cancelling => {
                let _ = out.send(Some(Ending::Cancelled));
                return;
            }
            Ok(_) => {
                let _ = out.send(Some(Ending::Stopped));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read batch status"),
        }
    }
}

/// Whether the key or team owning a batch has spent its budget.
async fn over_budget(shared: &Shared, owner: &batchgate_store::Owner) -> bool {
    let store = &shared.gw.store;
    if let Some(key_id) = &owner.key_id {
        if let Ok(Some(k)) = store.key_by_id(key_id).await {
            if k.max_budget.is_some_and(|max| k.spend >= max) {
                return true;
            }
        }
    }
    if let Some(team_id) = &owner.team_id {
        if let Ok(Some(t)) = store.team(team_id).await {
            if t.max_budget.is_some_and(|max| t.spend >= max) {
                return true;
            }
        }
    }
    false
}

/// Commits results in groups: whatever has arrived while the previous
/// commit ran goes into the next one. A commit that fails (a full disk, a
/// busy store) is retried with back-off while the results wait in memory:
/// meanwhile the queue fills, lines keep their slots and dispatch stalls,
/// so a store outage pauses the batch instead of losing answered lines.
async fn write_results(
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
    let v = serde_json::json!({"id": batchgate_ids::batch_request_id(), "custom_id": custom_id,
        "response": null, "error": {"code": error.code, "message": error.message}});
    LineResult {
        line_no,
        custom_id: custom_id.unwrap_or_default(),
        ok: false,
        line: v.to_string(),
        usage: None,
        charge: None,
    }
}
