//! Concurrency towards upstreams: per deployment, the limit its
//! [`Pacer`] finds (adaptive, up to `max_parallel_requests`) or
//! `max_parallel_requests` itself, shared by every batch, spread over those
//! of a model's replicas that are not paused by an outage (see
//! [`super::breaker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use batchgate_config::Router;
use batchgate_core::{ApiError, Deployment, Upstream};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

use super::adaptive::{Concurrency, Pacer, TICK};
use super::breaker::{Breaker, UpstreamProbe};
use super::fleet;
use super::gate::{Gate, Pass};
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
    /// The adaptive limit of `deployment`, for the line's attempts to
    /// report their latency to.
    pub pacer: Arc<Pacer>,
    group: Arc<Group>,
    _group: Pass,
    _replica: Pass,
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
    slots: Arc<Gate>,
    breaker: Arc<Breaker>,
    pacer: Arc<Pacer>,
}

#[derive(Debug)]
struct Group {
    /// Sum of the replicas' limits: while none is paused, holding one of
    /// these guarantees that some replica has a free slot. It also keeps
    /// waiters in order (the gate is fair).
    total: Arc<Gate>,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    /// Notified by the replicas' breakers when one resumes.
    resumed: Arc<Notify>,
    /// Acquirers waiting for a slot.
    waiting: AtomicUsize,
    /// Whether the task adapting the limits runs (started by the first
    /// acquire: it needs a runtime, which building the engine does not).
    adapting: AtomicBool,
    /// Whether a slot was asked for since the last fleet heartbeat.
    asked: AtomicBool,
    /// Whether this instance may send to the group: always alone; on a
    /// shared store once the fleet has made room for it (see
    /// [`super::fleet`]). Closed, its slots have size 0.
    open: AtomicBool,
    /// Wakes the fleet heartbeat when work arrives for a closed group.
    knock: Arc<Notify>,
    sizing: Mutex<()>,
}

/// Slots (sized by each replica's [`Pacer`]) and outage breakers for every
/// model group of the router.
#[derive(Debug, Default)]
pub struct Limits {
    groups: HashMap<String, Arc<Group>>,
    /// Notified when work arrives for a closed group.
    knock: Arc<Notify>,
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
        let knock = Arc::new(Notify::new());
        for name in router.model_names() {
            let resumed = Arc::new(Notify::new());
            let mut replicas = Vec::new();
            for d in router.group(name).unwrap_or_default() {
                let upstream = upstreams.get(&d.id).cloned().ok_or_else(|| {
                    ApiError::internal(format!("no upstream for deployment {}", d.id))
                })?;
                let probe = Arc::new(UpstreamProbe(upstream.clone()));
                let pacer = Pacer::new(d.clone(), upstream.clone());
                replicas.push(Replica {
                    deployment: d.clone(),
                    slots: Gate::new(pacer.limit()),
                    pacer,
                    upstream,
                    breaker: Breaker::new(
                        d.clone(),
                        outage_threshold,
                        probe,
                        clock.clone(),
                        resumed.clone(),
                    ),
                });
            }
            let sum = replicas.iter().map(|r| r.slots.size()).sum();
            let group = Group {
                total: Gate::new(sum),
                replicas,
                next: AtomicUsize::new(0),
                resumed,
                waiting: AtomicUsize::new(0),
                adapting: AtomicBool::new(false),
                asked: AtomicBool::new(false),
                open: AtomicBool::new(true),
                knock: knock.clone(),
                sizing: Mutex::new(()),
            };
            groups.insert(name.clone(), Arc::new(group));
        }
        Ok(Limits { groups, knock })
    }

    /// For a store other instances share: every group starts closed, and
    /// the fleet heartbeat opens it with this instance's share.
    pub fn for_fleet(self) -> Limits {
        for g in self.groups.values() {
            g.close();
        }
        self
    }

    /// Notified when work arrives for a closed group.
    pub fn knock(&self) -> &Notify {
        &self.knock
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

    /// The model groups with work since the last call: a slot asked for,
    /// held or waited for. What this instance heartbeats to the fleet.
    pub fn busy_models(&self) -> Vec<String> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .filter(|(_, g)| g.asked.swap(false, Ordering::Relaxed) | !g.idle())
            .map(|(name, _)| name.clone())
            .collect();
        out.sort();
        out
    }

    /// Opens `model`'s group (if closed) with this instance's share of
    /// each of its deployments' `max_parallel_requests`: an even split
    /// between `members` and `me`.
    pub fn open(&self, model: &str, me: &str, members: &[&str]) {
        let Some(g) = self.groups.get(model) else {
            return;
        };
        let _sizing = g.sizing();
        for r in &g.replicas {
            let share = fleet::share_of(r.deployment.max_parallel_requests, members, me);
            r.slots.resize(r.pacer.set_share(share));
        }
        g.total
            .resize(g.replicas.iter().map(|r| r.slots.size()).sum());
        g.open.store(true, Ordering::Relaxed);
    }

    /// Closes `model`'s group: no new request is sent to it until it is
    /// opened again (those in flight finish).
    pub fn close(&self, model: &str) {
        if let Some(g) = self.groups.get(model) {
            g.close();
        }
    }

    /// The concurrency of every deployment, by id.
    pub fn concurrency(&self) -> Vec<(String, Concurrency)> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| &g.replicas)
            .map(|r| (r.deployment.id.clone(), r.pacer.concurrency()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Upstream slots taken per deployment id: the lines in flight there.
    pub fn in_flight(&self) -> Vec<(String, usize)> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| &g.replicas)
            .map(|r| (r.deployment.id.clone(), r.slots.in_use()))
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
        if !self.adapting.swap(true, Ordering::Relaxed) {
            tokio::spawn(adapt(Arc::downgrade(&self)));
        }
        self.asked.store(true, Ordering::Relaxed);
        if !self.open.load(Ordering::Relaxed) {
            self.knock.notify_one();
        }
        let _waiting = Waiting::count(&self.waiting);
        self.clone().wait_for_slot().await
    }

    async fn wait_for_slot(self: Arc<Self>) -> Option<Slot> {
        let total = self.total.clone().acquire().await?;
        loop {
            // Registered before looking, so a resume in between is not missed.
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            let up = self.up_in_turn();
            for r in &up {
                if let Some(pass) = r.slots.try_acquire() {
                    return Some(self.slot(r, total, pass));
                }
            }
            if up.is_empty() {
                resumed.await;
                continue;
            }
            // Every replica that is up is full: a paused replica's share of
            // `total` let us through. Wait for the first free slot.
            let free =
                futures::future::select_all(up.iter().map(|r| Box::pin(r.slots.clone().acquire())));
            tokio::select! {
                () = &mut resumed => {}
                (pass, i, _) = free => {
                    let r = up[i];
                    // It may have paused while we waited for it.
                    if let (Some(pass), true) = (pass, r.breaker.dispatchable()) {
                        return Some(self.slot(r, total, pass));
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

    fn slot(self: &Arc<Self>, r: &Replica, total: Pass, pass: Pass) -> Slot {
        Slot {
            deployment: r.deployment.clone(),
            upstream: r.upstream.clone(),
            breaker: r.breaker.clone(),
            pacer: r.pacer.clone(),
            group: self.clone(),
            _group: total,
            _replica: pass,
        }
    }

    fn close(&self) {
        let _sizing = self.sizing();
        self.open.store(false, Ordering::Relaxed);
        for r in &self.replicas {
            r.slots.resize(0);
        }
        self.total.resize(0);
    }

    fn idle(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) == 0 && self.total.in_use() == 0
    }

    /// One decision for every replica that dispatches (a paused one keeps
    /// its limit: its server says nothing meanwhile), then the group's
    /// total follows the sum.
    async fn tick(&self, now: std::time::Duration) {
        if !self.open.load(Ordering::Relaxed) {
            // Sized by the fleet once it opens.
            return;
        }
        let group_full = self.total.take_saturated();
        let ticks = self.replicas.iter().map(|r| async move {
            let saturated = r.slots.take_saturated() || group_full;
            if r.breaker.dispatchable() {
                Some(r.pacer.tick(now, saturated).await)
            } else {
                None
            }
        });
        let limits = futures::future::join_all(ticks).await;
        let _sizing = self.sizing();
        if !self.open.load(Ordering::Relaxed) {
            // Closed by the fleet while the loads were read.
            return;
        }
        for (r, limit) in self.replicas.iter().zip(limits) {
            if let Some(limit) = limit {
                r.slots.resize(limit);
            }
        }
        self.total
            .resize(self.replicas.iter().map(|r| r.slots.size()).sum());
    }

    /// Held while slots are resized, so a tick does not re-size a group
    /// the fleet closes meanwhile.
    fn sizing(&self) -> MutexGuard<'_, ()> {
        self.sizing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts an acquirer as waiting until dropped (also when its wait is
/// abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(n: &'a AtomicUsize) -> Waiting<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Adapts a group's limits every [`TICK`] while it has work; ends once the
/// engine (and so the group) is gone.
async fn adapt(group: Weak<Group>) {
    let origin = Instant::now();
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(g) = group.upgrade() else {
            return;
        };
        if g.idle() {
            g.replicas.iter().for_each(|r| r.pacer.idle());
            continue;
        }
        g.tick(origin.elapsed()).await;
    }
}
