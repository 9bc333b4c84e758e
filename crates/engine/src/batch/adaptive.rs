//! Adaptive concurrency per replica: a [`Controller`] fed with every
//! answer's latency and, four times a second while its model group has
//! work, with the server's load (where its [`Upstream`] reads one), and
//! exported as `batchgate_deployment_*` gauges. A deployment without
//! adaptive concurrency keeps its fixed limit but is measured the same way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use batchgate_concurrency::{Controller, Observation, Sample, Settings, Status};
use batchgate_core::{Deployment, ServerLoad, Upstream};
use tokio::time::Instant;

/// How often limits are decided, and loads read, while a group has work:
/// often enough to follow a server within seconds, rarely enough that a
/// `/metrics` scrape (tens of kB on vLLM) costs nothing.
pub const TICK: Duration = Duration::from_millis(250);
/// A load read slower than this is taken as none.
const LOAD_TIMEOUT: Duration = Duration::from_secs(1);

/// A deployment's concurrency as this instance sees it now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Concurrency {
    /// Requests this instance may have in flight to it now.
    pub limit: usize,
    /// This instance's share of `max_parallel_requests` (all of it alone).
    pub ceiling: usize,
    /// Whether the limit adapts (else it is the ceiling).
    pub adaptive: bool,
    /// Requests waiting at the server, read or estimated.
    pub queue_estimate: f64,
    /// Answers per second, smoothed over a few seconds.
    pub requests_per_second: f64,
}

/// One replica's limit and what feeds it.
#[derive(Debug)]
pub struct Pacer {
    deployment: Arc<Deployment>,
    upstream: Arc<dyn Upstream>,
    ctl: Mutex<Controller>,
    /// Requests on their way to or at the server now (a line waiting out a
    /// back-off holds a slot but is not here).
    sending: AtomicUsize,
}

impl Pacer {
    pub fn new(deployment: Arc<Deployment>, upstream: Arc<dyn Upstream>) -> Arc<Pacer> {
        let n = deployment.max_parallel_requests;
        let settings = if deployment.adaptive_concurrency {
            Settings::with_ceiling(n)
        } else {
            Settings {
                initial: n,
                min: n,
                max: n,
            }
        };
        let ctl = Controller::new(settings);
        let pacer = Pacer {
            deployment,
            upstream,
            sending: AtomicUsize::new(0),
            ctl: Mutex::new(ctl),
        };
        // Exported from the start so dashboards see the limit, not "no data".
        pacer.export(pacer.ctl().status());
        metrics::gauge!("batchgate_deployment_concurrency_ceiling", &pacer.labels()).set(n as f64);
        Arc::new(pacer)
    }

    fn ctl(&self) -> MutexGuard<'_, Controller> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn limit(&self) -> usize {
        self.ctl().limit()
    }

    /// The limit, its ceiling, and what the controller measures now.
    pub fn concurrency(&self) -> Concurrency {
        let ctl = self.ctl();
        let s = ctl.status();
        Concurrency {
            limit: s.limit,
            ceiling: ctl.settings().max,
            adaptive: self.deployment.adaptive_concurrency,
            queue_estimate: s.queue,
            requests_per_second: s.throughput,
        }
    }

    /// This instance's share of the deployment's `max_parallel_requests`
    /// (all of it alone): the ceiling of an adaptive limit, the limit
    /// itself of a fixed one. Returns the limit now.
    pub fn set_share(&self, share: usize) -> usize {
        let min = if self.deployment.adaptive_concurrency {
            1
        } else {
            share
        };
        let status = {
            let mut ctl = self.ctl();
            ctl.set_bounds(min, share);
            ctl.status()
        };
        metrics::gauge!("batchgate_deployment_concurrency_ceiling", &self.labels())
            .set(share as f64);
        self.export(status);
        status.limit
    }

    /// A request is being sent: call [`Sending::answered`] when the server
    /// has served it.
    pub fn start(self: &Arc<Self>) -> Sending {
        let concurrency = self.sending.fetch_add(1, Ordering::Relaxed) + 1;
        Sending {
            pacer: self.clone(),
            epoch: self.ctl().epoch(),
            concurrency,
            started: Instant::now(),
        }
    }

    /// Decides the limit: reads the server's load (adaptive deployments
    /// only), then ticks the controller. `saturated` says whether the
    /// limit was reached since the last tick.
    pub async fn tick(&self, now: Duration, saturated: bool) -> usize {
        let before = self.sending.load(Ordering::Relaxed);
        let load = if self.deployment.adaptive_concurrency {
            tokio::time::timeout(LOAD_TIMEOUT, self.upstream.load())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let obs = Observation {
            in_flight: before.max(self.sending.load(Ordering::Relaxed)),
            saturated,
            load: load.map(convert),
        };
        let status = {
            let mut ctl = self.ctl();
            ctl.tick(now, obs);
            ctl.status()
        };
        self.export(status);
        status.limit
    }

    /// The group has no work: nothing flows.
    pub fn idle(&self) {
        let labels = self.labels();
        metrics::gauge!("batchgate_deployment_requests_per_second", &labels).set(0.0);
        metrics::gauge!("batchgate_deployment_queue_estimate", &labels).set(0.0);
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("deployment", self.deployment.id.clone()),
            ("model", self.deployment.model_name.clone()),
        ]
    }

    fn export(&self, s: Status) {
        let labels = self.labels();
        metrics::gauge!("batchgate_deployment_concurrency_limit", &labels).set(s.limit as f64);
        metrics::gauge!("batchgate_deployment_queue_estimate", &labels).set(s.queue);
        metrics::gauge!("batchgate_deployment_requests_per_second", &labels).set(s.throughput);
    }
}

fn convert(l: ServerLoad) -> batchgate_concurrency::ServerLoad {
    batchgate_concurrency::ServerLoad {
        running: l.running,
        waiting: l.waiting,
        kv_cache_usage: l.kv_cache_usage,
    }
}

/// A request in flight to a replica.
#[derive(Debug)]
pub struct Sending {
    pacer: Arc<Pacer>,
    epoch: u64,
    concurrency: usize,
    started: Instant,
}

impl Sending {
    /// The server served it (answered 2xx): its latency is a sample.
    pub fn answered(self) {
        let sample = Sample {
            epoch: self.epoch,
            latency: self.started.elapsed(),
            concurrency: self.concurrency,
        };
        self.pacer.ctl().on_answer(sample);
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.pacer.sending.fetch_sub(1, Ordering::Relaxed);
    }
}
