//! Concurrency towards upstreams: at most `max_parallel_requests` per
//! deployment, shared by every batch, spread over a model's replicas.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use batchgate_config::Router;
use batchgate_core::Deployment;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A slot on one replica; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    pub deployment: Arc<Deployment>,
    _group: OwnedSemaphorePermit,
    _replica: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Group {
    /// Sum of the replicas' limits: holding one of these guarantees that
    /// some replica has a free slot.
    total: Arc<Semaphore>,
    replicas: Vec<(Arc<Deployment>, Arc<Semaphore>)>,
    next: AtomicUsize,
}

/// Semaphores for every model group of the router.
#[derive(Debug, Default)]
pub struct Limits {
    groups: HashMap<String, Group>,
}

impl Limits {
    pub fn new(router: &Router) -> Limits {
        let mut groups = HashMap::new();
        for name in router.model_names() {
            let replicas: Vec<_> = router
                .group(name)
                .unwrap_or_default()
                .iter()
                .map(|d| (d.clone(), Arc::new(Semaphore::new(d.max_parallel_requests))))
                .collect();
            let sum = replicas.iter().map(|(d, _)| d.max_parallel_requests).sum();
            groups.insert(
                name.clone(),
                Group {
                    total: Arc::new(Semaphore::new(sum)),
                    replicas,
                    next: AtomicUsize::new(0),
                },
            );
        }
        Limits { groups }
    }

    /// Waits for a free slot on some replica of `model_name`, preferring
    /// replicas in turn so load spreads evenly. `None` if the model is gone
    /// from the config.
    pub async fn acquire(&self, model_name: &str) -> Option<Slot> {
        let group = self.groups.get(model_name)?;
        let total = group.total.clone().acquire_owned().await.ok()?;
        let n = group.replicas.len();
        if n == 0 {
            return None;
        }
        let start = group.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let (deployment, sem) = &group.replicas[(start + i) % n];
            if let Ok(permit) = sem.clone().try_acquire_owned() {
                return Some(Slot {
                    deployment: deployment.clone(),
                    _group: total,
                    _replica: permit,
                });
            }
        }
        // Unreachable while the invariant holds; wait on the first replica
        // rather than fail the line.
        let (deployment, sem) = group.replicas.get(start % n)?;
        let permit = sem.clone().acquire_owned().await.ok()?;
        Some(Slot {
            deployment: deployment.clone(),
            _group: total,
            _replica: permit,
        })
    }
}
