//! Shared server state: configuration, counters, fault RNG and fault choice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::{header, HeaderMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{Faults, MockConfig};
use crate::scheduler::Scheduler;
use crate::stats::MockStats;

/// What to do with one inference request, as decided by the fault injector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer normally.
    None,
    /// Close the connection without an HTTP response.
    Drop,
    /// Never answer.
    Hang,
    /// Answer 500.
    Fail,
    /// Answer 429 with this `Retry-After`.
    RateLimit(u64),
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: Vec<String>,
    api_key: Option<String>,
    seed: Option<u64>,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    stats: Mutex<MockStats>,
    in_flight: AtomicU64,
    /// Who runs and who waits.
    pub(crate) scheduler: Arc<Scheduler>,
}

/// Locks a mutex, recovering the data if a previous holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    }
}

impl AppState {
    pub(crate) fn new(cfg: MockConfig) -> Self {
        let scheduler = Scheduler::new(cfg.capacity, cfg.scheduling, cfg.latency, cfg.slowdown);
        Self {
            models: cfg.models,
            api_key: cfg.api_key,
            seed: cfg.seed,
            faults: Mutex::new(cfg.faults.sanitized()),
            rng: Mutex::new(new_rng(cfg.seed)),
            stats: Mutex::new(MockStats::default()),
            in_flight: AtomicU64::new(0),
            scheduler: Arc::new(scheduler),
        }
    }

    /// True when no API key is configured or the request carries
    /// `Authorization: Bearer <key>`.
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.api_key else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| token == key)
    }

    /// Runs `f` with the counters locked.
    pub(crate) fn with_stats<R>(&self, f: impl FnOnce(&mut MockStats) -> R) -> R {
        f(&mut lock(&self.stats))
    }

    pub(crate) fn stats(&self) -> MockStats {
        lock(&self.stats).clone()
    }

    /// Zeroes the counters (and so the `fail_first_n` attempt counts),
    /// starts a new load window, and re-seeds the fault RNG when a seed was
    /// configured.
    pub(crate) fn reset(&self) {
        *lock(&self.stats) = MockStats::default();
        self.scheduler.reset();
        if self.seed.is_some() {
            *lock(&self.rng) = new_rng(self.seed);
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults.sanitized();
    }

    /// Chooses the fate of a request that is the `attempt`-th (1-based) with
    /// its body; see [`Faults`] for the rules.
    pub(crate) fn decide(&self, attempt: u64) -> Fault {
        let f = self.faults();
        if attempt <= u64::from(f.fail_first_n) {
            return Fault::Fail;
        }
        if f.no_random_faults() {
            return Fault::None;
        }
        let u: f64 = lock(&self.rng).gen();
        let mut edge = f.drop_rate;
        if u < edge {
            return Fault::Drop;
        }
        edge += f.hang_rate;
        if u < edge {
            return Fault::Hang;
        }
        edge += f.fail_rate;
        if u < edge {
            return Fault::Fail;
        }
        edge += f.rate_limit_rate;
        if u < edge {
            return Fault::RateLimit(f.retry_after_secs);
        }
        Fault::None
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as running until the returned guard is dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}

/// Decrements the running-requests gauge on drop.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(faults: Faults, seed: u64) -> AppState {
        AppState::new(MockConfig {
            faults,
            seed: Some(seed),
            ..MockConfig::default()
        })
    }

    #[test]
    fn fail_first_n_precedes_random_faults() {
        let s = state(
            Faults {
                fail_first_n: 2,
                ..Faults::default()
            },
            1,
        );
        assert_eq!(s.decide(1), Fault::Fail);
        assert_eq!(s.decide(2), Fault::Fail);
        assert_eq!(s.decide(3), Fault::None);
    }

    #[test]
    fn rates_are_roughly_honoured_and_seeded() {
        let faults = Faults {
            fail_rate: 0.3,
            rate_limit_rate: 0.2,
            ..Faults::default()
        };
        let a = state(faults.clone(), 7);
        let b = state(faults, 7);
        let seq_a: Vec<Fault> = (0..1000).map(|_| a.decide(1)).collect();
        let seq_b: Vec<Fault> = (0..1000).map(|_| b.decide(1)).collect();
        assert_eq!(seq_a, seq_b);
        let fails = seq_a.iter().filter(|f| **f == Fault::Fail).count();
        let limits = seq_a
            .iter()
            .filter(|f| matches!(f, Fault::RateLimit(1)))
            .count();
        assert!((200..400).contains(&fails), "fails = {fails}");
        assert!((100..300).contains(&limits), "limits = {limits}");
    }

    #[test]
    fn reset_reseeds() {
        let s = state(
            Faults {
                fail_rate: 0.5,
                ..Faults::default()
            },
            3,
        );
        let first: Vec<Fault> = (0..50).map(|_| s.decide(1)).collect();
        s.reset();
        let again: Vec<Fault> = (0..50).map(|_| s.decide(1)).collect();
        assert_eq!(first, again);
    }
}
