//! Concurrency towards upstreams: at most `max_parallel_requests` per
//! deployment, shared by every batch, spread over those of a model's
//! replicas that are not paused by an outage (see [`super::breaker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment, Upstream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::breaker::{Breaker, UpstreamProbe};
use super::Upstreams;
use crate::Clock;

/// A slot on one replica; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    pub deployment: Arc<Deployment>,
    /// How requests reach `deployment`.
    pub upstream: Arc<dyn Upstream>,
    /// The outage state of `deployment`, for the line's attempts to report to.
    pub breaker: Arc<Breaker>,
    group: Arc<Group>,
    _group: OwnedSemaphorePermit,
    _replica: OwnedSemaphorePermit,
}

impl Slot {
    /// Gives this slot up and waits for one on a replica of the same group
    /// that is not paused (this one again once it resumes). `None` only if
    /// the group has no replica, which a slot proves it has.
    pub async fn move_off(self) -> Option<Slot> {
        let group = self.group.clone();
        // Freed first: holding it while waiting could starve the group.
        drop(self);
        group.acquire().await
    }
}

/// A deployment paused by an outage, as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedDeployment {
    /// The deployment's id (`Deployment::id`).
    pub id: String,
    /// Unix seconds since which it has been paused.
    pub since: i64,
}

#[derive(Debug)]
struct Replica {
    deployment: Arc<Deployment>,
    upstream: Arc<dyn Upstream>,
    slots: Arc<Semaphore>,
    breaker: Arc<Breaker>,
}

#[derive(Debug)]
struct Group {
    /// Sum of the replicas' limits: while none is paused, holding one of
    /// these guarantees that some replica has a free slot. It also keeps
    /// waiters in order (the semaphore is fair).
    total: Arc<Semaphore>,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    /// Notified by the replicas' breakers when one resumes.
    resumed: Arc<Notify>,
}

/// Semaphores and outage breakers for every model group of the router.
#[derive(Debug, Default)]
pub struct Limits {
    groups: HashMap<String, Arc<Group>>,
}

impl Limits {
    /// `outage_threshold` consecutive outage-type failures pause a replica;
    /// its upstream's health tells when it answers again.
    pub fn new(
        router: &Router,
        upstreams: &Upstreams,
        outage_threshold: u32,
        clock: Clock,
    ) -> Result<Limits, ApiError> {
        let mut groups = HashMap::new();
        for name in router.model_names() {
            let resumed = Arc::new(Notify::new());
            let mut replicas = Vec::new();
            for d in router.group(name).unwrap_or_default() {
                let upstream = upstreams.get(&d.id).cloned().ok_or_else(|| {
                    ApiError::internal(format!("no upstream for deployment {}", d.id))
                })?;
                let probe = Arc::new(UpstreamProbe(upstream.clone()));
                replicas.push(Replica {
                    deployment: d.clone(),
                    upstream,
                    slots: Arc::new(Semaphore::new(d.max_parallel_requests)),
                    breaker: Breaker::new(
                        d.clone(),
                        outage_threshold,
                        probe,
                        clock.clone(),
                        resumed.clone(),
                    ),
                });
            }
            let sum = replicas
                .iter()
                .map(|r| r.deployment.max_parallel_requests)
                .sum();
            let group = Group {
                total: Arc::new(Semaphore::new(sum)),
                replicas,
                next: AtomicUsize::new(0),
                resumed,
            };
            groups.insert(name.clone(), Arc::new(group));
        }
        Ok(Limits { groups })
    }

    /// Waits for a free slot on some replica of `model_name` that is not
    /// paused, preferring replicas in turn so load spreads evenly; while
    /// every replica is paused, waits for one to resume. `None` if the model
    /// is gone from the config.
    pub async fn acquire(&self, model_name: &str) -> Option<Slot> {
        self.groups.get(model_name)?.clone().acquire().await
    }

    /// The deployments paused by a confirmed outage, by id.
    pub fn paused(&self) -> Vec<PausedDeployment> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| &g.replicas)
            .filter_map(|r| {
                let since = r.breaker.down_since()?;
                Some(PausedDeployment {
                    id: r.deployment.id.clone(),
                    since,
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Upstream slots taken per deployment id: the lines in flight there.
    pub fn in_flight(&self) -> Vec<(String, usize)> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| &g.replicas)
            .map(|r| {
                let max = r.deployment.max_parallel_requests;
                let taken = max.saturating_sub(r.slots.available_permits());
                (r.deployment.id.clone(), taken)
            })
            .collect();
        out.sort();
        out
    }
}

impl Group {
    async fn acquire(self: Arc<Self>) -> Option<Slot> {
        if self.replicas.is_empty() {
            return None;
        }
        let total = self.total.clone().acquire_owned().await.ok()?;
        loop {
            // Registered before looking, so a resume in between is not missed.
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            let up = self.up_in_turn();
            for r in &up {
                if let Ok(permit) = r.slots.clone().try_acquire_owned() {
                    return Some(self.slot(r, total, permit));
                }
            }
            if up.is_empty() {
                resumed.await;
                continue;
            }
            // Every replica that is up is full: a paused replica's share of
            // `total` let us through. Wait for the first free slot.
            let free = futures::future::select_all(
                up.iter().map(|r| Box::pin(r.slots.clone().acquire_owned())),
            );
            tokio::select! {
                () = &mut resumed => {}
                (permit, i, _) = free => {
                    let r = up[i];
                    // It may have paused while we waited for it.
                    if let (Ok(permit), true) = (permit, r.breaker.dispatchable()) {
                        return Some(self.slot(r, total, permit));
                    }
                }
            }
        }
    }

    /// The replicas that dispatch, starting with the next one in turn.
    fn up_in_turn(&self) -> Vec<&Replica> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .filter(|r| r.breaker.dispatchable())
            .collect()
    }

    fn slot(
        self: &Arc<Self>,
        r: &Replica,
        total: OwnedSemaphorePermit,
        permit: OwnedSemaphorePermit,
    ) -> Slot {
        Slot {
            deployment: r.deployment.clone(),
            upstream: r.upstream.clone(),
            breaker: r.breaker.clone(),
            group: self.clone(),
            _group: total,
            _replica: permit,
        }
    }
}
