//! Finds batches that need running, and chunks of running batches, and
//! keeps each one leased to this process while it runs. Leases are what
//! let several gateway instances share one store: a batch's holder
//! validates, watches and finalizes it, while every instance runs chunks
//! of its lines; a batch or chunk whose holder died is taken over once its
//! lease runs out, under a new epoch that fences the old holder's writes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batchgate_store::{BatchRecord, Chunk, Lease};
use tokio_util::sync::CancellationToken;

use super::chunk::run_chunk;
use super::runner::run;
use super::shared::Shared;

/// Batches one process runs at once; the rest wait their turn.
const MAX_RUNNING: usize = 64;
/// Chunks one process runs at once, over all batches.
const MAX_CHUNKS: usize = 64;
/// Chunks of one batch one process runs at once: two keep its share of
/// the deployment's slots busy while one chunk's last lines finish, and
/// leave the batch's other chunks to the other instances.
const CHUNKS_PER_BATCH: u64 = 2;
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The batches this process runs, by key: a second runner for one batch is
/// never started here, whatever the store answers.
#[derive(Debug, Default)]
pub struct Running {
    keys: Mutex<HashSet<String>>,
}

impl Running {
    fn len(&self) -> usize {
        self.keys.lock().map_or(MAX_RUNNING, |k| k.len())
    }

    /// Marks `key` running; `false` if it already was.
    fn start(&self, key: &str) -> bool {
        self.keys
            .lock()
            .is_ok_and(|mut k| k.insert(key.to_string()))
    }

    fn end(&self, key: &str) {
        if let Ok(mut k) = self.keys.lock() {
            k.remove(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub async fn supervise(shared: Arc<Shared>) {
    // Leases held under our name belong to a previous life of this process.
    if let Err(e) = shared.gw.store.release_leases(&shared.instance).await {
        tracing::warn!(error = %e, "cannot release stale leases");
    }
    while !shared.shutdown.is_cancelled() {
        claim_while_room(&shared).await;
        claim_chunks_while_room(&shared).await;
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = shared.shutdown.cancelled() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

/// Claims batches until none is free or this process runs its maximum.
async fn claim_while_room(shared: &Arc<Shared>) {
    while shared.running.len() < MAX_RUNNING && !shared.shutdown.is_cancelled() {
        let now = shared.gw.now();
        let until = now.saturating_add(lease_secs(shared));
        match shared
            .gw
            .store
            .claim_batch(&shared.instance, now, until)
            .await
        {
            Ok(Some((rec, lease))) => {
                if !shared.running.start(&lease.key) {
                    // Our own runner lost its lease (renewals failed) and
                    // is stopping; the new lease lapses and is claimed again.
                    tracing::warn!(batch = %rec.batch.id, "batch already running here; not starting a second runner");
                    continue;
                }
                tracing::info!(batch = %rec.batch.id, status = rec.batch.status.as_str(), epoch = lease.epoch, "running batch");
                tokio::spawn(run_leased(shared.clone(), lease, until));
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim batches");
                return;
            }
        }
    }
}

/// Claims chunks of running batches (this process's own or any other
/// instance's) until none is free or this process runs its maximum.
async fn claim_chunks_while_room(shared: &Arc<Shared>) {
    while shared.chunks.len() < MAX_CHUNKS && !shared.shutdown.is_cancelled() {
        let now = shared.gw.now();
        let until = now.saturating_add(lease_secs(shared));
        let store = &shared.gw.store;
        match store
            .claim_chunk(&shared.instance, now, until, CHUNKS_PER_BATCH)
            .await
        {
            Ok(Some((rec, chunk, lease))) => {
                if !shared.chunks.start(&chunk_key(&lease)) {
                    tracing::warn!(batch = %rec.batch.id, chunk = chunk.number, "chunk already running here; not starting a second runner");
                    continue;
                }
                tracing::debug!(batch = %rec.batch.id, chunk = chunk.number, epoch = lease.epoch, "running chunk");
                tokio::spawn(run_leased_chunk(shared.clone(), rec, chunk, lease, until));
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim chunks");
                return;
            }
        }
    }
}

fn chunk_key(lease: &Lease) -> String {
    format!("{}#{}", lease.key, lease.chunk.unwrap_or_default())
}

fn lease_secs(shared: &Shared) -> i64 {
    i64::try_from(shared.gw.batch.lease_seconds.max(3)).unwrap_or(30)
}

async fn run_leased(shared: Arc<Shared>, lease: Lease, until: i64) {
    let stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        shared.clone(),
        lease.clone(),
        until,
        stop.clone(),
    ));
    let result = run(shared.clone(), &lease, stop.clone()).await;
    heartbeat.abort();
    stop.cancel();
    match result {
        Ok(()) => {
            if let Err(e) = shared.gw.store.release_lease(&lease).await {
                tracing::warn!(error = %e, "cannot release a lease");
            }
        }
        // Keep the lease until it lapses: a batch that keeps failing is
        // retried once per lease period, not in a tight loop.
        Err(e) => {
            tracing::error!(batch_key = %lease.key, error = %e, "batch runner failed; will retry")
        }
    }
    shared.running.end(&lease.key);
    shared.wake.notify_one();
    shared.runner_ended.notify_waiters();
}

async fn run_leased_chunk(
    shared: Arc<Shared>,
    rec: BatchRecord,
    chunk: Chunk,
    lease: Lease,
    until: i64,
) {
    let stop = CancellationToken::new();
    let beat = heartbeat(shared.clone(), lease.clone(), until, stop.clone());
    let heartbeat = tokio::spawn(beat);
    let result = run_chunk(shared.clone(), &rec, &chunk, &lease, stop.clone()).await;
    heartbeat.abort();
    stop.cancel();
    if let Err(e) = result {
        // The lease is kept until it lapses, as a failed batch runner's
        // is: a chunk that keeps failing (its deployment gone from the
        // config, the store down) is retried once per lease period, not in
        // a tight loop. Whoever takes it then skips its journaled lines.
        tracing::warn!(batch = %rec.batch.id, chunk = chunk.number, error = %e, "chunk runner failed; will retry");
    }
    shared.chunks.end(&chunk_key(&lease));
    shared.wake.notify_one();
    shared.runner_ended.notify_waiters();
}

/// Renews the lease (a batch's or a chunk's) every third of its length. A runner that cannot
/// confirm its lease before it runs out stops: past that point another
/// instance may hold the batch, and the fence would refuse its writes
/// anyway — stopping first also stops it sending.
async fn heartbeat(shared: Arc<Shared>, lease: Lease, mut until: i64, stop: CancellationToken) {
    let secs = lease_secs(&shared);
    let period = Duration::from_secs(u64::try_from(secs / 3).unwrap_or(1).max(1));
    loop {
        tokio::time::sleep(period).await;
        let next = shared.gw.now().saturating_add(secs);
        let renewed = match lease.chunk {
            None => shared.gw.store.renew_lease(&lease, next).await,
            Some(_) => shared.gw.store.renew_chunk(&lease, next).await,
        };
        match renewed {
            Ok(true) => until = next,
            Ok(false) => {
                tracing::warn!(batch_key = %lease.key, "lease lost; stopping this runner");
                stop.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew a lease");
                let margin = i64::try_from(period.as_secs()).unwrap_or(1);
                if shared.gw.now().saturating_add(margin) >= until {
                    tracing::warn!(batch_key = %lease.key, "lease cannot be confirmed; stopping this runner");
                    stop.cancel();
                    return;
                }
            }
        }
    }
}
