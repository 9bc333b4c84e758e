//! Outage detection per replica: a replica that stops answering is paused
//! as a whole instead of letting every line burn its attempts on it.
//!
//! Attempts report to their replica's [`Breaker`]: an HTTP answer below 500
//! means the replica is up; no answer (refused, reset, timeout) or a 5xx is
//! an *outage-type* failure. After `threshold` of those in a row, with no
//! answer in between, dispatch to the replica stops (it is "checking") and
//! one probe task asks its [`Upstream`] whether it is healthy at once, then
//! with back-off. The
//! first failed probe confirms the outage (the replica is "down", logged
//! and exported); the first answer resumes dispatch.
//!
//! Failures are numbered by *streak* (the run of outage-type failures
//! between two answers): a line's outage-type failures in a streak that a
//! probe confirmed as an outage are given back to it. A replica whose
//! health check answers while every request fails is not in an outage: its
//! lines spend their attempts and fail as before.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use batchgate_core::{Deployment, Upstream};
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::Clock;

/// First probe delay after the immediate one; doubles up to [`PROBE_CAP`].
const PROBE_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between two probes, i.e. how late a resume may be noticed.
const PROBE_CAP: Duration = Duration::from_secs(5);

/// Asks a replica whether it answers at all.
#[async_trait]
pub trait Probe: Send + Sync + fmt::Debug {
    async fn is_up(&self, deployment: &Deployment) -> bool;
}

/// Asks the replica's [`Upstream`] itself.
#[derive(Debug, Clone)]
pub struct UpstreamProbe(pub Arc<dyn Upstream>);

#[async_trait]
impl Probe for UpstreamProbe {
    async fn is_up(&self, _: &Deployment) -> bool {
        self.0.health().await.is_ok()
    }
}

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Dispatching.
    Up,
    /// Paused; the first probe has not answered yet.
    Checking,
    /// Paused; a probe confirmed it does not answer.
    Down,
}

#[derive(Debug, Clone)]
struct State {
    phase: Phase,
    /// Outage-type failures since the last answer.
    consecutive: u32,
    /// The current failure streak; a new one starts after an answer and
    /// after every resume.
    streak: u64,
    /// The streak of the last confirmed outage.
    outage: Option<u64>,
    /// When dispatch paused: for the resume log and for reports.
    since: Option<(Instant, i64)>,
}

/// What a line waiting on a paused replica learns once the first probe
/// has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the replica dispatches again.
    pub up: bool,
    /// The streak of the last confirmed outage.
    pub outage: Option<u64>,
}

/// The outage state of one replica, shared by every batch.
pub struct Breaker {
    deployment: Arc<Deployment>,
    threshold: u32,
    state: watch::Sender<State>,
    probe: Arc<dyn Probe>,
    clock: Clock,
    /// The group's: woken on every resume so waiting acquirers look again.
    resumed: Arc<Notify>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("deployment", &self.deployment.id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub fn new(
        deployment: Arc<Deployment>,
        threshold: u32,
        probe: Arc<dyn Probe>,
        clock: Clock,
        resumed: Arc<Notify>,
    ) -> Arc<Breaker> {
        // Exported from the start so dashboards see 0, not "no data".
        metrics::gauge!("batchgate_deployment_paused", "deployment" => deployment.id.clone())
            .set(0.0);
        let state = State {
            phase: Phase::Up,
            consecutive: 0,
            streak: 0,
            outage: None,
            since: None,
        };
        Arc::new(Breaker {
            deployment,
            threshold: threshold.max(1),
            state: watch::channel(state).0,
            probe,
            clock,
            resumed,
        })
    }

    pub fn phase(&self) -> Phase {
        self.state.borrow().phase
    }

    /// Whether lines may be sent to this replica now.
    pub fn dispatchable(&self) -> bool {
        self.phase() == Phase::Up
    }

    /// Unix seconds since which dispatch has been paused by a confirmed
    /// outage; `None` while up or still checking.
    pub fn down_since(&self) -> Option<i64> {
        let s = self.state.borrow();
        match s.phase {
            Phase::Down => s.since.map(|(_, unix)| unix),
            Phase::Up | Phase::Checking => None,
        }
    }

    /// The streak of the last confirmed outage.
    pub fn last_outage(&self) -> Option<u64> {
        self.state.borrow().outage
    }

    /// The replica gave an HTTP answer below 500: it is up. While paused
    /// only the probe resumes, so that one probe owns each pause.
    pub fn answered(&self) {
        self.state.send_if_modified(|s| {
            if s.phase != Phase::Up || s.consecutive == 0 {
                return false;
            }
            s.consecutive = 0;
            s.streak += 1;
            true
        });
    }

    /// An outage-type failure; returns its streak. The `threshold`-th in a
    /// row pauses the replica.
    pub fn failed(self: &Arc<Self>) -> u64 {
        let mut tripped = false;
        let mut streak = 0;
        self.state.send_if_modified(|s| {
            streak = s.streak;
            if s.phase != Phase::Up {
                return false;
            }
            s.consecutive += 1;
            tripped = s.consecutive >= self.threshold;
            if tripped {
                self.pause(s);
            }
            tripped
        });
        if tripped {
            self.spawn_probe();
        }
        streak
    }

    /// A line is about to fail for good on an outage-type failure of
    /// `streak`: unless the replica answered since, pause it and let the
    /// probe say whether this is an outage (then the line is refunded).
    pub fn suspect(self: &Arc<Self>, streak: u64) {
        let paused = self.state.send_if_modified(|s| {
            if s.phase != Phase::Up || s.streak != streak {
                return false;
            }
            self.pause(s);
            true
        });
        if paused {
            self.spawn_probe();
        }
    }

    /// Waits while the first probe of a pause is pending.
    pub async fn verdict(&self) -> Verdict {
        let mut rx = self.state.subscribe();
        // The sender lives in `self`: the channel cannot close here.
        let s = match rx.wait_for(|s| s.phase != Phase::Checking).await {
            Ok(s) => s.clone(),
            Err(_) => self.state.borrow().clone(),
        };
        Verdict {
            up: s.phase == Phase::Up,
            outage: s.outage,
        }
    }

    fn pause(&self, s: &mut State) {
        s.phase = Phase::Checking;
        s.since = Some((Instant::now(), (self.clock)()));
    }

    /// One probe task per pause: only it leaves the pause, so a second one
    /// cannot start before it has finished.
    fn spawn_probe(self: &Arc<Self>) {
        tokio::spawn(probe_until_up(Arc::downgrade(self)));
    }

    /// A probe failed.
    fn confirm_down(&self) {
        let confirmed = self.state.send_if_modified(|s| {
            if s.phase != Phase::Checking {
                return false;
            }
            s.phase = Phase::Down;
            s.outage = Some(s.streak);
            true
        });
        if confirmed {
            let d = &self.deployment;
            tracing::warn!(deployment = %d.id, api_base = %d.api_base, "upstream unreachable; dispatch to this deployment paused until it answers again");
            metrics::gauge!("batchgate_deployment_paused", "deployment" => d.id.clone()).set(1.0);
        }
    }

    /// A probe was answered.
    fn resume(&self) {
        let mut before = None;
        self.state.send_modify(|s| {
            before = Some((s.phase, s.since.take()));
            s.phase = Phase::Up;
            s.consecutive = 0;
            s.streak += 1;
        });
        let d = &self.deployment;
        match before {
            Some((Phase::Down, since)) => {
                let paused_for = since.map(|(t, _)| t.elapsed()).unwrap_or_default();
                tracing::info!(deployment = %d.id, ?paused_for, "upstream answers again; dispatch resumed");
                metrics::gauge!("batchgate_deployment_paused", "deployment" => d.id.clone())
                    .set(0.0);
            }
            _ => tracing::debug!(deployment = %d.id, "upstream answers; no outage"),
        }
        self.resumed.notify_waiters();
    }
}

/// Probes at once, then after 0.5 s, 1 s, 2 s, … up to every 5 s (each
/// jittered 50–100% so replicas of a fleet that failed together are not
/// probed in lockstep), until the replica answers. Ends early if the
/// breaker is gone (the engine was dropped).
async fn probe_until_up(breaker: Weak<Breaker>) {
    let mut delay = PROBE_FIRST;
    loop {
        let Some(b) = breaker.upgrade() else {
            return;
        };
        if b.probe.is_up(&b.deployment).await {
            b.resume();
            return;
        }
        b.confirm_down();
        drop(b);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        tokio::time::sleep(delay.mul_f64(jitter)).await;
        delay = delay.saturating_mul(2).min(PROBE_CAP);
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
pub(super) mod tests;
