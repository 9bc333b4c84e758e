//! Finds batches that need running and keeps each one leased to this
//! process while it runs. Leases are what let several gateway instances
//! share one store: a batch whose holder died is taken over once its lease
//! runs out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::runner::run;
use super::shared::Shared;

/// Batches one process runs at once; the rest wait their turn.
const MAX_RUNNING: usize = 64;
const IDLE_POLL: Duration = Duration::from_secs(1);

pub async fn supervise(shared: Arc<Shared>) {
    // Leases held under our name belong to a previous life of this process.
    if let Err(e) = shared.gw.store.release_leases(&shared.instance, None).await {
        tracing::warn!(error = %e, "cannot release stale leases");
    }
    let running = Arc::new(AtomicUsize::new(0));
    loop {
        while running.load(Ordering::Acquire) < MAX_RUNNING {
            let now = shared.gw.now();
            let until = now.saturating_add(lease_secs(&shared));
            match shared
                .gw
                .store
                .claim_batch(&shared.instance, now, until)
                .await
            {
                Ok(Some(rec)) => {
                    running.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(batch = %rec.batch.id, status = rec.batch.status.as_str(), "running batch");
                    tokio::spawn(run_leased(shared.clone(), rec.key, running.clone()));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim batches");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
}

fn lease_secs(shared: &Shared) -> i64 {
    i64::try_from(shared.gw.batch.lease_seconds.max(3)).unwrap_or(30)
}

async fn run_leased(shared: Arc<Shared>, key: String, running: Arc<AtomicUsize>) {
    let stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), key.clone(), stop.clone()));
    let result = run(shared.clone(), key.clone(), stop.clone()).await;
    heartbeat.abort();
    stop.cancel();
    match result {
        Ok(()) => {
            if let Err(e) = shared
                .gw
                .store
                .release_leases(&shared.instance, Some(&key))
                .await
            {
                tracing::warn!(error = %e, "cannot release a lease");
            }
        }
        // Keep the lease until it lapses: a batch that keeps failing is
        // retried once per lease period, not in a tight loop.
        Err(e) => tracing::error!(batch_key = %key, error = %e, "batch runner failed; will retry"),
    }
    running.fetch_sub(1, Ordering::AcqRel);
    shared.wake.notify_one();
}

async fn heartbeat(shared: Arc<Shared>, key: String, stop: CancellationToken) {
    let period = Duration::from_secs(u64::try_from(lease_secs(&shared) / 3).unwrap_or(1).max(1));
    loop {
        tokio::time::sleep(period).await;
        let until = shared.gw.now().saturating_add(lease_secs(&shared));
        match shared
            .gw
            .store
            .renew_lease(&key, &shared.instance, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(batch_key = %key, "lease lost; stopping this runner");
                stop.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew a lease"),
        }
    }
}
