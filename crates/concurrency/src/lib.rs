//! # batchgate-concurrency
//!
//! How many requests to keep in flight to one inference server: enough to
//! keep its batch full, few enough that no standing queue builds in front
//! of it. A continuous-batching server (vLLM) runs up to some number of
//! sequences at once — a handful to several hundred, depending on model,
//! GPU and prompts — and queues the rest. Below that number throughput
//! grows with concurrency and latency barely moves; above it throughput is
//! flat and every extra request only waits, delaying everyone else on the
//! server (interactive users included).
//!
//! A [`Controller`] finds that number and tracks it, from one of two
//! signals:
//!
//! - **The server's gauges** ([`ServerLoad`]: requests running and
//!   waiting, KV-cache use), when they can be scraped. A queue beyond a
//!   small target means too many: the limit drops at once to what fits,
//!   counting only our share of the queue (so several gateways sharing a
//!   server do not all give up the whole excess). No queue while the limit
//!   is in use means room: the limit grows — doubling until the first queue
//!   is seen, then by small steps that grow while no queue appears, so a
//!   capacity that rises (a tenant leaves, a replica restarts bigger) is
//!   found again within seconds. While other clients use the server too
//!   (more requests on it than ours), it aims instead for no queue and one
//!   free place, so that their requests start at once rather than wait for
//!   one of ours to finish.
//! - **Latency**, otherwise. Queueing shows as latency rising in
//!   proportion to concurrency (throughput no longer rising with it),
//!   while a batch that is merely fuller only gets mildly slower. The
//!   controller measures mean latency over a window at one limit, moves
//!   the limit, measures again, and reads the *elasticity* of latency to
//!   concurrency between the two windows: at or above ½ the higher level
//!   queues, so it steps down; below, it steps up. Steps shrink at each
//!   reversal and grow while the direction holds, so it settles just
//!   around the knee and follows it when it moves. This assumes the
//!   server's time dominates the round trip (a long network round trip
//!   hides the knee; the gauges do not have that weakness).
//!
//! Time is injected: the caller reports answers ([`Controller::on_answer`])
//! and calls [`Controller::tick`] periodically with the time since any
//! fixed origin. Nothing here reads a clock or sleeps, so a simulated
//! server drives it deterministically in tests.

mod gauges;
mod gradient;

use std::time::Duration;

/// How far the limit may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The limit before anything is known.
    pub initial: usize,
    /// The lowest limit (at least 1).
    pub min: usize,
    /// The ceiling (an operator's `max_parallel_requests`).
    pub max: usize,
}

impl Settings {
    /// Where a limit starts when nothing is known: low enough that a small
    /// server is not flooded before the first measurement, high enough that
    /// a few doublings reach hundreds.
    pub const INITIAL: usize = 16;

    /// From 1 up to `max`, starting at [`Settings::INITIAL`] (or `max` if
    /// lower).
    pub fn with_ceiling(max: usize) -> Settings {
        let max = max.max(1);
        Settings {
            initial: Self::INITIAL.min(max),
            min: 1,
            max,
        }
    }
}

/// What the server reports of its load, summed over its engines.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerLoad {
    /// Requests in its running batch.
    pub running: f64,
    /// Requests waiting for a place in the batch.
    pub waiting: f64,
    /// Fraction of the KV cache in use (0 to 1), if reported.
    pub kv_cache_usage: Option<f64>,
}

/// One answered request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// [`Controller::epoch`] when it was sent: answers to requests sent
    /// under an older limit do not describe the current one.
    pub epoch: u64,
    /// From sending to the answer.
    pub latency: Duration,
    /// Our requests in flight to the server when it was sent, itself
    /// included.
    pub concurrency: usize,
}

/// What the caller saw since the previous tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Our requests in flight to the server: the larger of the counts
    /// before and after the load was read, so that none of ours on the
    /// server is taken for someone else's.
    pub in_flight: usize,
    /// Whether the limit was reached at some point since the last tick
    /// (there was more work than it allowed). A limit that is not in use
    /// is not raised: nothing would be learnt.
    pub saturated: bool,
    /// The server's gauges, when they could be read this tick.
    pub load: Option<ServerLoad>,
}

/// Which signal the last decision used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The server's running and waiting gauges.
    Gauges,
    /// Latency against concurrency.
    Latency,
}

/// What a controller knows now, for metrics and progress views.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub limit: usize,
    /// Requests waiting at the server: its gauge, or (from latency) our
    /// in-flight requests times the share of their latency above the
    /// lowest seen.
    pub queue: f64,
    /// Answers per second, smoothed over a few seconds.
    pub throughput: f64,
    /// `None` before the first tick.
    pub signal: Option<Signal>,
}

/// Throughput is smoothed with this time constant.
const THROUGHPUT_TAU: Duration = Duration::from_secs(2);

/// The adaptive limit of one server.
#[derive(Debug, Clone)]
pub struct Controller {
    settings: Settings,
    limit: usize,
    epoch: u64,
    gauges: gauges::Gauges,
    gradient: gradient::Gradient,
    last_tick: Option<Duration>,
    answered: u64,
    throughput: f64,
    queue: f64,
    signal: Option<Signal>,
}

impl Controller {
    pub fn new(settings: Settings) -> Controller {
        let min = settings.min.max(1);
        let settings = Settings {
            min,
            max: settings.max.max(min),
            initial: settings.initial.clamp(min, settings.max.max(min)),
        };
        Controller {
            limit: settings.initial,
            settings,
            epoch: 0,
            gauges: gauges::Gauges::default(),
            gradient: gradient::Gradient::default(),
            last_tick: None,
            answered: 0,
            throughput: 0.0,
            queue: 0.0,
            signal: None,
        }
    }

    /// Requests that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes whenever the limit does; stamp each request with it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Moves the floor and the ceiling (a fleet re-dividing an operator's
    /// `max_parallel_requests` as instances come and go); the limit is
    /// clamped into them at once.
    pub fn set_bounds(&mut self, min: usize, max: usize) {
        let min = min.max(1);
        self.settings.min = min;
        self.settings.max = max.max(min);
        self.settings.initial = self.settings.initial.clamp(min, self.settings.max);
        self.set(self.limit);
    }

    pub fn status(&self) -> Status {
        Status {
            limit: self.limit,
            queue: self.queue,
            throughput: self.throughput,
            signal: self.signal,
        }
    }

    /// A request got an answer from the server (any answer that shows it
    /// served the request; not a refusal to connect or a timeout).
    pub fn on_answer(&mut self, sample: Sample) {
        self.answered += 1;
        if sample.epoch == self.epoch {
            self.gradient
                .record(sample.latency.as_secs_f64(), sample.concurrency);
        }
    }

    /// Decides the limit from what was seen since the last tick; `now` is
    /// the time since any fixed origin. Returns the new limit.
    pub fn tick(&mut self, now: Duration, obs: Observation) -> usize {
        self.update_throughput(now);
        let next = match obs.load {
            Some(load) => {
                self.signal = Some(Signal::Gauges);
                self.queue = load.waiting.max(0.0);
                // Should the gauges go away, latency takes over from a
                // limit that is probably about right: no slow start.
                self.gradient.restart();
                self.gauges.next(self.limit, &obs, load)
            }
            None => {
                self.signal = Some(Signal::Latency);
                let (next, queue) = self.gradient.next(self.limit, &obs);
                self.queue = queue;
                next
            }
        };
        self.set(next);
        self.limit
    }

    fn update_throughput(&mut self, now: Duration) {
        let answered = std::mem::take(&mut self.answered);
        let Some(dt) = self.last_tick.replace(now).map(|t| now.saturating_sub(t)) else {
            return;
        };
        if dt.is_zero() {
            return;
        }
        let rate = answered as f64 / dt.as_secs_f64();
        let weight = (dt.as_secs_f64() / THROUGHPUT_TAU.as_secs_f64()).min(1.0);
        self.throughput += (rate - self.throughput) * weight;
    }

    fn set(&mut self, next: usize) {
        let next = next.clamp(self.settings.min, self.settings.max);
        if next != self.limit {
            self.limit = next;
            self.epoch += 1;
            self.gradient.new_window();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_made_consistent() {
        let c = Controller::new(Settings {
            initial: 500,
            min: 0,
            max: 8,
        });
        assert_eq!(c.limit(), 8);
        assert_eq!(c.settings().min, 1);
        assert_eq!(Settings::with_ceiling(4).initial, 4);
        assert_eq!(Settings::with_ceiling(0).max, 1);
    }

    #[test]
    fn the_ceiling_and_floor_hold() {
        let mut c = Controller::new(Settings {
            initial: 4,
            min: 2,
            max: 6,
        });
        for i in 0..10 {
            // Every request of ours runs, none waits: room to grow.
            let running = ServerLoad {
                running: c.limit() as f64,
                ..ServerLoad::default()
            };
            let obs = Observation {
                in_flight: c.limit(),
                saturated: true,
                load: Some(running),
            };
            c.tick(Duration::from_millis(250 * i), obs);
        }
        assert_eq!(c.limit(), 6);
        let flooded = ServerLoad {
            running: 1.0,
            waiting: 1000.0,
            kv_cache_usage: None,
        };
        let obs = Observation {
            in_flight: 6,
            saturated: true,
            load: Some(flooded),
        };
        c.tick(Duration::from_secs(5), obs);
        assert_eq!(c.limit(), 2);
    }

    #[test]
    fn moved_bounds_clamp_the_limit_at_once() {
        let mut c = Controller::new(Settings::with_ceiling(64));
        assert_eq!(c.limit(), 16);
        let epoch = c.epoch();
        c.set_bounds(1, 10);
        assert_eq!((c.limit(), c.settings().max), (10, 10));
        assert_ne!(c.epoch(), epoch, "a new limit is a new epoch");
        c.set_bounds(12, 40);
        assert_eq!(c.limit(), 12);
        // Raising the ceiling leaves the limit to the controller.
        c.set_bounds(1, 64);
        assert_eq!((c.limit(), c.settings().min), (12, 1));
        c.set_bounds(0, 0);
        assert_eq!((c.limit(), c.settings().min, c.settings().max), (1, 1, 1));
    }

    #[test]
    fn throughput_counts_answers_per_second() {
        let mut c = Controller::new(Settings::with_ceiling(64));
        c.tick(Duration::ZERO, Observation::default());
        for s in 1..=20 {
            for _ in 0..100 {
                c.on_answer(Sample {
                    epoch: 0,
                    latency: Duration::from_millis(100),
                    concurrency: 10,
                });
            }
            c.tick(Duration::from_secs(s), Observation::default());
        }
        let t = c.status().throughput;
        assert!((t - 100.0).abs() < 1.0, "{t}");
    }
}
