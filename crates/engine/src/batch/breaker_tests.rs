//! The pause state machine, on tokio's paused clock with a scripted probe:
//! deterministic, and the back-off is checked in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use batchgate_core::{BatchApiMode, Deployment};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Breaker, Phase, Probe};

pub(crate) fn deployment(id: &str, api_base: &str) -> Arc<Deployment> {
    Arc::new(Deployment {
        id: id.into(),
        model_name: "m".into(),
        provider: "hosted_vllm".into(),
        served_model: "served".into(),
        api_base: api_base.into(),
        api_key: None,
        max_parallel_requests: 4,
        adaptive_concurrency: false,
        batch_priority: None,
        timeout: Duration::from_secs(30),
        batch_api: BatchApiMode::Gateway,
        endpoints: vec!["/v1/chat/completions".into()],
        extra_params: Default::default(),
        model_info: Default::default(),
    })
}

/// Answers from a script (then "up"), recording when it was asked and how
/// many probes ever overlapped.
#[derive(Debug, Default)]
struct Script {
    answers: Mutex<VecDeque<bool>>,
    calls: Mutex<Vec<Instant>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Script {
    fn new(answers: &[bool]) -> Arc<Script> {
        let s = Script::default();
        s.answers.lock().unwrap().extend(answers);
        Arc::new(s)
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Probe for Script {
    async fn is_up(&self, _: &Deployment) -> bool {
        self.calls.lock().unwrap().push(Instant::now());
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        // A probe takes a while, so overlapping probes would show.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.answers.lock().unwrap().pop_front().unwrap_or(true)
    }
}

fn breaker(threshold: u32, probe: Arc<Script>) -> (Arc<Breaker>, Arc<Notify>) {
    let resumed = Arc::new(Notify::new());
    let b = Breaker::new(
        deployment("d1", "http://127.0.0.1:1"),
        threshold,
        probe,
        Arc::new(|| 1_000),
        resumed.clone(),
    );
    (b, resumed)
}

/// Waits (in virtual time) until the breaker dispatches again.
async fn until_up(b: &Breaker, resumed: &Notify) {
    while !b.dispatchable() {
        let n = resumed.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if b.dispatchable() {
            break;
        }
        n.await;
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_outage_failures_pause_and_a_failed_probe_confirms() {
    let probe = Script::new(&[false]);
    let (b, resumed) = breaker(3, probe.clone());
    let first = b.failed();
    b.failed();
    assert!(b.dispatchable(), "two failures are below the threshold");
    assert_eq!(b.failed(), first, "one streak until an answer");
    assert_eq!(b.phase(), Phase::Checking);
    assert!(!b.dispatchable());
    assert_eq!(b.down_since(), None, "not reported before a probe fails");

    let v = b.verdict().await;
    assert!(!v.up);
    assert_eq!(v.outage, Some(first));
    assert_eq!(b.phase(), Phase::Down);
    assert_eq!(b.down_since(), Some(1_000));
    // Failures while paused belong to the paused streak.
    assert_eq!(b.failed(), first);

    until_up(&b, &resumed).await;
    assert_eq!(b.down_since(), None);
    assert_eq!(b.last_outage(), Some(first));
    assert_ne!(b.failed(), first, "a resume starts a new streak");
    assert_eq!(probe.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_between_failures_resets_the_count() {
    let probe = Script::new(&[]);
    let (b, _) = breaker(3, probe.clone());
    let s1 = b.failed();
    b.failed();
    b.answered();
    let s2 = b.failed();
    b.failed();
    assert_ne!(s1, s2);
    assert!(b.dispatchable());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(probe.calls().is_empty(), "no pause, no probe");
}

#[tokio::test(start_paused = true)]
async fn a_replica_whose_health_answers_is_not_in_an_outage() {
    let probe = Script::new(&[true]);
    let (b, _) = breaker(2, probe.clone());
    let streak = b.failed();
    b.failed();
    assert!(!b.dispatchable());
    let v = b.verdict().await;
    assert!(v.up, "resumed by the first probe");
    assert_eq!(v.outage, None, "so the failures are not refunded");
    assert_ne!(b.failed(), streak);
    assert_eq!(probe.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn probes_back_off_exponentially_and_one_at_a_time() {
    let down = [false; 7];
    let probe = Script::new(&down);
    let (b, resumed) = breaker(1, probe.clone());
    b.failed();
    // More failures while paused start no second probe.
    for _ in 0..20 {
        b.failed();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_up(&b, &resumed).await;
    let calls = probe.calls();
    assert_eq!(calls.len(), down.len() + 1);
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 1);
    // Each gap is the probe's own 100 ms plus a delay of 50–100% of
    // 0.5 s, 1 s, 2 s, 4 s, then 5 s (the cap).
    let nominal = [500, 1000, 2000, 4000, 5000, 5000, 5000];
    for (i, pair) in calls.windows(2).enumerate() {
        let delay = pair[1] - pair[0] - Duration::from_millis(100);
        let full = Duration::from_millis(nominal[i]);
        assert!(
            delay >= full / 2 && delay <= full,
            "gap {i}: {delay:?} for a nominal {full:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_line_about_to_fail_pauses_the_replica_unless_it_answered_since() {
    let probe = Script::new(&[false]);
    let (b, resumed) = breaker(100, probe.clone());
    let old = b.failed();
    b.answered();
    b.suspect(old);
    assert!(
        b.dispatchable(),
        "an answer since: that failure was the line's"
    );

    let streak = b.failed();
    b.suspect(streak);
    assert_eq!(b.phase(), Phase::Checking);
    let v = b.verdict().await;
    assert_eq!((v.up, v.outage), (false, Some(streak)));
    until_up(&b, &resumed).await;
    assert_eq!(probe.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_probe_stops_when_the_engine_is_gone() {
    let probe = Script::new(&[false; 100]);
    let (b, _) = breaker(1, probe.clone());
    b.failed();
    b.verdict().await;
    drop(b);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let n = probe.calls().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(probe.calls().len(), n);
}
