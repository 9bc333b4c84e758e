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

use batchgate_core::{ApiError, BatchStatus, ByteStream, Deployment};
use batchgate_store::{BatchRecord, Chunk, Lease, LineResult};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::journal::{unsendable_line, write_results};
use super::limits::Slot;
use super::shared::{Shared, MAX_LINE_BYTES};
use super::upstream::{run_line, Line};
use crate::{Checked, LineReader, Rules, ValidLine, Validator};
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
/// Results waiting for the writer at most. Together with the slots (a line
/// keeps its slot until its result is queued) this bounds the results a
/// crash can lose.
const RESULT_QUEUE: usize = 512;

/// Runs the lines of `chunk` (journaled under `lease`, the chunk's).
pub async fn execute(
    shared: &Arc<Shared>,
    rec: &BatchRecord,
    chunk: &Chunk,
    lease: &Lease,
    stop: &CancellationToken,
) -> Result<Ending, ApiError> {
    let (deployment, stream, finished) = match prepare(shared, rec, chunk).await? {
        Prepared::Run {
            deployment,
            stream,
            finished,
        } => (deployment, stream, finished),
        Prepared::Expired => return Ok(Ending::Expired),
    };
    let (ctl_tx, ctl) = watch::channel(None);
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
    let mut dispatch = Dispatch {
        shared: shared.clone(),
        batch_id: rec.batch.id.clone(),
        endpoint: rec.batch.endpoint.as_str().into(),
        // The input was validated; the validator is reused as the parser.
        parser: Validator::new(Rules {
            endpoint: rec.batch.endpoint.clone(),
            accepted_models: vec![
                deployment.model_name.clone(),
                deployment.served_model.clone(),
            ],
            max_lines: u64::MAX,
            max_bytes: u64::MAX,
            max_reported_errors: 0,
        }),
        reader: LineReader::starting_at(stream, MAX_LINE_BYTES, chunk.first_line, chunk.offset),
        end_line: chunk.end_line,
        deployment,
        finished,
        tx,
        ctl,
        inflight: JoinSet::new(),
    };
    let ending = dispatch.run().await;
    let Dispatch {
        tx,
        mut ctl,
        mut inflight,
        ..
    } = dispatch;
    drop(tx);
    let ending = drain(&mut inflight, ending, &mut ctl, &shared.gw.batch).await;
    control.abort();
    match writer.await {
        Ok(Ok(())) => Ok(ending),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "result writer failed");
            Err(ApiError::internal("result writer failed"))
        }
    }
}

/// What running the phase starts from.
enum Prepared {
    Run {
        deployment: Arc<Deployment>,
        stream: ByteStream,
        /// Lines already journaled: never sent again.
        finished: HashSet<u64>,
    },
    /// The window has passed: nothing more is sent.
    Expired,
}

async fn prepare(shared: &Shared, rec: &BatchRecord, chunk: &Chunk) -> Result<Prepared, ApiError> {
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
        return Ok(Prepared::Expired);
    }
    let store = &shared.gw.store;
    let finished = store
        .finished_lines_in(&rec.key, chunk.first_line, chunk.end_line)
        .await?;
    let Some(stream) = shared.input_stream_from(rec, chunk.offset).await? else {
        return Err(ApiError::internal(
            "the input file of a running batch is gone",
        ));
    };
    Ok(Prepared::Run {
        deployment,
        stream,
        finished: finished.into_iter().collect(),
    })
}

/// The dispatch loop's state: the input being read, the lines in flight,
/// and where their results go.
struct Dispatch {
    shared: Arc<Shared>,
    batch_id: String,
    endpoint: Arc<str>,
    deployment: Arc<Deployment>,
    parser: Validator,
    reader: LineReader,
    /// One past the chunk's last line: the chunk ends there.
    end_line: u64,
    finished: HashSet<u64>,
    tx: mpsc::Sender<LineResult>,
    ctl: watch::Receiver<Option<Ending>>,
    inflight: JoinSet<()>,
}

impl Dispatch {
    /// Sends every unfinished line, each once a slot is free, until the
    /// input ends or the phase is told to end.
    async fn run(&mut self) -> Ending {
        loop {
            let valid = match self.next_request().await {
                Ok(Some(valid)) => valid,
                Ok(None) => continue,
                Err(ending) => return ending,
            };
            let slot = tokio::select! {
                biased;
                _ = self.ctl.changed() => return (*self.ctl.borrow()).unwrap_or(Ending::Stopped),
                slot = self.shared.limits.acquire(&self.deployment.model_name) => slot,
            };
            let Some(slot) = slot else {
                return Ending::Stopped;
            };
            self.spawn_line(slot, valid);
            while self.inflight.try_join_next().is_some() {}
        }
    }

    /// The next line to send: `Ok(None)` for a line that needs no sending
    /// (blank, journaled, or failed here), `Err` when the phase ends.
    async fn next_request(&mut self) -> Result<Option<ValidLine>, Ending> {
        if let Some(e) = *self.ctl.borrow_and_update() {
            return Err(e);
        }
        // The writer gave up (lease lost): results could no longer be
        // journaled, so nothing more may be sent.
        if self.tx.is_closed() {
            return Err(Ending::Stopped);
        }
        let next = tokio::select! {
            biased;
            _ = self.ctl.changed() => return Ok(None),
            next = self.reader.next_line() => next,
        };
        let line = match next {
            Ok(Some(line)) if line.number < self.end_line => line,
            Ok(_) => return Err(Ending::Done),
            Err(e) => {
                tracing::error!(batch = %self.batch_id, error = %e, "input read failed mid-batch");
                return Err(Ending::Stopped);
            }
        };
        match self.parser.check_line(&line) {
            Checked::Valid(valid) if !self.finished.contains(&valid.number) => Ok(Some(valid)),
            Checked::Invalid { custom_id, error } if !self.finished.contains(&line.number) => {
                // Validation passed the file, so this should not happen;
                // if it does, the line still gets its result.
                tracing::warn!(batch = %self.batch_id, line = line.number, code = %error.code, "a validated line cannot be sent");
                let result = unsendable_line(line.number, custom_id, &error);
                match self.tx.send(result).await {
                    Ok(()) => Ok(None),
                    Err(_) => Err(Ending::Stopped),
                }
            }
            _ => Ok(None),
        }
    }

    /// Runs one line on `slot` in its own task; its result goes to the
    /// writer.
    fn spawn_line(&mut self, slot: Slot, valid: ValidLine) {
        let (shared, tx, endpoint) = (self.shared.clone(), self.tx.clone(), self.endpoint.clone());
        let mut ended = self.ctl.clone();
        self.inflight.spawn(async move {
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
            let run = run_line(slot, &endpoint, line, &shared.policy, ended);
            let Some((mut result, slot)) = run.await else {
                return;
            };
            // Priced by the replica that served it; journaled with it, in
            // one transaction, so the line is billed exactly once.
            result.charge = result.usage.map(|u| shared.charge(&slot.deployment.id, u));
            // The writer is gone only if the batch is being abandoned. The
            // slot is held until the result is queued: were it freed first,
            // a slow writer would let answered-but-unjournaled results pile
            // up without bound, all of them sent again after a crash.
            let _ = tx.send(result).await;
            drop(slot);
        });
    }
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

/// Whether the key or team owning a batch has spent its budget (a store
/// error counts as not: the next tick looks again).
pub async fn over_budget(shared: &Shared, owner: &batchgate_store::Owner) -> bool {
    let (key, team) = (owner.key_id.as_deref(), owner.team_id.as_deref());
    matches!(shared.gw.accounts.overspent(key, team).await, Ok(Some(_)))
}
