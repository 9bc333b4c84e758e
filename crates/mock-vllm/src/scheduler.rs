//! A model of vLLM's continuous batching: at most `capacity` sequences run
//! at once, the rest wait — in arrival order (`fcfs`), or by the request's
//! `priority` then arrival (`priority`, lower first) — and a finished
//! sequence's seat goes straight to the first waiter, as vLLM's scheduler
//! fills a freed slot at its next step. A request runs for the configured
//! latency, stretched mildly by how full the batch is when it starts (decode
//! steps get slower as the batch grows). Time-averaged queue and
//! throughput figures are kept so benchmarks can read what the server saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How waiting requests are ordered (vLLM's `--scheduling-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingPolicy {
    /// First come, first served (vLLM's default). A request with a
    /// non-zero `priority` is refused with 400, as vLLM does.
    #[default]
    Fcfs,
    /// Lower `priority` first, arrival order among equals. Running
    /// requests are never preempted.
    Priority,
}

/// What the server saw since start or the last reset (`GET /mock/load`).
///
/// The averages are over the *load window*: from the first request's
/// arrival to the last one's completion, so idle time before and after a
/// run does not dilute them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadStats {
    /// `--capacity`, if any.
    pub capacity: Option<usize>,
    /// Requests running now.
    pub running: usize,
    /// Requests waiting now.
    pub waiting: usize,
    /// Requests that finished running in the window.
    pub completed: u64,
    /// Seconds from the first arrival to the last completion.
    pub window_seconds: f64,
    /// Time-averaged number of running requests over the window.
    pub avg_running: f64,
    /// Time-averaged number of waiting requests over the window.
    pub avg_waiting: f64,
    /// Most requests waiting at once.
    pub max_waiting: usize,
    /// `completed / window_seconds`.
    pub throughput: f64,
    /// The most this server can complete per second: `capacity` requests,
    /// each taking the latency at a full batch. `None` without a capacity.
    pub ideal_throughput: Option<f64>,
}

/// The batch model shared by every request.
#[derive(Debug)]
pub(crate) struct Scheduler {
    capacity: Option<usize>,
    policy: SchedulingPolicy,
    latency: Duration,
    slowdown: f64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    running: usize,
    /// Keyed by (priority, arrival number): the first entry runs next.
    waiting: BTreeMap<(i64, u64), oneshot::Sender<()>>,
    arrivals: u64,
    acc: Integrals,
}

/// Request-seconds accumulated since the last reset.
#[derive(Debug, Default)]
struct Integrals {
    last: Option<Instant>,
    first_arrival: Option<Instant>,
    last_done: Option<Instant>,
    running: f64,
    waiting: f64,
    completed: u64,
    max_waiting: usize,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Accounts for the time since the last change at the current counts.
    fn advance(&mut self, now: Instant) {
        if let Some(last) = self.acc.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.acc.running += self.running as f64 * dt;
            self.acc.waiting += self.waiting.len() as f64 * dt;
        }
        self.acc.last = Some(now);
    }
}

impl Scheduler {
    pub(crate) fn new(
        capacity: Option<usize>,
        policy: SchedulingPolicy,
        latency: Duration,
        slowdown: f64,
    ) -> Scheduler {
        let slowdown = if slowdown.is_finite() {
            slowdown.max(0.0)
        } else {
            0.0
        };
        Scheduler {
            capacity: capacity.map(|c| c.max(1)),
            policy,
            latency,
            slowdown,
            inner: Mutex::new(Inner {
                running: 0,
                waiting: BTreeMap::new(),
                arrivals: 0,
                acc: Integrals::default(),
            }),
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    pub(crate) fn policy(&self) -> SchedulingPolicy {
        self.policy
    }

    /// Waits for a seat (at once without a capacity) and returns it with
    /// how long the request runs. Dropping the future while it waits gives
    /// its place up; dropping the seat frees it for the next waiter.
    pub(crate) async fn admit(self: &Arc<Self>, priority: i64) -> (Seat, Duration) {
        let (key, rx) = {
            let mut g = lock(&self.inner);
            let now = Instant::now();
            g.advance(now);
            g.acc.first_arrival.get_or_insert(now);
            let free = self
                .capacity
                .is_none_or(|c| g.running < c && g.waiting.is_empty());
            if free {
                g.running += 1;
                let running = g.running;
                drop(g);
                return (self.seat(), self.run_time(running));
            }
            let order = match self.policy {
                SchedulingPolicy::Fcfs => 0,
                SchedulingPolicy::Priority => priority,
            };
            g.arrivals += 1;
            let key = (order, g.arrivals);
            let (tx, rx) = oneshot::channel();
            g.waiting.insert(key, tx);
            g.acc.max_waiting = g.acc.max_waiting.max(g.waiting.len());
            (key, rx)
        };
        let mut place = Place {
            sched: self.clone(),
            key,
            seated: false,
        };
        // The sender lives in the map until it is used: an error means the
        // scheduler is gone, and then nothing is counted any more anyway.
        let _ = rx.await;
        place.seated = true;
        let running = lock(&self.inner).running;
        (self.seat(), self.run_time(running))
    }

    fn seat(self: &Arc<Self>) -> Seat {
        Seat(self.clone())
    }

    /// The latency, stretched by how full the batch is.
    fn run_time(&self, running: usize) -> Duration {
        match self.capacity {
            Some(c) => self
                .latency
                .mul_f64(1.0 + self.slowdown * running.min(c) as f64 / c as f64),
            None => self.latency,
        }
    }

    /// Hands a freed seat to the first waiter still waiting, or frees it.
    fn release(&self) {
        let mut g = lock(&self.inner);
        let now = Instant::now();
        g.advance(now);
        g.acc.completed += 1;
        g.acc.last_done = Some(now);
        while let Some((_, tx)) = g.waiting.pop_first() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        g.running = g.running.saturating_sub(1);
    }

    /// A waiter gave up: drop its place, or, if it was handed a seat it
    /// never took, pass that on.
    fn leave(&self, key: (i64, u64)) {
        let mut g = lock(&self.inner);
        g.advance(Instant::now());
        if g.waiting.remove(&key).is_some() {
            return;
        }
        drop(g);
        // Not in the map: a seat was sent to it. The release counts it as
        // completed, which it was not; take that back.
        self.release();
        let mut g = lock(&self.inner);
        g.acc.completed = g.acc.completed.saturating_sub(1);
    }

    pub(crate) fn load(&self) -> LoadStats {
        let mut g = lock(&self.inner);
        g.advance(Instant::now());
        let window = match (g.acc.first_arrival, g.acc.last_done) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let per = |x: f64| if window > 0.0 { x / window } else { 0.0 };
        LoadStats {
            capacity: self.capacity,
            running: g.running,
            waiting: g.waiting.len(),
            completed: g.acc.completed,
            window_seconds: window,
            avg_running: per(g.acc.running),
            avg_waiting: per(g.acc.waiting),
            max_waiting: g.acc.max_waiting,
            throughput: per(g.acc.completed as f64),
            ideal_throughput: self.ideal_throughput(),
        }
    }

    /// `capacity / (latency × (1 + slowdown))`.
    fn ideal_throughput(&self) -> Option<f64> {
        let c = self.capacity?;
        let full = self.run_time(c).as_secs_f64();
        (full > 0.0).then(|| c as f64 / full)
    }

    /// (running, waiting) now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let g = lock(&self.inner);
        (g.running, g.waiting.len())
    }

    /// The fraction of the KV cache in use: every sequence is taken to use
    /// the same share, so a full batch is a full cache.
    pub(crate) fn kv_cache_usage(&self) -> f64 {
        match self.capacity {
            Some(c) => lock(&self.inner).running.min(c) as f64 / c as f64,
            None => 0.0,
        }
    }

    /// Starts a new load window; requests already running or waiting stay.
    pub(crate) fn reset(&self) {
        let mut g = lock(&self.inner);
        g.acc = Integrals {
            last: Some(Instant::now()),
            ..Integrals::default()
        };
    }
}

/// A running request's seat; dropping it lets the next one run.
#[derive(Debug)]
pub(crate) struct Seat(Arc<Scheduler>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiting request's place in the queue.
struct Place {
    sched: Arc<Scheduler>,
    key: (i64, u64),
    seated: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.seated {
            self.sched.leave(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(capacity: usize, policy: SchedulingPolicy) -> Arc<Scheduler> {
        Arc::new(Scheduler::new(
            Some(capacity),
            policy,
            Duration::from_millis(100),
            0.2,
        ))
    }

    /// Admits `priorities` behind one running request on a one-seat
    /// server, then frees the seat: the order they ran in.
    async fn run_order(policy: SchedulingPolicy, priorities: &[i64]) -> Vec<i64> {
        let s = sched(1, policy);
        let (first, _) = s.admit(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for &p in priorities {
            let (s, order) = (s.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let (seat, _) = s.admit(p).await;
                order.lock().unwrap_or_else(PoisonError::into_inner).push(p);
                drop(seat);
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(s.counts(), (1, priorities.len()));
        drop(first);
        for w in waiters {
            let _ = w.await;
        }
        assert_eq!(s.counts(), (0, 0));
        let order = order.lock().unwrap_or_else(PoisonError::into_inner).clone();
        order
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_bounds_running_and_the_rest_wait() {
        let s = sched(2, SchedulingPolicy::Fcfs);
        let (a, _) = s.admit(0).await;
        let (_b, _) = s.admit(0).await;
        let s2 = s.clone();
        let third = tokio::spawn(async move { s2.admit(0).await });
        tokio::task::yield_now().await;
        assert_eq!(s.counts(), (2, 1));
        drop(a);
        let _seat = third.await;
        assert_eq!(s.counts(), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn fcfs_runs_in_arrival_order_whatever_the_priority() {
        assert_eq!(
            run_order(SchedulingPolicy::Fcfs, &[5, -1, 3, 5]).await,
            vec![5, -1, 3, 5]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn priority_policy_runs_lower_values_first() {
        assert_eq!(
            run_order(SchedulingPolicy::Priority, &[5, -1, 3, 5]).await,
            vec![-1, 3, 5, 5]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_no_hole() {
        let s = sched(1, SchedulingPolicy::Fcfs);
        let (seat, _) = s.admit(0).await;
        let s2 = s.clone();
        let gone = tokio::spawn(async move { s2.admit(0).await });
        tokio::task::yield_now().await;
        assert_eq!(s.counts(), (1, 1));
        gone.abort();
        let _ = gone.await;
        assert_eq!(s.counts(), (1, 0));
        drop(seat);
        assert_eq!(s.counts(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn run_time_grows_mildly_with_the_batch() {
        let s = sched(4, SchedulingPolicy::Fcfs);
        let (_a, alone) = s.admit(0).await;
        let (_b, _) = s.admit(0).await;
        let (_c, _) = s.admit(0).await;
        let (_d, full) = s.admit(0).await;
        assert_eq!(alone, Duration::from_millis(105));
        assert_eq!(full, Duration::from_millis(120));
        let ideal = s.load().ideal_throughput.unwrap_or_default();
        assert!((ideal - 4.0 / 0.12).abs() < 1e-9, "{ideal}");
    }

    #[tokio::test(start_paused = true)]
    async fn load_averages_are_over_the_window() {
        let s = sched(1, SchedulingPolicy::Fcfs);
        let (a, _) = s.admit(0).await;
        let s2 = s.clone();
        let waiter = tokio::spawn(async move {
            let (seat, _) = s2.admit(0).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(seat);
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
        let _ = waiter.await;
        // Idle time after the window does not count.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let load = s.load();
        assert_eq!(load.completed, 2);
        assert!((load.window_seconds - 2.0).abs() < 1e-6, "{load:?}");
        assert!((load.avg_waiting - 0.5).abs() < 1e-6, "{load:?}");
        assert!((load.avg_running - 1.0).abs() < 1e-6, "{load:?}");
        assert!((load.throughput - 1.0).abs() < 1e-6, "{load:?}");
        assert_eq!(load.max_waiting, 1);
    }
}
