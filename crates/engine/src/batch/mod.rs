//! The batch engine: batches run in the gateway, line by line, against any
//! OpenAI-compatible upstream, journaled so a crash loses and repeats
//! nothing but the lines in flight.

mod adaptive;
mod api;
mod breaker;
mod chunk;
mod coordinate;
mod execute;
mod finalize;
mod fleet;
mod gate;
mod journal;
mod limits;
mod plan;
mod retry;
mod runner;
mod shared;
mod supervisor;
mod upstream;
mod upstreams;

use std::sync::Arc;
use std::time::Duration;

use batchgate_core::ApiError;
use tokio::sync::Notify;

use batchgate_config::BatchSettings;

use crate::gateway::Gateway;
use crate::{Accounts, Catalog, LocalFiles};
pub use adaptive::Concurrency;
pub use limits::PausedDeployment;
pub use upstream::{success_line, RetryPolicy};
pub use upstreams::Upstreams;

/// Ended batches kept in memory for repeated retrieves.
const ENDED_CACHE: u64 = 10_000;

/// Runs gateway-side batches. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<shared::Shared>,
}

impl Engine {
    /// An engine over `catalog` (inputs, results, batch rows) charging
    /// `accounts`. `instance` names this process in leases: keep it stable
    /// across restarts of one process (so it takes its own batches back at
    /// once) and distinct between processes sharing a store. `upstreams`
    /// reaches every configured deployment.
    pub fn new(
        catalog: &Catalog,
        accounts: &Accounts,
        settings: Arc<BatchSettings>,
        instance: String,
        upstreams: Upstreams,
    ) -> Result<Engine, ApiError> {
        let gw = Gateway::new(catalog, accounts, settings);
        let policy = RetryPolicy {
            max_attempts: gw.batch.max_attempts,
            initial_backoff: Duration::from_millis(gw.batch.initial_backoff_ms),
            max_backoff: Duration::from_millis(gw.batch.max_backoff_ms),
        };
        let router = gw.ids.router();
        let mut prices = std::collections::HashMap::new();
        for (i, d) in router.deployments().iter().enumerate() {
            let p = batchgate_cost::Prices::from_config(&d.extra_params, &d.model_info)
                .map_err(|e| ApiError::invalid_request(format!("model_list[{i}].{e}")))?;
            prices.insert(d.id.clone(), p);
        }
        let limits = limits::Limits::new(
            router,
            &upstreams,
            gw.batch.outage_threshold,
            gw.clock.clone(),
        )?;
        let limits = if gw.store.is_shared() {
            limits.for_fleet()
        } else {
            limits
        };
        let shared = shared::Shared {
            prices,
            ended: moka::future::Cache::new(ENDED_CACHE),
            files: LocalFiles::new(catalog.clone()),
            limits,
            upstreams,
            gw,
            policy,
            instance,
            wake: Notify::new(),
            running: supervisor::Running::default(),
            chunks: supervisor::Running::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            runner_ended: Notify::new(),
        };
        Ok(Engine {
            shared: Arc::new(shared),
        })
    }

    /// Starts the supervisor that claims and runs batches (resuming any a
    /// previous process left unfinished), and the fleet heartbeat that
    /// shares each deployment's `max_parallel_requests` with the other
    /// instances on the same store.
    /// Dropping the handle stops it (use [`Engine::shutdown`] for a
    /// graceful stop first).
    pub fn start(&self) -> crate::Background {
        let shared = self.shared.clone();
        crate::Background::spawn(async move {
            tokio::join!(
                supervisor::supervise(shared.clone()),
                fleet::heartbeat(shared)
            );
        })
    }

    /// Stops gracefully: claims no more batches, sends no new lines, lets
    /// the upstream calls in flight finish and be journaled (within
    /// `batch_settings.shutdown_grace_seconds`), gives the leases up so a
    /// restart resumes at once, and returns when every runner has ended.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.shutdown.cancel();
        // The grace covers the in-flight calls; the margin covers the last
        // commits and lease releases after them.
        let limit = Duration::from_secs(shared.gw.batch.shutdown_grace_seconds.saturating_add(10));
        let all_ended = async {
            loop {
                let ended = shared.runner_ended.notified();
                if shared.running.is_empty() && shared.chunks.is_empty() {
                    return;
                }
                ended.await;
            }
        };
        if tokio::time::timeout(limit, all_ended).await.is_err() {
            tracing::warn!(
                "batch runners still busy at the end of the shutdown grace; leaving them"
            );
        }
    }

    /// Whether deployment `id`'s server answers (`None` for an unknown id).
    pub async fn upstream_health(&self, id: &str) -> Option<Result<(), String>> {
        Some(self.shared.upstreams.get(id)?.health().await)
    }

    /// Deployments whose dispatch is paused because they stopped answering
    /// (a probe confirmed it); they resume by themselves once they answer.
    pub fn paused_deployments(&self) -> Vec<PausedDeployment> {
        self.shared.limits.paused()
    }

    /// Lines in flight per deployment id, across every batch this process
    /// runs.
    pub fn in_flight(&self) -> Vec<(String, usize)> {
        self.shared.limits.in_flight()
    }

    /// Each deployment's concurrency limit, ceiling and measurements, by
    /// id.
    pub fn concurrency(&self) -> Vec<(String, Concurrency)> {
        self.shared.limits.concurrency()
    }

    /// The instances working on each model group now (on a shared store;
    /// none on one no other instance uses), as their heartbeats say.
    pub async fn fleet_presence(
        &self,
    ) -> Result<Vec<batchgate_store::Presence>, batchgate_store::StoreError> {
        let since = self.shared.gw.now().saturating_sub(fleet::LIVE_FOR);
        self.shared.gw.store.presence(since).await
    }

    /// The name this process holds batch leases under.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// How far each lease renewal reaches ahead, in seconds: a lease that
    /// runs until `t` was last renewed at `t - lease_seconds`.
    pub fn lease_seconds(&self) -> u64 {
        self.shared.gw.batch.lease_seconds
    }
}
