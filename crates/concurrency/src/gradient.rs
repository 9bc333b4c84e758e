//! The limit from latency alone: a hill-climb on the elasticity of latency
//! to concurrency (see the crate docs).

use crate::Observation;

/// Answers a window needs at least…
const MIN_SAMPLES: u64 = 8;
/// … and at least this share of the limit, so one slow or fast request
/// does not decide.
const SAMPLE_SHARE: u64 = 2;
/// A window with few answers is decided anyway after this many ticks (if
/// it has [`SPARSE_SAMPLES`]): slow traffic still gets a limit.
const MAX_WINDOW_TICKS: u32 = 40;
const SPARSE_SAMPLES: u64 = 3;
/// Elasticity from which the higher of two levels counts as queueing:
/// queueing makes latency grow as fast as concurrency (1), a fuller batch
/// much slower (a server whose requests take 20% longer in a full batch
/// shows under 0.2).
const QUEUEING: f64 = 0.5;
/// Two levels closer than this (in log of concurrency) are the same level.
const SAME_LEVEL: f64 = 0.02;
/// Relative step: doubling at first, never finer than 1/16.
const MAX_FACTOR: f64 = 1.0;
const MIN_FACTOR: f64 = 1.0 / 16.0;
/// Moves in one direction after which the step doubles.
const ACCELERATE_AFTER: u32 = 3;
/// The lowest latency seen relaxes upwards by this share per window, so a
/// server that got slower for good is not compared forever with its past.
const MIN_LATENCY_DRIFT: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

/// Mean latency at a mean concurrency.
#[derive(Debug, Clone, Copy)]
struct Level {
    concurrency: f64,
    latency: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Gradient {
    /// Answers to requests sent under the current limit.
    n: u64,
    latency_sum: f64,
    concurrency_sum: f64,
    ticks: u32,
    /// The last window measured.
    prev: Option<Level>,
    dir: Dir,
    factor: f64,
    same_dir: u32,
    min_latency: Option<f64>,
    queue: f64,
}

impl Default for Gradient {
    fn default() -> Self {
        Gradient {
            n: 0,
            latency_sum: 0.0,
            concurrency_sum: 0.0,
            ticks: 0,
            prev: None,
            dir: Dir::Up,
            factor: MAX_FACTOR,
            same_dir: 0,
            min_latency: None,
            queue: 0.0,
        }
    }
}

impl Gradient {
    pub(crate) fn record(&mut self, latency_secs: f64, concurrency: usize) {
        if latency_secs.is_finite() && latency_secs > 0.0 {
            self.n += 1;
            self.latency_sum += latency_secs;
            self.concurrency_sum += concurrency.max(1) as f64;
        }
    }

    /// Starts measuring afresh (the limit changed).
    pub(crate) fn new_window(&mut self) {
        self.n = 0;
        self.latency_sum = 0.0;
        self.concurrency_sum = 0.0;
        self.ticks = 0;
    }

    /// Forgets the levels measured, keeping a fine step: the limit was set
    /// by something else and is probably close.
    pub(crate) fn restart(&mut self) {
        self.new_window();
        self.prev = None;
        self.factor = MIN_FACTOR;
        self.same_dir = 0;
    }

    /// The next limit and the queue estimate.
    pub(crate) fn next(&mut self, limit: usize, obs: &Observation) -> (usize, f64) {
        self.ticks += 1;
        let need = MIN_SAMPLES.max(limit as u64 / SAMPLE_SHARE);
        let sparse_enough = self.ticks >= MAX_WINDOW_TICKS && self.n >= SPARSE_SAMPLES;
        if self.n < need && !sparse_enough {
            return (limit, self.queue);
        }
        let n = self.n as f64;
        let cur = Level {
            concurrency: self.concurrency_sum / n,
            latency: self.latency_sum / n,
        };
        self.note_latency(cur, obs.in_flight);
        let prev = self.prev.replace(cur);
        self.new_window();
        if !obs.saturated {
            // The limit is not what holds concurrency: nothing to learn
            // about it, and raising it would only let a later burst in.
            return (limit, self.queue);
        }
        let dir = match prev {
            None => Dir::Up,
            Some(p) => {
                let dw = (cur.concurrency / p.concurrency).ln();
                if dw.abs() < SAME_LEVEL {
                    self.dir
                } else {
                    let elasticity = (cur.latency / p.latency).ln() / dw;
                    let dir = if elasticity >= QUEUEING {
                        Dir::Down
                    } else {
                        Dir::Up
                    };
                    self.adapt_step(dir);
                    dir
                }
            }
        };
        self.dir = dir;
        (self.step(limit, dir), self.queue)
    }

    /// Reversals halve the step; a run in one direction doubles it.
    fn adapt_step(&mut self, dir: Dir) {
        if dir != self.dir {
            self.factor = (self.factor / 2.0).max(MIN_FACTOR);
            self.same_dir = 0;
            return;
        }
        self.same_dir += 1;
        if self.same_dir >= ACCELERATE_AFTER {
            self.factor = (self.factor * 2.0).min(MAX_FACTOR);
            self.same_dir = 0;
        }
    }

    fn step(&self, limit: usize, dir: Dir) -> usize {
        let scaled = |f: f64| (limit as f64 * f).round();
        match dir {
            // Rounded values of a usize times at most 2: exact in range.
            Dir::Up => (scaled(1.0 + self.factor) as usize).max(limit.saturating_add(1)),
            Dir::Down => (scaled(1.0 / (1.0 + self.factor)) as usize).min(limit.saturating_sub(1)),
        }
    }

    /// Tracks the lowest latency and, from it, the queue estimate.
    fn note_latency(&mut self, cur: Level, in_flight: usize) {
        let floor = match self.min_latency {
            Some(m) => (m * (1.0 + MIN_LATENCY_DRIFT)).min(cur.latency),
            None => cur.latency,
        };
        self.min_latency = Some(floor);
        self.queue = in_flight as f64 * (1.0 - floor / cur.latency).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Observation {
        Observation {
            in_flight: 0,
            saturated: true,
            load: None,
        }
    }

    /// Feeds one window of `n` answers at one level and decides.
    fn window(g: &mut Gradient, limit: usize, concurrency: usize, latency: f64) -> usize {
        for _ in 0..limit.max(8) {
            g.record(latency, concurrency);
        }
        g.next(limit, &busy()).0
    }

    #[test]
    fn waits_for_enough_answers() {
        let mut g = Gradient::default();
        g.record(0.1, 4);
        assert_eq!(g.next(16, &busy()).0, 16);
    }

    #[test]
    fn climbs_while_latency_barely_moves_and_backs_off_when_it_follows() {
        let mut g = Gradient::default();
        assert_eq!(window(&mut g, 16, 16, 1.00), 32);
        // Twice the concurrency, 5% more latency: keep climbing.
        assert_eq!(window(&mut g, 32, 32, 1.05), 64);
        // Twice again, and latency doubled: queueing, so back down by a
        // smaller step.
        assert_eq!(window(&mut g, 64, 64, 2.10), 43);
        // Latency fell in proportion: still down.
        assert_eq!(window(&mut g, 43, 43, 1.41), 29);
        // Barely fell: below the knee, up again with a finer step.
        assert_eq!(window(&mut g, 29, 29, 1.38), 36);
    }

    #[test]
    fn an_unused_limit_is_not_raised() {
        let mut g = Gradient::default();
        for _ in 0..8 {
            g.record(0.1, 3);
        }
        let idle = Observation {
            in_flight: 3,
            saturated: false,
            load: None,
        };
        assert_eq!(g.next(16, &idle).0, 16);
    }
}
